"""What the service and CAS components need of a cluster, whichever platform made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class StorageProfile:
    """How a platform stores volume ciphertext."""

    storage_class: str
    """The storage class of claims (``standard`` on minikube, ``azurefile-csi`` on AKS)."""
    access_mode: str
    """``ReadWriteOnce`` on minikube; ``ReadWriteMany`` on AKS, so a pod rescheduled to another node of
    the confidential pool reattaches at once (the CAS anchor, not the access mode, keeps a single
    writer: a second writer's commit fails)."""


@dataclass(frozen=True)
class Placement:
    """Where confidential pods run."""

    node_selector: dict[str, str] = field(default_factory=dict)
    """Node labels confidential pods require."""
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    """Taints of the confidential nodes that confidential pods tolerate."""
    sgx_device_plugin: str = "disabled"
    """``useSGXDevPlugin`` of the workload model: ``azure`` asks for EPC on AKS's SGX pool."""
    device_resources: dict[str, str] = field(default_factory=dict)
    """Extended resources each confidential container asks for: the device it collects hardware
    evidence from (``sconify.io/tpmrm0`` for an Azure confidential VM's vTPM)."""


class KubernetesCluster(Protocol):
    """A cluster component: :class:`~.minikube.MinikubeCluster` or :class:`~.aks.AksCluster`."""

    platform: str
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    storage: StorageProfile
    placement: Placement
    registry: pulumi.Output[str]
    """Where confidential images are pushed (``host[:port]``), empty when the cluster has none."""
    registry_auth: pulumi.Output[str] | None
    """A Docker ``config.json`` that can push to :attr:`registry`; ``None`` when none is needed."""
    insecure_registries: list[pulumi.Input[str]]
    """Registries reached over plain HTTP (minikube's registry add-on)."""
