"""SCONE's counter example, confidential, on AKS: a confidential-VM node pool (AMD SEV-SNP, DCasv5),
the CAS behind a load balancer, images in an Azure Container Registry, the volume on ``azurefile-csi``
(ReadWriteMany) and the counter as a Deployment — it counts on each restart, and a rescheduled pod
continues the count.

The counter's keys are released only to a pod that proves, with its VM's vTPM and AMD's signature, that it
runs in a confidential VM whose boot measurements (PCRs) are the ones in ``cvmPcrs`` — and whose
service-account token is this deployment's. Software evidence is refused.
"""

from pathlib import Path

import pulumi

from pulumi_sconify import (
    AksCluster,
    AksClusterArgs,
    AzurePostgres,
    AzurePostgresArgs,
    CasDeployment,
    CasDeploymentArgs,
    CasImage,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    DockerfileImage,
    DockerfileImageArgs,
    VolumeArgs,
)
from pulumi_sconify.components.aks import PCRS_NEEDED
from pulumi_sconify.components.native_image import require_dockerfile

config = pulumi.Config()
COUNTER = require_dockerfile(Path("../counter"))  # checked before anything is declared
location = pulumi.Config("azure-native").require("location")
# Two confidential nodes, in different zones (the pools span zones 1-3): the CAS's two replicas and the
# counter survive the loss of a zone, and so does the CAS's database (zone-redundant, below).
cluster = AksCluster(
    "aks", AksClusterArgs(location=location, confidential_pool="cvm", confidential_node_count=2)
)
# The confidential nodes' boot measurements, which the policy pins. They can be read only once the nodes
# run: the first `up`, without them, brings up the cluster and the CAS; read them (README, "Pinning the
# confidential nodes' PCRs"), set `cvmPcrs`, and `up` again. A node image upgrade changes them; `pulumi
# preview --diff` then shows the policy's new values for review.
cvm_pcrs = config.get_object("cvmPcrs")
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])

dns_label = config.require("casDnsLabel")
cas_image = CasImage(
    "cas-image",
    base="docker.io/library/python:3.12-slim",
    target=pulumi.Output.concat(cluster.registry, "/sconify/cas:example"),
    registry_auth=cluster.registry_auth,
)
# The CAS's state on Azure's PostgreSQL, private to the cluster's network, kept by a `pulumi destroy`.
store = AzurePostgres("cas-store", AzurePostgresArgs(network=cluster.database_network, protect=True))
cas = CasDeployment(
    "cas",
    CasDeploymentArgs(
        image=cas_image.image,
        external_host=f"{dns_label}.{location}.cloudapp.azure.com",
        service_type="LoadBalancer",
        service_annotations={"service.beta.kubernetes.io/azure-dns-label-name": dns_label},
        placement=cluster.placement,
        store=store.store,
        protect=True,  # its keys, recovery key and database decrypt every volume
    ),
    opts=in_cluster,
)

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("casAddress", cas.address)
if cas.recovery_private_key is not None:  # keep a copy offline (docs/cas.md, the recovery runbook)
    pulumi.export("casRecoveryKey", cas.recovery_private_key)
pulumi.export("casImage", cas_image.image)  # the image the PCRs are read with

if cvm_pcrs is None:
    pulumi.log.warn(PCRS_NEEDED)
else:
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
            volumes=[VolumeArgs("V1", "/V1", size="1Gi")],
            tolerate=["hyperthreading", "outdated-tcb"],  # production: no debug-mode
            hardware_attestation={"azure-cvm": {"pcrs": cvm_pcrs}},
            workload_type="deployment",
            resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            storage=cluster.storage,
            placement=cluster.placement,
            registry_auth=cluster.registry_auth,
            protect_volumes=True,
        ),
        opts=in_cluster,
    )
    pulumi.export("image", counter.image)
    pulumi.export("sessionHash", counter.session_hash)
