"""A StatefulSet on AKS attesting to a CAS that exists (``ExternalCas``), its session adopted if it is there
already, the whole component protected (test program, run under the strict monitor)."""

from __future__ import annotations

import pulumi

from pulumi_sconify import (
    AksCluster,
    AksClusterArgs,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    ExternalCas,
    ExternalCasArgs,
    VolumeArgs,
)
from tests.support.pulumi.program_runner import MOCK_CA_CERTIFICATE as CA  # the runner is loaded already

cluster = AksCluster("aks", AksClusterArgs(location="westeurope"))
cas = ExternalCas("cas", ExternalCasArgs(address="cas.example.com:8081", ca_certificate=CA))
service = ConfidentialStatefulService(
    "ledger",
    ConfidentialStatefulServiceArgs(
        native_image="registry.example/ledger@sha256:" + "2" * 64,
        target=pulumi.Output.concat(cluster.registry, "/sconify/ledger:1"),
        command="python3 /app/ledger.py",
        cas=cas,
        namespace="ledger",
        service="ledger",
        dirs=["/app"],
        volumes=[VolumeArgs("DATA", "/data", size="4Gi")],
        tolerate=["hyperthreading"],
        workload_type="statefulset",
        port=8443,
        storage=cluster.storage,
        placement=cluster.placement,
        registry_auth=cluster.registry_auth,
        kubernetes_namespace="ledger",
        create_kubernetes_namespace=True,
        adopt_session=True,
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], protect=True),
)
pulumi.export("endpoint", service.endpoint)
