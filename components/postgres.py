"""Where a CAS on PostgreSQL keeps its state: a database given (``PostgresStore``), or one made in the
cluster for a dev stack (``InClusterPostgres``). :class:`~.azure_postgres.AzurePostgres` makes the
production one on AKS. Each gives a :class:`PostgresStore` for ``CasDeploymentArgs.store``.

Why a database server at all: on SQLite every volume's key and latest state lives on one claim under one
CAS pod (docs/cas.md#stores); on PostgreSQL the CAS runs as replicas, and outlives its pods, disks and
zone as long as the database does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_random as random

from ..engine.chart.cas_objects import PostgresPlan, postgres_objects
from ..engine.errors import ArgumentsError
from .cluster import Placement
from .kubernetes import declare_stateful, pending
from .naming import Children

POSTGRES_IMAGE = "docker.io/library/postgres:16-bookworm"
"""The in-cluster server's image, by tag (this project cannot resolve the registry to pin it): pin it by
digest for anything but a dev stack (``InClusterPostgresArgs.image``)."""


@dataclass(frozen=True, kw_only=True)
class PostgresStore:
    """A PostgreSQL database for the CAS's state (instead of SQLite on its claim): what lets it run as
    replicas, and outlive its pods, disks and zone when the database does (a zone-redundant server)."""

    url: pulumi.Input[str]
    """``postgresql://user@host:5432/database``, without a password (``?sslmode=verify-full`` for a
    remote server, with :attr:`ca_certificate`)."""
    password: pulumi.Input[str]
    """The user's password: kept in the CAS's Secret, given to the CAS as ``PGPASSWORD``. Secret."""
    ca_certificate: pulumi.Input[str] | None = None
    """The root certificates (PEM) the server's TLS certificate must chain to. Given, the CAS verifies
    the server (``PGSSLROOTCERT``, and ``PGSSLMODE=verify-full`` unless the URL says otherwise), so no one
    on the network path can pose as the database."""

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.url, str):
            if not self.url.startswith(("postgresql://", "postgres://")):
                problems.append("store.url: expected a postgresql:// URL")
            userinfo = self.url.split("://", 1)[1].split("@", 1)[0] if "@" in self.url else ""
            if ":" in userinfo or "password=" in self.url:
                problems.append("store.url: holds a password; give it as store.password (a secret)")
        ArgumentsError.raise_for("PostgresStore", problems)


@dataclass(frozen=True, kw_only=True)
class InClusterPostgresArgs:
    namespace: str = "sconify-cas-store"
    """The Kubernetes namespace of the server (created)."""
    client_namespace: str = "sconify-cas"
    """The CAS's namespace: only its CAS pods may connect (a NetworkPolicy)."""
    image: str = POSTGRES_IMAGE
    """The official PostgreSQL image (Debian variant, whose ``postgres`` user is uid 999)."""
    storage_class: str = ""
    """The claim of the database; empty for the cluster's default."""
    storage_size: str = "2Gi"
    """The claim's size."""
    placement: Placement = field(default_factory=Placement)
    """Where the server's pod runs (beside the CAS it serves)."""
    protect: bool = False
    """Pulumi refuses to delete the password (it is set once, when the server first starts; a new one
    would lock the CAS out). The claim outlives the StatefulSet in any case."""


class InClusterPostgres(pulumi.ComponentResource):
    """A single PostgreSQL server in the cluster, for a dev stack's CAS replicas (minikube): a StatefulSet
    on a retained claim, a generated password in a Secret, and a NetworkPolicy that admits CAS pods only.

    It is one pod on one disk: it lets the CAS run as replicas and be replaced without losing state, but
    not survive the node or its disk — production uses :class:`~.azure_postgres.AzurePostgres`. Traffic
    to it is not encrypted (what the CAS keeps there is sealed under its master key; docs/cas.md)."""

    store: PostgresStore
    """What ``CasDeploymentArgs.store`` takes. Its URL is known once the server is ready."""

    def __init__(
        self, resource_name: str, args: InClusterPostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:InClusterPostgres", resource_name, None, opts)
        children = Children(self, resource_name)
        password = random.RandomPassword(
            *children("password", protect=args.protect or None), length=32, special=False
        )
        plan = PostgresPlan(
            instance=resource_name,
            namespace=args.namespace,
            client_namespace=args.client_namespace,
            image=args.image,
            password=pending("password"),
            storage_class=args.storage_class,
            storage_size=args.storage_size,
            node_selector=args.placement.node_selector,
            tolerations=args.placement.tolerations,
        )
        placeholders = {pending("password"): password.result}
        statefulset = declare_stateful(children, postgres_objects(plan), placeholders)["statefulset"]
        # Known once the server is ready (the provider waits for the StatefulSet): the CAS starts after.
        url = statefulset.id.apply(lambda _: plan.url)
        self.store = PostgresStore(url=url, password=pulumi.Output.secret(password.result))
        self.register_outputs({"url": url})
