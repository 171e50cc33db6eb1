"""The hardened pieces every pod of the product is made of: the confidential service's (``objects``), the
CAS's and its database's (``cas_objects``). Written once, so that no pod is less locked down than another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SERVICE_USER = 10001
"""The user the confidential service and the CAS run as: the open engine needs no root."""
RETAIN_CLAIMS = {"whenDeleted": "Retain", "whenScaled": "Retain"}
"""A StatefulSet's claims outlive it (a replace, a destroy): Kubernetes' default, written out so that no
later default can change it — a claim holds a database."""


def pod_security(user: int) -> dict[str, Any]:
    """The pod security context: not root, the claims given to ``user`` through ``fsGroup``, the runtime's
    default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """The container security context: no privilege escalation, no capability, a read-only root (what a
    program writes goes to its volumes and memory-backed mounts)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def claim_spec(
    size: str, access_modes: Sequence[str] = ("ReadWriteOnce",), storage_class: str = ""
) -> dict[str, Any]:
    """A claim's ``spec``: ``size`` of ``storage_class`` (empty: the cluster's default)."""
    claim: dict[str, Any] = {"accessModes": list(access_modes), "resources": {"requests": {"storage": size}}}
    if storage_class:
        claim["storageClassName"] = storage_class
    return claim


def retained_claim_templates(size: str, storage_class: str, name: str = "data") -> dict[str, Any]:
    """The part of a StatefulSet's ``spec`` that gives each pod its claim ``name``, retained."""
    return {
        "volumeClaimTemplates": [
            {"metadata": {"name": name}, "spec": claim_spec(size, storage_class=storage_class)}
        ],
        "persistentVolumeClaimRetentionPolicy": dict(RETAIN_CLAIMS),
    }


def placed(
    pod: dict[str, Any], node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``pod`` (a pod ``spec``) scheduled on the nodes ``node_selector`` names, tolerating their taints."""
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [dict(toleration) for toleration in tolerations]
    return pod


def ingress_policy(
    metadata: Mapping[str, Any], pods: Mapping[str, str], rules: list[tuple[int, list[dict[str, Any]] | None]]
) -> dict[str, Any]:
    """A NetworkPolicy that admits, to the pods labelled ``pods``, only the ports of ``rules``: each a
    port and who may reach it (None: anyone)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": dict(metadata),
        "spec": {
            "podSelector": {"matchLabels": dict(pods)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [{"port": port, "protocol": "TCP"}],
                    **({"from": peers} if peers is not None else {}),
                }
                for port, peers in rules
            ],
        },
    }
