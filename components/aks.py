"""``AksCluster``: the production platform — AKS with a confidential node pool."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_kubernetes as k8s

from ..engine.errors import ArgumentsError
from .azure_postgres import AzureDatabaseNetwork
from .cluster import Placement, StorageProfile
from .kubernetes import object_resource
from .naming import Children

ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
"""Azure's built-in AcrPull role."""
CONFIDENTIAL_LABEL = "sconify.io/confidential"
POOL_SIZES = {
    "sgx": re.compile(r"Standard_DC\d+s_v3"),
    "cvm": re.compile(r"Standard_(DC|EC)\d+(as|ads|es|eds)_v[56]"),
}
"""SGX enclaves (Intel, DCsv3), or confidential VMs: AMD SEV-SNP (DCasv5, ECasv5 and their ``ads`` and v6
siblings) or Intel TDX (DCesv5, ECesv5, ...)."""
DEFAULT_VM_SIZES = {"sgx": "Standard_DC4s_v3", "cvm": "Standard_DC4as_v5"}
VTPM_DOMAIN = "sconify.io"
VTPM_RESOURCE = f"{VTPM_DOMAIN}/tpmrm0"
"""The extended resource that gives a container the confidential VM's vTPM (``/dev/tpmrm0``)."""

PCRS_NEEDED = (
    "cvmPcrs is not set: the cluster and the CAS are deployed, the service is not. Its keys go only to a "
    "confidential VM booted with the PCRs the policy pins, which can be read now that the nodes run: see "
    "the README's \"Pinning the confidential nodes' PCRs\", set cvmPcrs, and run `pulumi up` again."
)
"""What an AKS program on confidential VMs says when the nodes' PCRs are not set yet (the first ``up``)."""
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"
"""Azure's built-in Network Contributor role: what AKS's identity needs on a subnet it did not make."""
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/16"
DNS_SERVICE_IP = "10.0.0.10"
"""Azure CNI overlay: pods and services get addresses outside the virtual network, which they must not
overlap."""
POSTGRES_DELEGATION = "Microsoft.DBforPostgreSQL/flexibleServers"
DEVICE_PLUGIN_IMAGE = "docker.io/squat/generic-device-plugin:latest"
"""squat/generic-device-plugin, which advertises the vTPM as :data:`VTPM_RESOURCE` so that pods get the
device without running privileged. Named by its ``latest`` tag here (this project cannot resolve the
registry to pin it): pin it by digest in production (``AksClusterArgs.vtpm_device_plugin_image``)."""


