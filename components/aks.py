"""``AksCluster``: the production platform — AKS with a confidential node pool."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_kubernetes as k8s

from .cluster import Placement, StorageProfile
from .naming import Children

ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
"""Azure's built-in AcrPull role."""
CONFIDENTIAL_LABEL = "sconify.io/confidential"
POOL_SIZES = {"sgx": re.compile(r"Standard_DC\d+s_v3"), "cvm": re.compile(r"Standard_DC\d+as_v5")}
"""SGX enclaves (Intel, DCsv3) or confidential VMs (AMD SEV-SNP, DCasv5)."""


@dataclass(frozen=True, kw_only=True)
class AksClusterArgs:
    location: str
    """The Azure region, e.g. ``westeurope`` (it must offer the confidential VM size)."""
    confidential_pool: str = "sgx"
    """``sgx`` (Intel SGX nodes with the ``ACCSGXDevicePlugin`` add-on) or ``cvm`` (confidential VMs)."""
    confidential_vm_size: str = "Standard_DC4s_v3"
    """``Standard_DC*s_v3`` for ``sgx``, ``Standard_DC*as_v5`` for ``cvm``."""
    confidential_node_count: int = 1
    system_vm_size: str = "Standard_D2s_v5"
    system_node_count: int = 1
    kubernetes_version: str | None = None
    """None for AKS's default version."""
    container_registry: bool = True
    """Create an Azure Container Registry the cluster may pull from (AcrPull for its kubelet identity)."""
    resource_group_name: str | None = None
    """An existing resource group; a new one is created when None."""

    def __post_init__(self) -> None:
        pattern = POOL_SIZES.get(self.confidential_pool)
        if pattern is None:
            raise ValueError(f"confidential_pool {self.confidential_pool!r}: expected sgx or cvm")
        if not pattern.fullmatch(self.confidential_vm_size):
            raise ValueError(
                f"confidential_vm_size {self.confidential_vm_size!r} is not a {self.confidential_pool} size "
                f"({pattern.pattern})"
            )
        if self.confidential_node_count < 1 or self.system_node_count < 1:
            raise ValueError("node counts: at least 1")


def _docker_config(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"auth": auth}}})


def _kubelet_identity(profile: Mapping[str, Any] | None) -> str:
    """The object id of the identity the nodes pull images with."""
    identity = (profile or {}).get("kubeletidentity")
    if identity is None:
        raise ValueError("the managed cluster reports no kubelet identity: cannot grant it AcrPull")
    return str(identity.object_id)


class AksCluster(pulumi.ComponentResource):
    """A managed cluster with a system pool and a tainted confidential pool, an optional registry, the
    ``azurefile-csi`` storage class for volumes, and a Kubernetes provider for children."""

    platform = "aks"
    kubeconfig: pulumi.Output[str]
    """The cluster user's kubeconfig. Secret."""
    cluster_name: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]
    registry: pulumi.Output[str]
    """The registry's login server, empty without one."""
    registry_auth: pulumi.Output[str] | None
    """A Docker ``config.json`` for pushing to the registry. Secret."""
    insecure_registries: list[pulumi.Input[str]]
    provider: k8s.Provider
    storage = StorageProfile(storage_class="azurefile-csi", access_mode="ReadWriteMany")
    placement: Placement

    def __init__(
        self, resource_name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:AksCluster", resource_name, None, opts)
        children = Children(self, resource_name)
        self._children = children
        if args.resource_group_name is None:
            group: pulumi.Output[str] = azure.resources.ResourceGroup(
                children.name("group"), location=args.location, opts=children.options("group")
            ).name
        else:
            group = pulumi.Output.from_input(args.resource_group_name)
        taint = f"{CONFIDENTIAL_LABEL}=true:NoSchedule"
        containerservice = azure.containerservice
        addons: dict[str, containerservice.ManagedClusterAddonProfileArgs] = {}
        if args.confidential_pool == "sgx":
            addons["ACCSGXDevicePlugin"] = containerservice.ManagedClusterAddonProfileArgs(
                enabled=True, config={"ACCSGXQuoteHelperEnabled": "true"}
            )
        cluster = containerservice.ManagedCluster(
            children.name("cluster"),
            resource_group_name=group,
            location=args.location,
            dns_prefix=f"{pulumi.get_project()}-{pulumi.get_stack()}"[:54],
            kubernetes_version=args.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            enable_rbac=True,
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="system",
                    mode="System",
                    count=args.system_node_count,
                    vm_size=args.system_vm_size,
                    os_type="Linux",
                ),
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="confidential",
                    mode="User",
                    count=args.confidential_node_count,
                    vm_size=args.confidential_vm_size,
                    os_type="Linux",
                    node_labels={CONFIDENTIAL_LABEL: "true"},
                    node_taints=[taint],
                ),
            ],
            addon_profiles=addons,
            opts=children.options("cluster"),
        )
        self.cluster_name = cluster.name
        self.resource_group_name = group
        # Output types are dicts keyed by their Python names: ["value"] reads typed and plain results alike.
        credentials = azure.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group, resource_name=cluster.name
        )
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs.apply(lambda configs: base64.b64decode(configs[0]["value"]).decode())
        )
        self.placement = Placement(
            node_selector={CONFIDENTIAL_LABEL: "true"},
            tolerations=[
                {"key": CONFIDENTIAL_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
            ],
            sgx_device_plugin="azure" if args.confidential_pool == "sgx" else "disabled",
        )
        self.registry = pulumi.Output.from_input("")
        self.registry_auth = None
        self.insecure_registries = []
        if args.container_registry:
            self._registry(group, args.location, cluster)
        self.provider = k8s.Provider(
            children.name("kubernetes"), kubeconfig=self.kubeconfig, opts=children.options("kubernetes")
        )
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "cluster_name": self.cluster_name,
                "resource_group_name": self.resource_group_name,
                "registry": self.registry,
            }
        )

    def _registry(
        self, group: pulumi.Output[str], location: str, cluster: azure.containerservice.ManagedCluster
    ) -> None:
        children = self._children
        registry = azure.containerregistry.Registry(
            children.name("registry"),
            resource_group_name=group,
            location=location,
            sku={"name": "Basic"},
            admin_user_enabled=True,
            opts=children.options("registry"),
        )
        subscription = azure.authorization.get_client_config_output().subscription_id
        azure.authorization.RoleAssignment(
            children.name("kubelet-acr-pull"),
            principal_id=cluster.identity_profile.apply(_kubelet_identity),
            principal_type="ServicePrincipal",
            role_definition_id=subscription.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE}"
                )
            ),
            scope=registry.id,
            opts=children.options("kubelet-acr-pull"),
        )
        credentials = azure.containerregistry.list_registry_credentials_output(
            resource_group_name=group, registry_name=registry.name
        )
        self.registry = registry.login_server
        self.registry_auth = pulumi.Output.secret(
            pulumi.Output.all(registry.login_server, credentials.username, credentials.passwords).apply(
                lambda parts: _docker_config(parts[0], parts[1], parts[2][0]["value"])
            )
        )
