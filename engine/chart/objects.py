"""The workload model: the Kubernetes objects of a confidential service, for given values.

The chart's templates (:mod:`.templates`) express the same objects in Helm's template language; the
Pulumi components build them from this module directly, so both deploy the same thing. Tests validate
these objects against Kubernetes' OpenAPI schemas for every workload type and value combination.
"""

from __future__ import annotations

import copy
from typing import Any

from ..layout import KUBERNETES_TOKEN
from .hardened import claim_spec
from .spec import MountKind, ServiceSpec, WorkloadType
from .values import nested_defaults, value_definitions, volume_key

CAS_CA_DIRECTORY = "/etc/sconify"
CAS_CA_FILE = "cas-ca.pem"
TOKEN_DIRECTORY, _, TOKEN_FILE = KUBERNETES_TOKEN.rpartition("/")
TOKEN_LIFETIME = 3600
"""``expirationSeconds`` of the projected token: the longest the CAS accepts; the kubelet renews it."""
ATTESTS_LABEL = {"sconify.io/attests": "true"}
"""The label of pods that attest: the CAS's NetworkPolicy lets only these reach its attestation port."""

SGX_RESOURCES: dict[str, dict[str, str | None]] = {
    "scone": {"sgx.k8s.io/sgx": "1"},
    "enabled": {"sgx.intel.com/epc": None, "sgx.intel.com/enclave": "1"},
    "azure": {"sgx.intel.com/epc": None},
    "disabled": {},
}
"""Limits per ``useSGXDevPlugin``; ``None`` stands for ``sgxEpcMem``."""


def fullname(release: str, service: str) -> str:
    """``<release>-sconify-<service>``, cut to the 63 characters a Kubernetes name may have."""
    return f"{release}-sconify-{service}"[:63].rstrip("-")


def selector_labels(release: str, service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"sconify-{service}", "app.kubernetes.io/instance": release}


def labels(release: str, service: str, managed_by: str) -> dict[str, str]:
    return {
        **selector_labels(release, service),
        "app.kubernetes.io/component": "confidential-service",
        "app.kubernetes.io/managed-by": managed_by,
    }


def merged_values(
    spec: ServiceSpec, workload: WorkloadType, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The chart's defaults with ``overrides`` merged in, as Helm merges ``--values``."""
    values = nested_defaults(value_definitions(spec, workload))
    _merge(values, copy.deepcopy(overrides or {}))
    return values


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and value:
            _merge(base[key], value)
        else:
            base[key] = value


def _mount_name(index: int, spec: ServiceSpec) -> str:
    mount = spec.mounts[index]
    if mount.kind is MountKind.CIPHERTEXT_VOLUME:
        assert mount.volume is not None
        return volume_key(mount.volume)
    return f"memory-{index}"


def _environment(values: dict[str, Any], has_certificate: bool) -> list[dict[str, Any]]:
    scone = values["scone"]
    environment: list[dict[str, Any]] = [
        {"name": "SCONE_CAS_ADDR", "value": scone["cas"]},
        {"name": "SCONE_CONFIG_ID", "value": scone["configID"]},
        {"name": "SCONE_LOG", "value": str(scone["log"])},
    ]
    if scone["las"]:
        environment.append({"name": "SCONE_LAS_ADDR", "value": scone["las"]})
    else:
        environment.append(
            {"name": "SCONE_LAS_ADDR", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
        )
    if scone["printVersion"]:
        environment.append({"name": "SCONE_VERSION", "value": "1"})
    if scone["heap"]:
        environment.append({"name": "SCONE_HEAP", "value": scone["heap"]})
    if scone["stack"]:
        environment.append({"name": "SCONE_STACK", "value": scone["stack"]})
    if has_certificate:
        environment.append({"name": "SCONE_CAS_CA", "value": f"{CAS_CA_DIRECTORY}/{CAS_CA_FILE}"})
    return environment + list(values["extraEnvVars"])


def _resources(values: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = copy.deepcopy(values["resources"])
    sgx = {
        name: amount or values["sgxEpcMem"]
        for name, amount in SGX_RESOURCES[values["useSGXDevPlugin"]].items()
    }
    if sgx:
        resources.setdefault("limits", {}).update(sgx)
    return resources


def pod_template(
    spec: ServiceSpec, workload: WorkloadType, values: dict[str, Any], release: str, managed_by: str
) -> dict[str, Any]:
    name = fullname(release, spec.service)
    has_certificate = bool(values["scone"]["casCertificate"])
    container: dict[str, Any] = {
        "name": spec.service,
        "image": values["image"],
        "imagePullPolicy": values["imagePullPolicy"],
        "env": _environment(values, has_certificate),
        "securityContext": values["securityContext"],
        "resources": _resources(values),
        "volumeMounts": [
            {"name": _mount_name(i, spec), "mountPath": m.path} for i, m in enumerate(spec.mounts)
        ],
    }
    if has_certificate:
        container["volumeMounts"].append({"name": "cas-ca", "mountPath": CAS_CA_DIRECTORY, "readOnly": True})
    if workload is not WorkloadType.JOB and values["service"]["enabled"]:
        container["ports"] = [{"name": "service", "containerPort": values["service"]["targetPort"]}]
    volumes: list[dict[str, Any]] = []
    for index, mount in enumerate(spec.mounts):
        if mount.kind is MountKind.TMPFS:
            volumes.append({"name": _mount_name(index, spec), "emptyDir": {"medium": "Memory"}})
            continue
        assert mount.volume is not None
        persistence = values[volume_key(mount.volume)]["persistence"]
        if persistence["enabled"]:
            claim = persistence["existingClaim"] or f"{name}-{volume_key(mount.volume)}"
            volumes.append({"name": _mount_name(index, spec), "persistentVolumeClaim": {"claimName": claim}})
        else:
            volumes.append({"name": _mount_name(index, spec), "emptyDir": {}})
    if has_certificate:
        volumes.append({"name": "cas-ca", "configMap": {"name": f"{name}-cas-ca"}})
    kubernetes = values["attestation"]["kubernetes"]
    pod: dict[str, Any] = {"automountServiceAccountToken": False}
    if kubernetes["serviceAccount"]:
        # Only the token for the CAS, never one for the API server.
        pod["serviceAccountName"] = kubernetes["serviceAccount"]
        container["volumeMounts"].append(
            {"name": "sconify-token", "mountPath": TOKEN_DIRECTORY, "readOnly": True}
        )
        volumes.append(
            {
                "name": "sconify-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": kubernetes["audience"],
                                "expirationSeconds": TOKEN_LIFETIME,
                                "path": TOKEN_FILE,
                            }
                        }
                    ]
                },
            }
        )
    if values["imagePullSecrets"]:
        pod["imagePullSecrets"] = values["imagePullSecrets"]
    pod["securityContext"] = values["podSecurityContext"]
    if workload is WorkloadType.JOB:
        pod["restartPolicy"] = "Never"
    for key in ("nodeSelector", "tolerations", "affinity"):
        if values[key]:
            pod[key] = values[key]
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return {
        "metadata": {"labels": {**labels(release, spec.service, managed_by), **ATTESTS_LABEL}},
        "spec": pod,
    }


