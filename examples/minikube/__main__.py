"""SCONE's counter example, confidential, on minikube: the counter runs as a Job three times, one after
the other, on one encrypted and rollback-protected volume, and counts 0, 1, 2.

What it creates: a minikube profile (with its registry add-on), the open engine's CAS in it, the
native image built from ../counter, the confidential image, its policy in the CAS, the volume's claim
and the three Jobs. Read each run's count with ``kubectl logs job/counter-sconify-counter-run-N``.
"""

from pathlib import Path

import pulumi

from pulumi_sconify import (
    CasDeployment,
    CasDeploymentArgs,
    CasImage,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    DockerfileImage,
    DockerfileImageArgs,
    MinikubeCluster,
    MinikubeClusterArgs,
    VolumeArgs,
)
from pulumi_sconify.components.native_image import require_dockerfile

config = pulumi.Config()
COUNTER = require_dockerfile(Path("../counter"))  # checked before anything is declared
cluster = MinikubeCluster("minikube", MinikubeClusterArgs(profile="sconify-example"))
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])

cas_image = CasImage(
    "cas-image",
    base="docker.io/library/python:3.12-slim",
    target=pulumi.Output.concat(cluster.registry, "/sconify/cas:example"),
    insecure_registries=cluster.insecure_registries,
)
cas = CasDeployment(
    "cas", CasDeploymentArgs(image=cas_image.image, external_host=cluster.node_address), opts=in_cluster
)

native = DockerfileImage(
    "counter",
    DockerfileImageArgs(
        context=COUNTER,
        registry=cluster.registry,
        registry_auth=cluster.registry_auth,
        insecure_registry=bool(cluster.insecure_registries),
        builder=config.get("builder") or "docker",
    ),
)
counter = ConfidentialStatefulService(
    "counter",
    ConfidentialStatefulServiceArgs(
        native_image=native.image,
        target=pulumi.Output.concat(cluster.registry, "/sconify/counter:example"),
        command="python3 /code/app.py",
        cas=cas,
        namespace="counter-example",
        service="counter",
        dirs=["/code"],
        volumes=[VolumeArgs("V1", "/V1", size="256Mi")],
        workload_type="job",
        job_runs=3,
        storage=cluster.storage,
        insecure_registries=cluster.insecure_registries,
    ),
    opts=in_cluster,
)

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("image", counter.image)
pulumi.export("mrenclave", counter.mrenclave)
pulumi.export("sessionHash", counter.session_hash)
if cas.recovery_private_key is not None:  # the CAS's master key is sealed to it: keep a copy offline
    pulumi.export("casRecoveryKey", cas.recovery_private_key)
