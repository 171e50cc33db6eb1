"""``MinikubeCluster``: a local cluster for the dev stack, started and deleted with the stack."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from ..engine.errors import ArgumentsError
from .cluster import Placement, StorageProfile
from .naming import Children

_PROFILE = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")
REGISTRY_PORT = 5000
"""The registry add-on's proxy listens on every node at this port."""


@dataclass(frozen=True, kw_only=True)
class MinikubeClusterArgs:
    profile: str = "sconify"
    """The minikube profile (a DNS label): one profile per stack keeps stacks apart."""
    kubernetes_version: str = ""
    """``--kubernetes-version``; empty for minikube's default."""
    driver: str = "docker"
    """``--driver``: docker, podman, kvm2, ..."""
    cpus: int = 2
    """``--cpus`` (minikube needs at least 2)."""
    memory: str = "4g"
    """``--memory``."""
    registry: bool = True
    """Enable the registry add-on: confidential images are pushed to ``<node ip>:5000`` over plain
    HTTP (that network only) and pulled from there by the node."""
    insecure_registry_network: str = "192.168.0.0/16"
    """Where the node may pull over plain HTTP from (``--insecure-registry``); the docker driver's
    network is 192.168.49.0/24."""
    extra_args: list[str] = field(default_factory=list)
    """More ``minikube start`` arguments, passed as they are."""

    def __post_init__(self) -> None:
        problems = []
        if not _PROFILE.fullmatch(self.profile):
            problems.append(f"profile {self.profile!r}: a DNS label of lower-case letters, digits and -")
        if self.cpus < 2:
            problems.append("cpus: minikube needs at least 2")
        ArgumentsError.raise_for("MinikubeClusterArgs", problems)


class MinikubeCluster(pulumi.ComponentResource):
    """A minikube profile, started by ``pulumi up`` and deleted by ``pulumi destroy``.

    Needs ``minikube`` and the driver on the machine that runs Pulumi. The kubeconfig is read from
    minikube after start (flattened, so it carries the client key) and is a secret output.
    """

    platform = "minikube"
    kubeconfig: pulumi.Output[str]
    """The profile's kubeconfig. Secret."""
    node_address: pulumi.Output[str]
    """The node's IP address (``minikube ip``), reachable from the host."""
    registry: pulumi.Output[str]
    """``<node ip>:5000`` with the registry add-on, else empty."""
    registry_auth: pulumi.Output[str] | None = None
    """None: minikube's registry needs no credentials."""
    insecure_registries: list[pulumi.Input[str]]
    """The registry add-on (``<node ip>:5000``, plain HTTP on the node's network)."""
    provider: k8s.Provider
    storage = StorageProfile(storage_class="standard", access_mode="ReadWriteOnce")
    """How volumes are stored: minikube's ``standard`` class, ReadWriteOnce."""
    placement = Placement()
    """Where confidential pods run: anywhere (one node, no TEE)."""

    def __init__(
        self, resource_name: str, args: MinikubeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:MinikubeCluster", resource_name, None, opts)
        children = Children(self, resource_name)
        profile = shlex.quote(args.profile)
        start = ["minikube", "start", "--profile", args.profile, "--driver", args.driver]
        start += ["--cpus", str(args.cpus), "--memory", args.memory]
        if args.kubernetes_version:
            start += ["--kubernetes-version", args.kubernetes_version]
        if args.registry:
            start += ["--addons", "registry", "--insecure-registry", args.insecure_registry_network]
        start += args.extra_args
        # A changed flag replaces the profile. Delete before create: the old resource's delete names the
        # same profile, so deleting it after the new one started would delete the new cluster.
        cluster = command.local.Command(
            children.name("start"),
            create=shlex.join(start),
            delete=f"minikube delete --profile {profile}",
            triggers=[shlex.join(start)],
            opts=children.options("start", delete_before_replace=True),
        )
        kubeconfig = command.local.Command(
            children.name("kubeconfig"),
            create=f"minikube --profile {profile} kubectl -- config view --raw --flatten --minify "
            f"--context {profile}",
            logging=command.local.Logging.NONE,
            triggers=[cluster.id],
            opts=children.options("kubeconfig", depends_on=[cluster], additional_secret_outputs=["stdout"]),
        )
        address = command.local.Command(
            children.name("ip"),
            create=f"minikube --profile {profile} ip",
            triggers=[cluster.id],
            opts=children.options("ip", depends_on=[cluster]),
        )
        self.kubeconfig = pulumi.Output.secret(kubeconfig.stdout)
        self.node_address = address.stdout.apply(str.strip)
        self.registry = (
            self.node_address.apply(lambda ip: f"{ip}:{REGISTRY_PORT}")
            if args.registry
            else pulumi.Output.from_input("")
        )
        self.insecure_registries = [self.registry] if args.registry else []
        self.provider = k8s.Provider(
            children.name("kubernetes"), kubeconfig=self.kubeconfig, opts=children.options("kubernetes")
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "node_address": self.node_address, "registry": self.registry}
        )