def workload_object(
    spec: ServiceSpec, workload: WorkloadType, values: dict[str, Any], release: str, managed_by: str
) -> dict[str, Any]:
    name = fullname(release, spec.service)
    template = pod_template(spec, workload, values, release, managed_by)
    metadata = {"name": name, "labels": labels(release, spec.service, managed_by)}
    selector = {"matchLabels": selector_labels(release, spec.service)}
    if workload is WorkloadType.JOB:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {"backoffLimit": 0, "template": template},
        }
    if workload is WorkloadType.DAEMONSET:
        return {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata,
            "spec": {"selector": selector, "template": template},
        }
    if workload is WorkloadType.STATEFULSET:
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata,
            "spec": {
                "serviceName": name,
                "replicas": values["replicaCount"],
                "selector": selector,
                "template": template,
            },
        }
    body: dict[str, Any] = {"replicas": values["replicaCount"], "selector": selector, "template": template}
    if spec.volumes:
        # Never two pods on one rollback-protected volume, not even during a rollout.
        body["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": body}


def claim_object(
    name: str, object_labels: dict[str, str], size: str, access_modes: list[str], storage_class: str = ""
) -> dict[str, Any]:
    """The claim that holds one volume's ciphertext (``<fullname>-<volume key>``)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": object_labels},
        "spec": claim_spec(size, access_modes, storage_class),
    }


def kubernetes_objects(
    spec: ServiceSpec,
    workload: WorkloadType,
    values: dict[str, Any] | None = None,
    release: str = "release",
    managed_by: str = "Helm",
) -> list[dict[str, Any]]:
    """Every object the chart creates for ``values`` (overrides of the defaults), in the chart's order."""
    merged = merged_values(spec, workload, values)
    name = fullname(release, spec.service)
    objects: list[dict[str, Any]] = []
    for volume in spec.volumes:
        persistence = merged[volume_key(volume)]["persistence"]
        if persistence["enabled"] and not persistence["existingClaim"]:
            objects.append(
                claim_object(
                    f"{name}-{volume_key(volume)}",
                    labels(release, spec.service, managed_by),
                    persistence["size"],
                    persistence["accessModes"],
                    persistence["storageClass"],
                )
            )
    kubernetes = merged["attestation"]["kubernetes"]
    if kubernetes["serviceAccount"] and kubernetes["createServiceAccount"]:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": kubernetes["serviceAccount"],
                    "labels": labels(release, spec.service, managed_by),
                },
                "automountServiceAccountToken": False,
            }
        )
    if merged["scone"]["casCertificate"]:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-cas-ca", "labels": labels(release, spec.service, managed_by)},
                "data": {CAS_CA_FILE: merged["scone"]["casCertificate"]},
            }
        )
    objects.append(workload_object(spec, workload, merged, release, managed_by))
    if workload is not WorkloadType.JOB and merged["service"]["enabled"]:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "labels": labels(release, spec.service, managed_by)},
                "spec": {
                    "type": merged["service"]["type"],
                    "selector": selector_labels(release, spec.service),
                    "ports": [
                        {"name": "service", "port": merged["service"]["port"], "targetPort": "service"}
                    ],
                },
            }
        )
    return objects
