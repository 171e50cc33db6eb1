"""The workload model's objects, validated against Kubernetes' OpenAPI schemas.

No faithful Helm template renderer is available here (helm-sdkpy offers lint, not template), so the
objects validated are the workload model's (what the Pulumi components deploy); the templates that
express the same objects are linted with real Helm in test_chart.py.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from pulumi_sconify.engine.chart import WorkloadType, kubernetes_objects
from pulumi_sconify.engine.chart.objects import fullname
from tests.support.chart import COMBINATIONS, VALUE_COMBINATIONS, counter

KUBERNETES_VERSION = "1.33"


@pytest.mark.parametrize(
    ("workload", "combination"), COMBINATIONS, ids=[f"{w.value}-{n}" for w, n in COMBINATIONS]
)
def test_objects_validate_against_kubernetes_schemas(workload: WorkloadType, combination: str) -> None:
    objects = kubernetes_objects(
        counter(), workload, VALUE_COMBINATIONS[combination], release="python-service-0"
    )
    for kubernetes_object in objects:
        kubernetes_validate.validate(kubernetes_object, KUBERNETES_VERSION, strict=True)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def container(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return by_kind(objects)[kind]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_names_follow_scone_charts() -> None:
    objects = kubernetes_objects(counter(), WorkloadType.JOB, release="python-service-0")
    assert by_kind(objects)["Job"]["metadata"]["name"] == "python-service-0-sconify-python-service"
    assert by_kind(objects)["PersistentVolumeClaim"]["metadata"]["name"] == (
        "python-service-0-sconify-python-service-volumev1"
    )
    assert len(fullname("r" * 80, "python-service")) == 63


def test_memory_for_plaintext_claim_for_ciphertext() -> None:
    objects = kubernetes_objects(counter(), WorkloadType.JOB)
    pod = by_kind(objects)["Job"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert volumes[mounts["/sconify/volumes/V1"]]["persistentVolumeClaim"]["claimName"].endswith("-volumev1")
    assert volumes[mounts["/V1"]]["emptyDir"] == {"medium": "Memory"}
    assert volumes[mounts["/code"]]["emptyDir"] == {"medium": "Memory"}
    assert mounts["/etc/sconify"] == "cas-ca"
    assert pod["restartPolicy"] == "Never"


def test_existing_claim_and_emptydir() -> None:
    existing = kubernetes_objects(
        counter(), WorkloadType.JOB, {"volumev1": {"persistence": {"existingClaim": "test-pvc"}}}
    )
    assert "PersistentVolumeClaim" not in by_kind(existing)
    volumes = by_kind(existing)["Job"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "volumev1", "persistentVolumeClaim": {"claimName": "test-pvc"}} in volumes
    ephemeral = kubernetes_objects(
        counter(), WorkloadType.JOB, {"volumev1": {"persistence": {"enabled": False}}}
    )
    assert {"name": "volumev1", "emptyDir": {}} in by_kind(ephemeral)["Job"]["spec"]["template"]["spec"][
        "volumes"
    ]


def test_no_privileges_without_sgx() -> None:
    objects = kubernetes_objects(counter(), WorkloadType.DEPLOYMENT)
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in main["securityContext"]
    assert main["resources"] == {}
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("plugin", "limits"),
    [
        ("scone", {"sgx.k8s.io/sgx": "1"}),
        ("enabled", {"sgx.intel.com/epc": "64Mi", "sgx.intel.com/enclave": "1", "cpu": "2"}),
        ("azure", {"sgx.intel.com/epc": "64Mi", "cpu": "2"}),
    ],
)
def test_sgx_resources(plugin: str, limits: dict[str, str]) -> None:
    values: dict[str, Any] = {"useSGXDevPlugin": plugin, "resources": {"limits": {"cpu": "2"}}}
    if plugin == "scone":
        values["resources"] = {}
    main = container(kubernetes_objects(counter(), WorkloadType.JOB, values), "Job")
    assert main["resources"]["limits"] == limits


def test_environment_tells_the_runtime_where_to_go() -> None:
    main = container(
        kubernetes_objects(counter(), WorkloadType.JOB, {"scone": {"printVersion": True}}), "Job"
    )
    environment = {e["name"]: e.get("value", e.get("valueFrom")) for e in main["env"]}
    assert environment["SCONE_CAS_ADDR"] == "cas.sconify.svc:18765"
    assert environment["SCONE_CONFIG_ID"] == "ns-4027319958162/python-session/python-service"
    assert environment["SCONE_LAS_ADDR"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert environment["SCONE_VERSION"] == "1"
    assert environment["SCONE_CAS_CA"] == "/etc/sconify/cas-ca.pem"


def test_one_writer_per_volume() -> None:
    deployment = by_kind(kubernetes_objects(counter(), WorkloadType.DEPLOYMENT))["Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1


def test_service_only_when_enabled() -> None:
    assert "Service" not in by_kind(kubernetes_objects(counter(), WorkloadType.DEPLOYMENT))
    objects = kubernetes_objects(counter(), WorkloadType.STATEFULSET, {"service": {"enabled": True}})
    service = by_kind(objects)["Service"]
    assert service["spec"]["ports"] == [{"name": "service", "port": 80, "targetPort": "service"}]
    assert container(objects, "StatefulSet")["ports"] == [{"name": "service", "containerPort": 8080}]


def test_pods_attest_with_a_projected_token_for_the_cas_only() -> None:
    objects = kubernetes_objects(counter(), WorkloadType.JOB, release="python-service-0")
    account = by_kind(objects)["ServiceAccount"]
    assert account["metadata"]["name"] == "python-service"
    assert account["automountServiceAccountToken"] is False
    template = by_kind(objects)["Job"]["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["sconify.io/attests"] == "true"
    assert pod["serviceAccountName"] == "python-service"
    assert pod["automountServiceAccountToken"] is False  # no token for the API server
    (projected,) = [v["projected"] for v in pod["volumes"] if v["name"] == "sconify-token"]
    assert projected["sources"] == [
        {
            "serviceAccountToken": {
                "audience": "sconify-cas:" + "5e" * 32,
                "expirationSeconds": 3600,
                "path": "token",
            }
        }
    ]
    mounts = {m["name"]: m for m in container(objects, "Job")["volumeMounts"]}
    assert mounts["sconify-token"] == {
        "name": "sconify-token",
        "mountPath": "/var/run/secrets/sconify.io",
        "readOnly": True,
    }


def test_without_a_pinned_identity_no_token_is_mounted() -> None:
    values = {"attestation": {"kubernetes": {"serviceAccount": ""}}}
    objects = kubernetes_objects(counter(), WorkloadType.JOB, values, release="python-service-0")
    assert "ServiceAccount" not in by_kind(objects)
    pod = by_kind(objects)["Job"]["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert all(v["name"] != "sconify-token" for v in pod["volumes"])
