"""Two confidential services sharing one CAS and one CAS namespace, with different volume sizes; the second
has two volumes; each has its own native image. Under a real engine every resource must have a URN of its
own: this is the program that had duplicates (test program, run under the strict monitor)."""

from __future__ import annotations

from pathlib import Path

import pulumi

import pulumi_sconify
from pulumi_sconify import (
    CasDeployment,
    CasDeploymentArgs,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    DockerfileImage,
    DockerfileImageArgs,
    MinikubeCluster,
    MinikubeClusterArgs,
    VolumeArgs,
)
from pulumi_sconify.components.native_image import require_dockerfile
from pulumi_sconify.provider.resources import CreatorIdentity

# The repository's counter app, wherever this program was copied to.
COUNTER = require_dockerfile(Path(pulumi_sconify.__file__).resolve().parents[1] / "examples" / "counter")

cluster = MinikubeCluster("cluster", MinikubeClusterArgs(profile="sconify-shared"))
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
cas = CasDeployment(
    "cas",
    CasDeploymentArgs(image="registry.example/cas@sha256:" + "1" * 64, external_host=cluster.node_address),
    opts=in_cluster,
)
# Services that share a CAS namespace share the identity that owns it: only it may create sessions there.
owner = CreatorIdentity("owner", common_name="shared-owner")
services = {}
for name, volumes in (
    ("alpha", [VolumeArgs("V1", "/V1", size="1Gi")]),
    ("beta", [VolumeArgs("V1", "/V1", size="2Gi"), VolumeArgs("V2", "/data", size="512Mi")]),
):
    native = DockerfileImage(
        f"{name}-native",
        DockerfileImageArgs(context=COUNTER, registry=cluster.registry, insecure_registry=True),
    )
    services[name] = ConfidentialStatefulService(
        name,
        ConfidentialStatefulServiceArgs(
            native_image=native.image,
            target=pulumi.Output.concat(cluster.registry, f"/sconify/{name}:1"),
            command="python3 /code/app.py",
            cas=cas,
            namespace="shared",  # one CAS namespace for both
            service="counter",
            dirs=["/code"],
            volumes=volumes,
            workload_type="deployment",
            storage=cluster.storage,
            insecure_registries=cluster.insecure_registries,
            identity=owner,
        ),
        opts=in_cluster,
    )
pulumi.export("images", {name: service.image for name, service in services.items()})