@dataclass(frozen=True, kw_only=True)
class AksClusterArgs:
    location: str
    """The Azure region, e.g. ``westeurope`` (it must offer the confidential VM size)."""
    confidential_pool: str = "cvm"
    """``cvm`` (confidential VMs: memory sealed from the host, attested with the vTPM's ``azure-cvm``
    evidence) or ``sgx`` (Intel SGX nodes with the ``ACCSGXDevicePlugin`` add-on; the open engine does
    not use the enclaves, only SCONE does)."""
    confidential_vm_size: str = ""
    """Empty for the pool's default (``Standard_DC4as_v5``, ``Standard_DC4s_v3``); for ``cvm``
    ``Standard_DC*as_v5`` (SEV-SNP) or ``Standard_DC*es_v5`` (TDX) and their siblings, for ``sgx``
    ``Standard_DC*s_v3``."""
    vtpm_device_plugin_image: str = DEVICE_PLUGIN_IMAGE
    """The device plugin that gives confidential pods the vTPM (``cvm`` only); pin it by digest."""
    confidential_node_count: int = 1
    """Nodes of the confidential pool; two or more (spread over the zones) keep the CAS and the
    services up through the loss of a node or zone."""
    system_vm_size: str = "Standard_D2s_v5"
    """The VM size of the system pool (AKS's own pods; nothing confidential runs there)."""
    system_node_count: int = 1
    """Nodes of the system pool."""
    kubernetes_version: str | None = None
    """None for AKS's default version."""
    container_registry: bool = True
    """Create an Azure Container Registry the cluster may pull from (AcrPull for its kubelet identity)."""
    resource_group_name: str | None = None
    """An existing resource group; a new one is created when None."""
    zones: tuple[str, ...] = ("1", "2", "3")
    """The availability zones both node pools span (and a zone-redundant database uses): what lets the
    CAS and the services survive a zone. Empty for a region without zones (the confidential VM size must
    be offered in every zone named). Changing it replaces the pools."""
    address_space: str = "10.240.0.0/16"
    """The cluster's virtual network; its node subnet and database subnet are cut from it."""
    node_subnet: str = "10.240.0.0/20"
    """The nodes' subnet (pods get addresses from the overlay's own range)."""
    database_subnet: str = "10.240.16.0/24"
    """Delegated to Azure Database for PostgreSQL (:class:`~.azure_postgres.AzurePostgres`)."""

    def __post_init__(self) -> None:
        problems = []
        pattern = POOL_SIZES.get(self.confidential_pool)
        if pattern is None:
            problems.append(f"confidential_pool {self.confidential_pool!r}: expected cvm or sgx")
        else:
            if not self.confidential_vm_size:
                object.__setattr__(self, "confidential_vm_size", DEFAULT_VM_SIZES[self.confidential_pool])
            if not pattern.fullmatch(self.confidential_vm_size):
                problems.append(
                    f"confidential_vm_size {self.confidential_vm_size!r} is not a {self.confidential_pool} "
                    f"size ({pattern.pattern})"
                )
        if self.confidential_node_count < 1 or self.system_node_count < 1:
            problems.append("node counts: at least 1")
        if any(zone not in ("1", "2", "3") for zone in self.zones) or len(set(self.zones)) != len(self.zones):
            problems.append(f'zones {list(self.zones)}: distinct Azure availability zones, "1" to "3"')
        problems += _network_problems(
            self.address_space, {"node_subnet": self.node_subnet, "database_subnet": self.database_subnet}
        )
        ArgumentsError.raise_for("AksClusterArgs", problems)


def _network_problems(address_space: str, subnets: dict[str, str]) -> list[str]:
    """Subnets inside the address space, apart from each other and from the overlay's pod and service
    ranges (an overlap is refused by Azure only after minutes of ``pulumi up``)."""
    try:
        space = ipaddress.ip_network(address_space)
        ranges = {name: ipaddress.ip_network(text) for name, text in subnets.items()}
    except ValueError as error:
        return [f"network: {error}"]
    reserved = {
        "the pod range": ipaddress.ip_network(POD_CIDR),
        "the service range": ipaddress.ip_network(SERVICE_CIDR),
    }
    problems = [
        f"{name} {subnet}: not inside address_space {space}"
        for name, subnet in ranges.items()
        if not subnet.subnet_of(space)  # type: ignore[arg-type]
    ]
    for name, subnet in ranges.items():
        for other, taken in [*((n, r) for n, r in ranges.items() if n > name), *reserved.items()]:
            if subnet.overlaps(taken):
                problems.append(f"{name} {subnet}: overlaps {other} ({taken})")
    problems += [
        f"address_space {space}: overlaps {what} ({taken})"
        for what, taken in reserved.items()
        if space.overlaps(taken)
    ]
    return problems


def _docker_config(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"auth": auth}}})


