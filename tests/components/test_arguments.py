"""Bad component arguments fail at once, naming the problem, before anything is declared."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pulumi
import pytest

from pulumi_sconify import (
    AksClusterArgs,
    AzurePostgresArgs,
    CasDeploymentArgs,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    DockerfileImage,
    DockerfileImageArgs,
    EncryptedVolumeArgs,
    MinikubeClusterArgs,
    PostgresStore,
    StorageProfile,
    VolumeArgs,
)
from pulumi_sconify.components.azure_postgres import AzureDatabaseNetwork
from pulumi_sconify.components.cas import CasEndpoint
from pulumi_sconify.components.kubernetes import object_resource, pending, with_outputs
from pulumi_sconify.components.service import service_spec, workload_objects
from pulumi_sconify.engine.chart import ChartSpecError
from pulumi_sconify.engine.errors import ArgumentsError
from tests.support.pulumi.program_runner import ProgramMocks, RecordingMonitor

NETWORK = AzureDatabaseNetwork(
    resource_group_name="group", location="westeurope", subnet_id="subnet", private_dns_zone_id="zone",
    zones=("1", "2", "3"),
)  # fmt: skip
CAS = SimpleNamespace(address="cas:8081", attestation_address="cas:18765", ca_certificate="PEM")
"""What the argument checks read of a CAS: that it has the three outputs."""


def service(**changes: Any) -> ConfidentialStatefulServiceArgs:
    arguments: dict[str, Any] = {
        "native_image": "registry.example/counter:1",
        "target": "registry.example/confidential:1",
        "command": "python3 /code/app.py",
        "cas": cast(CasEndpoint, CAS),
        "namespace": "ns-test",
        "service": "counter",
        "volumes": [VolumeArgs("V1", "/V1")],
        **changes,
    }
    return ConfidentialStatefulServiceArgs(**arguments)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"replicas": 2}, "replicas 2: a rollback-protected volume has a single writer"),
        ({"workload_type": "cronjob"}, "workload_type 'cronjob'"),
        ({"workload_type": "daemonset"}, "a DaemonSet has many"),
        ({"namespace": "ns/evil"}, "namespace 'ns/evil'"),
        ({"volumes": [VolumeArgs("V-1", "/V1")]}, "volume 'V-1'"),
        ({"job_runs": 0}, "job_runs: at least 1"),
        ({"volumes": []}, "volumes: a stateful service needs at least one"),
        (
            {"volumes": [VolumeArgs("V1", "/V1"), VolumeArgs("v1", "/v1")]},
            "volume 'v1': the same as 'V1' but for case",
        ),
        ({"volumes": [VolumeArgs("V1", "/V1", size="1GB")]}, "volume 'V1' size '1GB'"),
        ({"volumes": [VolumeArgs("V1", "V1")]}, "volume 'V1' path 'V1': an absolute path"),
        ({"port": 8080}, "port 8080: a job has no Service"),
        ({"workload_type": "deployment", "job_runs": 3}, "job_runs 3: only for workload_type job"),
        ({"cas": "host:8081"}, "cas: expected a CasDeployment or ExternalCas .* not a str"),
        ({"kubernetes_namespace": "My_NS"}, "kubernetes_namespace 'My_NS': a DNS label"),
        ({"tolerate": ["debug-mod"]}, "tolerate 'debug-mod': unknown"),
        (
            {"hardware_attestation": {"azure-cvm": {"pcrs": {"7": "ab"}}}},
            r"hardware_attestation\.azure-cvm\.pcrs\.7: expected 64 hex characters",
        ),
        (
            {
                "hardware_attestation": {"azure-cvm": {"pcrs": {"7": "ab" * 32}}},
                "insecure_software_evidence": True,
            },
            "insecure_software_evidence: excluded by hardware_attestation",
        ),
    ],
)
def test_service_arguments(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        service(**changes)


def test_a_service_name_must_name_kubernetes_objects() -> None:
    with pytest.raises(ChartSpecError, match="DNS label"):
        workload_objects(service(service="Counter_Service"), "release")


def test_the_workload_follows_from_the_inputs_alone() -> None:
    spec = service_spec(service(dirs=["/code"]))
    assert [(m.path, m.kind.value, m.volume) for m in spec.mounts] == [
        ("/sconify/volumes/V1", "ciphertext-volume", "V1"),
        ("/V1", "tmpfs", "V1"),
        ("/code", "tmpfs", None),
    ]
    objects = workload_objects(service(workload_type="deployment", port=8080), "r")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Deployment", "Service"]  # claims: the volumes'
    account, deployment = objects[0], objects[1]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "r-sconify-counter"
    assert deployment["spec"]["template"]["metadata"]["labels"]["sconify.io/attests"] == "true"


def test_tolerations_are_checked_before_anything_is_declared() -> None:
    with pytest.raises(ValueError, match="tolerate 'debug-mod': unknown"):
        service(tolerate=["debug-mod"])
    with pytest.raises(ValueError, match="set insecure_software_evidence=True instead"):
        service(tolerate=["insecure-software-evidence"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MinikubeClusterArgs(profile="Dev Profile"), "profile 'Dev Profile'"),
        (lambda: MinikubeClusterArgs(cpus=1), "at least 2"),
        (lambda: AksClusterArgs(location="westeurope", confidential_pool="tdx"), "expected cvm or sgx"),
        (
            lambda: AksClusterArgs(location="westeurope", confidential_vm_size="Standard_D4s_v5"),
            "is not a cvm size",
        ),
        (
            lambda: AksClusterArgs(
                location="x", confidential_pool="sgx", confidential_vm_size="Standard_DC4as_v5"
            ),
            "is not a sgx size",
        ),
        (
            lambda: AksClusterArgs(
                location="x", confidential_pool="cvm", confidential_vm_size="Standard_DC4s_v3"
            ),
            "is not a cvm size",
        ),
        (lambda: CasDeploymentArgs(image="i", external_host="h", service_type="Ingress"), "NodePort or"),
        (lambda: CasDeploymentArgs(image="i", external_host="h", node_port=8081), "30000-32767"),
        (lambda: CasDeploymentArgs(image="i", external_host="h", replicas=2), "SQLite has one writer"),
        (
            lambda: PostgresStore(url="postgresql://cas:hunter2@db:5432/cas", password="hunter2"),
            "holds a password; give it as store.password",
        ),
        (lambda: PostgresStore(url="mysql://db/cas", password="p"), "expected a postgresql:// URL"),
        (lambda: AksClusterArgs(location="x", zones=("1", "4")), "distinct Azure availability zones"),
        (lambda: AksClusterArgs(location="x", zones=("1", "1")), "distinct Azure availability zones"),
        (
            lambda: AksClusterArgs(location="x", database_subnet="10.241.0.0/24"),
            r"database_subnet 10\.241\.0\.0/24: not inside address_space 10\.240\.0\.0/16",
        ),
        (
            lambda: AksClusterArgs(location="x", database_subnet="10.240.8.0/24"),
            r"database_subnet 10\.240\.8\.0/24: overlaps node_subnet",
        ),
        (
            lambda: AksClusterArgs(location="x", address_space="10.0.0.0/8", node_subnet="10.1.0.0/16"),
            "address_space 10.0.0.0/8: overlaps the pod range",
        ),
        (lambda: AksClusterArgs(location="x", node_subnet="10.240.0.0/33"), "network: .*10.240.0.0/33"),
        (lambda: AzurePostgresArgs(network=NETWORK, tier="Burstable"), "Burstable servers have no high"),
        (
            lambda: AzurePostgresArgs(network=replace(NETWORK, zones=("1",))),
            r"fewer than two availability zones \(\['1'\]\)",
        ),
        (lambda: AzurePostgresArgs(network=NETWORK, storage_size_gb=50), "storage_size_gb 50: one of"),
        (lambda: AzurePostgresArgs(network=NETWORK, backup_retention_days=90), "Azure allows 7 to 35"),
        (lambda: AzurePostgresArgs(network=NETWORK, sku_name="D2ds"), "sku_name 'D2ds'"),
        (
            lambda: EncryptedVolumeArgs(
                claim_name="c",
                volume="V1",
                session="s",
                storage=StorageProfile("", "ReadWriteOnce"),
                size="1GB",
            ),
            "size '1GB'",
        ),
        (lambda: DockerfileImageArgs(context=Path("/nonexistent"), registry="r:5000"), "no Dockerfile"),
        (
            lambda: DockerfileImageArgs(
                context=Path("examples/counter"), registry="r:5000", builder="buildah"
            ),
            "docker or podman",
        ),
    ],
)
def test_platform_arguments(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_placeholders_are_replaced_wherever_they_are() -> None:
    value = {"a": [pending("x"), {"b": pending("x")}], "c": "pending.sconify.invalid/y"}
    assert with_outputs(value, {pending("x"): 1}) == {"a": [1, {"b": 1}], "c": "pending.sconify.invalid/y"}


def test_an_unknown_object_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"networking\.k8s\.io/v1 Ingress: not an object kind"):
        object_resource(
            "x", pulumi.ResourceOptions(), {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}
        )


def test_bad_names_fail_before_anything_is_registered() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = RecordingMonitor(ProgramMocks(preview=False))
    pulumi.runtime.set_mocks(monitor.mocks, project="p", stack="s", preview=False, monitor=monitor)
    try:
        with pytest.raises(ValueError, match="a DNS label names a DockerfileImage"):
            DockerfileImage(
                "Counter Image",
                DockerfileImageArgs(context=Path("examples/counter"), registry="registry:5000"),
            )
        with pytest.raises(ChartSpecError, match="DNS label"):
            ConfidentialStatefulService("counter", service(service="Counter_Service"))
        with pytest.raises(ValueError, match="ConfidentialStatefulService: name 'MyApp': it starts"):
            ConfidentialStatefulService("MyApp", service())
        loop.run_until_complete(asyncio.sleep(0.2))  # let any registration that was started reach the monitor
        assert monitor.registrations == []
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_every_problem_is_named_at_once() -> None:
    """Arguments are validated one way: every problem found, each naming its field, in one engine error
    (a ValueError too), so a user fixes them in one round rather than one per `pulumi preview`."""
    with pytest.raises(ArgumentsError) as refused:
        CasDeploymentArgs(image="i", external_host="h", service_type="ClusterIP", node_port=80, replicas=-1)
    assert refused.value.owner == "CasDeploymentArgs"
    assert [problem.split(" ")[0].rstrip(":") for problem in refused.value.problems] == [
        "replicas",
        "service_type",
        "node_port",
    ]
    assert isinstance(refused.value, ValueError)
    with pytest.raises(ArgumentsError, match=r"profile 'Dev Profile'.*; cpus: minikube needs at least 2"):
        MinikubeClusterArgs(profile="Dev Profile", cpus=1)
