"""Kubernetes objects of the workload model as first-class Pulumi resources.

The chart and the components build the same objects (:mod:`pulumi_sconify.engine.chart.objects`).
Here each object becomes one typed ``pulumi_kubernetes`` resource, so ``pulumi preview`` shows a diff per
object, and values that exist only after other resources (the image digest, the CAS address) are
filled in as Pulumi outputs where the model holds a placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .naming import Children

_CLASSES: dict[tuple[str, str], Any] = {
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
}
_ARGUMENTS = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "stringData": "string_data",
    "type": "type",
    "automountServiceAccountToken": "automount_service_account_token",
    "roleRef": "role_ref",
    "subjects": "subjects",
}
"""Top-level object fields and the keyword each resource class takes them as."""


PENDING_HOST = "pending.sconify.invalid"
"""Placeholders live under a reserved name (RFC 2606), so no real value is ever taken for one."""


def pending(name: str) -> str:
    """The placeholder that :func:`with_outputs` replaces with the output given for ``name``."""
    return f"{PENDING_HOST}/{name}"


def with_outputs(value: Any, placeholders: Mapping[str, pulumi.Input[Any]]) -> Any:
    """``value`` with every string equal to a placeholder replaced by that placeholder's input."""
    if isinstance(value, str):
        return placeholders.get(value, value)
    if isinstance(value, dict):
        return {key: with_outputs(item, placeholders) for key, item in value.items()}
    if isinstance(value, list):
        return [with_outputs(item, placeholders) for item in value]
    return value


def declare_stateful(
    children: Children,
    objects: Mapping[str, Mapping[str, Any]],
    placeholders: Mapping[str, pulumi.Input[Any]] | None = None,
) -> dict[str, pulumi.CustomResource]:
    """Declare a stateful workload's objects (by child name: its ``namespace``, what the workload needs, and
    its ``statefulset``): everything in the namespace after it, the StatefulSet after everything it mounts
    or needs."""
    rest = {child: body for child, body in objects.items() if child not in ("namespace", "statefulset")}
    namespace = object_resource(*children("namespace"), objects["namespace"])
    declared = {
        child: object_resource(*children(child, depends_on=[namespace]), body, placeholders)
        for child, body in rest.items()
    }
    needs = [namespace, *declared.values()]
    statefulset = object_resource(
        *children("statefulset", depends_on=needs), objects["statefulset"], placeholders
    )
    return {"namespace": namespace, **declared, "statefulset": statefulset}


def object_resource(
    resource_name: str,
    opts: pulumi.ResourceOptions,
    kubernetes_object: Mapping[str, Any],
    placeholders: Mapping[str, pulumi.Input[Any]] | None = None,
) -> pulumi.CustomResource:
    """Declare one object of the workload model (``apiVersion``, ``kind``, ``metadata``, ...)."""
    kind = (str(kubernetes_object["apiVersion"]), str(kubernetes_object["kind"]))
    resource_class = _CLASSES.get(kind)
    if resource_class is None:
        raise ValueError(f"{kind[0]} {kind[1]}: not an object kind the components create")
    arguments = {
        _ARGUMENTS[field]: with_outputs(value, placeholders or {})
        for field, value in kubernetes_object.items()
        if field not in ("apiVersion", "kind")
    }
    resource: pulumi.CustomResource = resource_class(resource_name, **arguments, opts=opts)
    return resource
