"""The CAS's and its database's Kubernetes objects, as pure functions: validated against Kubernetes' OpenAPI
schemas and checked for what keeps them locked down, without Pulumi."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from pulumi_sconify.engine.chart.cas_objects import (
    CAS_POD_LABELS,
    CasPlan,
    CasSecrets,
    PostgresPlan,
    cas_objects,
    postgres_objects,
)
from pulumi_sconify.engine.chart.objects import ATTESTS_LABEL
from pulumi_sconify.engine.cli import build_parser
from pulumi_sconify.engine.vocabulary import ATTESTATION_PORT

KUBERNETES_VERSION = "1.33"
SECRETS = CasSecrets(ca_certificate="CA", ca_key="CA-KEY", master_key="MASTER", store_password="PASSWORD")


def plan(**changes: Any) -> CasPlan:
    given: dict[str, Any] = {
        "instance": "cas",
        "namespace": "sconify-cas",
        "image": "registry.example/cas@sha256:" + "a" * 64,
        "external_host": "cas.example.com",
        "kubernetes_issuer": "https://kubernetes.default.svc.cluster.local",
        "secrets": CasSecrets(ca_certificate="CA", ca_key="CA-KEY", master_key="MASTER"),
        "recovery_public_key": "RECOVERY",
    }
    return CasPlan(**{**given, **changes})


PLANS = {
    "sqlite-nodeport": plan(),
    "sqlite-loadbalancer-exposed": plan(
        service_type="LoadBalancer",
        service_annotations={"service.beta.kubernetes.io/azure-dns-label-name": "cas"},
        expose_attestation=True,
        storage_class="managed-csi",
        node_selector={"pool": "confidential"},
        tolerations=[{"key": "sgx", "operator": "Exists", "effect": "NoSchedule"}],
        granted_identities=["ab" * 32],
    ),
    "postgres-replicas": plan(
        secrets=SECRETS, store_url="postgresql://cas@db:5432/cas", store_ca_certificate="ROOTS", replicas=3
    ),
}


def pod(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", PLANS)
def test_cas_objects_validate_against_kubernetes_schemas(name: str) -> None:
    for kubernetes_object in cas_objects(PLANS[name]).values():
        kubernetes_validate.validate(kubernetes_object, KUBERNETES_VERSION, strict=True)


def test_postgres_objects_validate_against_kubernetes_schemas() -> None:
    objects = postgres_objects(
        PostgresPlan(
            instance="store",
            namespace="store",
            client_namespace="sconify-cas",
            image="postgres",
            password="P",
        )
    )
    for kubernetes_object in objects.values():
        kubernetes_validate.validate(kubernetes_object, KUBERNETES_VERSION, strict=True)
    policy = objects["network-policy"]["spec"]["ingress"]
    assert policy == [
        {
            "ports": [{"port": 5432, "protocol": "TCP"}],
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "sconify-cas"}},
                    "podSelector": {"matchLabels": CAS_POD_LABELS},
                }
            ],
        }
    ]


@pytest.mark.parametrize("name", PLANS)
def test_every_pod_is_locked_down(name: str) -> None:
    database = postgres_objects(
        PostgresPlan(instance="s", namespace="s", client_namespace="c", image="postgres", password="P")
    )
    for statefulset in (cas_objects(PLANS[name])["statefulset"], database["statefulset"]):
        spec = pod(statefulset)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_database_claim_outlives_the_statefulset_and_replicas_have_none() -> None:
    sqlite = cas_objects(PLANS["sqlite-nodeport"])["statefulset"]["spec"]
    assert sqlite["replicas"] == 1
    assert sqlite["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    replicated = cas_objects(PLANS["postgres-replicas"])
    assert replicated["statefulset"]["spec"]["replicas"] == 3
    assert "volumeClaimTemplates" not in replicated["statefulset"]["spec"]
    assert replicated["disruption-budget"]["spec"]["minAvailable"] == 1
    assert "disruption-budget" not in cas_objects(PLANS["sqlite-nodeport"])


def test_only_attesting_pods_reach_attestation_unless_it_is_exposed() -> None:
    closed = cas_objects(PLANS["sqlite-nodeport"])
    rules = {
        rule["ports"][0]["port"]: rule.get("from") for rule in closed["network-policy"]["spec"]["ingress"]
    }
    assert rules[ATTESTATION_PORT] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": ATTESTS_LABEL}}
    ]
    assert [p["name"] for p in closed["client-service"]["spec"]["ports"]] == ["client"]
    opened = cas_objects(PLANS["sqlite-loadbalancer-exposed"])
    rules = {
        rule["ports"][0]["port"]: rule.get("from") for rule in opened["network-policy"]["spec"]["ingress"]
    }
    assert rules[ATTESTATION_PORT] is None
    assert [p["name"] for p in opened["client-service"]["spec"]["ports"]] == ["client", "attestation"]


def test_the_cas_container_runs_what_the_cli_parses() -> None:
    arguments = pod(cas_objects(PLANS["postgres-replicas"])["statefulset"])["containers"][0]["args"]
    parsed = build_parser().parse_args(arguments)
    assert parsed.store == "postgresql://cas@db:5432/cas"
    assert parsed.host == [
        "sconify-cas.sconify-cas.svc",
        "sconify-cas.sconify-cas.svc.cluster.local",
        "cas.example.com",
    ]
    granted = pod(cas_objects(PLANS["sqlite-loadbalancer-exposed"])["statefulset"])["containers"][0]["args"]
    assert build_parser().parse_args(granted).grant_identity == ["ab" * 32]