def _role(role: str) -> pulumi.Output[str]:
    """The ARM id of a built-in role in the current subscription."""
    subscription = azure.authorization.get_client_config_output().subscription_id
    return subscription.apply(
        lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def _cluster_identity(identity: Mapping[str, Any] | None) -> str:
    """The object id of the cluster's own (system-assigned) identity."""
    principal = (identity or {}).get("principal_id")
    if not principal:
        raise ValueError("the managed cluster reports no identity: cannot grant it its subnet")
    return str(principal)


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
    """The managed cluster's name."""
    resource_group_name: pulumi.Output[str]
    """The resource group everything of the cluster is in."""
    registry: pulumi.Output[str]
    """The registry's login server, empty without one."""
    registry_auth: pulumi.Output[str] | None
    """A Docker ``config.json`` for pushing to the registry. Secret."""
    insecure_registries: list[pulumi.Input[str]]
    """Registries reached over plain HTTP: none on AKS."""
    provider: k8s.Provider
    storage = StorageProfile(storage_class="azurefile-csi", access_mode="ReadWriteMany")
    """How volumes are stored: ``azurefile-csi``, ReadWriteMany (a rescheduled pod reattaches at once)."""
    placement: Placement
    """Where confidential pods run: the tainted confidential pool, with the vTPM on ``cvm`` nodes."""
    database_network: AzureDatabaseNetwork
    """Where :class:`~.azure_postgres.AzurePostgres` puts the CAS's database: a delegated subnet and a
    private DNS zone of the cluster's network."""

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
        nodes = self._network(group, args)
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
                    vnet_subnet_id=nodes.id,
                    availability_zones=list(args.zones) or None,
                ),
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="confidential",
                    mode="User",
                    count=args.confidential_node_count,
                    vm_size=args.confidential_vm_size,
                    os_type="Linux",
                    node_labels={CONFIDENTIAL_LABEL: "true"},
                    node_taints=[taint],
                    vnet_subnet_id=nodes.id,
                    availability_zones=list(args.zones) or None,
                ),
            ],
            # Azure CNI overlay with Cilium: NetworkPolicies are enforced (the CAS's attestation port is
            # closed to all but attesting pods, its database to all but the CAS); without a policy
            # engine AKS would accept them and enforce nothing.
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_dataplane="cilium",
                network_policy="cilium",
                pod_cidr=POD_CIDR,
                service_cidr=SERVICE_CIDR,
                dns_service_ip=DNS_SERVICE_IP,
            ),
            addon_profiles=addons,
            opts=children.options("cluster"),
        )
        self.cluster_name = cluster.name
        self.resource_group_name = group
        # AKS's own identity manages the load balancer's and the nodes' addresses in a subnet it did not
        # make (the CLI grants this itself; an ARM deployment must).
        self._grant(
            "cluster-network-contributor",
            cluster.identity.apply(_cluster_identity),
            NETWORK_CONTRIBUTOR_ROLE,
            nodes.id,
        )
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
            device_resources={VTPM_RESOURCE: "1"} if args.confidential_pool == "cvm" else {},
        )
        self.registry = pulumi.Output.from_input("")
        self.registry_auth = None
        self.insecure_registries = []
        if args.container_registry:
            self._registry(group, args.location, cluster)
        self.provider = k8s.Provider(
            children.name("kubernetes"), kubeconfig=self.kubeconfig, opts=children.options("kubernetes")
        )
        if args.confidential_pool == "cvm":
            self._vtpm_device_plugin(args.vtpm_device_plugin_image)
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "cluster_name": self.cluster_name,
                "resource_group_name": self.resource_group_name,
                "registry": self.registry,
            }
        )

    def _grant(
        self, child: str, principal: pulumi.Input[str], role: str, scope: pulumi.Input[str]
    ) -> azure.authorization.RoleAssignment:
        """Azure's built-in ``role`` for a service principal on ``scope``."""
        return azure.authorization.RoleAssignment(
            self._children.name(child),
            principal_id=principal,
            principal_type="ServicePrincipal",
            role_definition_id=_role(role),
            scope=scope,
            opts=self._children.options(child),
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
        self._grant(
            "kubelet-acr-pull", cluster.identity_profile.apply(_kubelet_identity), ACR_PULL_ROLE, registry.id
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

    def _network(self, group: pulumi.Output[str], args: AksClusterArgs) -> azure.network.Subnet:
        """The cluster's virtual network: the nodes' subnet (returned), and a subnet delegated to Azure
        Database for PostgreSQL with the private DNS zone its servers are named in."""
        children = self._children
        network = azure.network.VirtualNetwork(
            children.name("network"),
            resource_group_name=group,
            location=args.location,
            address_space=azure.network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            opts=children.options("network"),
        )
        nodes = azure.network.Subnet(
            children.name("nodes"),
            resource_group_name=group,
            virtual_network_name=network.name,
            address_prefix=args.node_subnet,
            opts=children.options("nodes"),
        )
        databases = azure.network.Subnet(
            children.name("databases"),
            resource_group_name=group,
            virtual_network_name=network.name,
            address_prefix=args.database_subnet,
            delegations=[azure.network.DelegationArgs(name="postgres", service_name=POSTGRES_DELEGATION)],
            opts=children.options("databases", depends_on=[nodes]),  # Azure changes one subnet at a time
        )
        # A flexible server's private zone must end in ".postgres.database.azure.com"; one per stack.
        prefix = re.sub(r"[^a-z0-9-]", "-", f"{pulumi.get_project()}-{pulumi.get_stack()}".lower())[:50]
        zone = azure.privatedns.PrivateZone(
            children.name("database-dns"),
            resource_group_name=group,
            location="global",
            private_zone_name=f"{prefix}.private.postgres.database.azure.com",
            opts=children.options("database-dns"),
        )
        link = azure.privatedns.VirtualNetworkLink(
            children.name("database-dns-link"),
            resource_group_name=group,
            location="global",
            private_zone_name=zone.name,
            virtual_network=azure.privatedns.SubResourceArgs(id=network.id),
            registration_enabled=False,
            opts=children.options("database-dns-link"),
        )
        self.database_network = AzureDatabaseNetwork(
            resource_group_name=group,
            location=args.location,
            subnet_id=databases.id,
            # The server may be created only once its zone resolves in the network.
            private_dns_zone_id=pulumi.Output.all(zone.id, link.id).apply(lambda ids: ids[0]),
            zones=tuple(args.zones),
        )
        return nodes

    def _vtpm_device_plugin(self, image: str) -> None:
        """The vTPM of each confidential node, offered to pods as :data:`VTPM_RESOURCE`.

        A pod that mounts ``/dev/tpmrm0`` from the host still may not open it (the container's device
        cgroup refuses) unless it runs privileged, which would hand it the whole node. A device plugin
        is the least privilege that works: it runs privileged on the node, and a pod that asks for one
        unit of the resource gets that one device node, readable and writable, and nothing else."""
        children = self._children
        name = children.name("vtpm-device-plugin")
        object_resource(
            name,
            pulumi.ResourceOptions.merge(
                children.options("vtpm-device-plugin"), pulumi.ResourceOptions(provider=self.provider)
            ),
            vtpm_device_plugin(image, self.placement),
        )


def vtpm_device_plugin(image: str, placement: Placement) -> dict[str, Any]:
    """The DaemonSet that advertises each confidential node's ``/dev/tpmrm0`` as :data:`VTPM_RESOURCE`
    (up to 16 pods per node share it: the kernel's resource manager keeps their sessions apart)."""
    labels = {"app.kubernetes.io/name": "sconify-vtpm-device-plugin"}
    device = json.dumps({"name": "tpmrm0", "groups": [{"paths": [{"path": "/dev/tpmrm0"}], "count": 16}]})
    plugin_directory = "/var/lib/kubelet/device-plugins"
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "sconify-vtpm-device-plugin", "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": placement.node_selector,
                    "tolerations": placement.tolerations,
                    "containers": [
                        {
                            "name": "device-plugin",
                            "image": image,
                            "args": ["--domain", VTPM_DOMAIN, "--device", device],
                            "securityContext": {"privileged": True},
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                            "volumeMounts": [
                                {"name": "device-plugins", "mountPath": plugin_directory},
                                {"name": "dev", "mountPath": "/dev"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "device-plugins", "hostPath": {"path": plugin_directory}},
                        {"name": "dev", "hostPath": {"path": "/dev"}},
                    ],
                },
            },
        },
    }
