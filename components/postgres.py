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

from .cluster import Placement
from .kubernetes import ingress_policy, object_resource, pending
from .naming import Children

POSTGRES_IMAGE = "docker.io/library/postgres:16-bookworm"
"""The in-cluster server's image, by tag (this project cannot resolve the registry to pin it): pin it by
digest for anything but a dev stack (``InClusterPostgresArgs.image``)."""
POSTGRES_PORT = 5432
POSTGRES_USER_ID = 999
"""The ``postgres`` user of the official image (Debian variant)."""
CAS_POD_LABELS = {"app.kubernetes.io/name": "sconify-cas"}
"""What every CAS pod is labelled (:class:`~.cas.CasDeployment`): the only clients the in-cluster
database admits."""


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
        if isinstance(self.url, str):
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise ValueError("store.url: expected a postgresql:// URL")
            userinfo = self.url.split("://", 1)[1].split("@", 1)[0] if "@" in self.url else ""
            if ":" in userinfo or "password=" in self.url:
                raise ValueError("store.url: holds a password; give it as store.password (a secret)")


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
        name = "sconify-cas-store"
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": resource_name}
        metadata: dict[str, object] = {"name": name, "namespace": args.namespace, "labels": labels}
        password = random.RandomPassword(
            *children("password", protect=args.protect or None), length=32, special=False
        )
        namespace = object_resource(
            *children("namespace"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace}},
        )
        secret = object_resource(
            *children("secret", depends_on=[namespace]),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": "Opaque",
                "stringData": {"password": pending("password")},
            },
            {pending("password"): password.result},
        )
        service = object_resource(
            *children("service", depends_on=[namespace]),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata,
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres"}],
                },
            },
        )
        cas_pods = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": args.client_namespace}},
            "podSelector": {"matchLabels": CAS_POD_LABELS},
        }
        network_policy = object_resource(
            *children("network-policy", depends_on=[namespace]),
            ingress_policy(metadata, labels, [(POSTGRES_PORT, [cas_pods])]),
        )
        statefulset = object_resource(
            *children("statefulset", depends_on=[namespace, secret, service, network_policy]),
            _server(metadata, labels, args),
        )
        host = f"{name}.{args.namespace}.svc"
        # Known once the server is ready (the provider waits for the StatefulSet): the CAS starts after.
        url = statefulset.id.apply(lambda _: f"postgresql://cas@{host}:{POSTGRES_PORT}/cas")
        self.store = PostgresStore(url=url, password=pulumi.Output.secret(password.result))
        self.register_outputs({"url": url})


def _server(
    metadata: dict[str, object], labels: dict[str, str], args: InClusterPostgresArgs
) -> dict[str, object]:
    """The StatefulSet of the official image: user ``cas``, database ``cas``, data in a subdirectory of
    the claim (initdb refuses a mount point's ``lost+found``), run as its ``postgres`` user."""
    data = "/var/lib/postgresql/data"
    pod: dict[str, object] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": POSTGRES_USER_ID,
            "runAsGroup": POSTGRES_USER_ID,
            "fsGroup": POSTGRES_USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "postgres",
                "image": args.image,
                "env": [
                    {"name": "POSTGRES_USER", "value": "cas"},
                    {"name": "POSTGRES_DB", "value": "cas"},
                    {
                        "name": "POSTGRES_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": metadata["name"], "key": "password"}},
                    },
                    {"name": "PGDATA", "value": f"{data}/pgdata"},
                ],
                "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                "readinessProbe": {
                    "exec": {"command": ["pg_isready", "--username=cas", "--dbname=cas"]},
                    "periodSeconds": 5,
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "data", "mountPath": data},
                    {"name": "run", "mountPath": "/var/run/postgresql"},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own, empty
                ],
            }
        ],
        "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if args.placement.node_selector:
        pod["nodeSelector"] = args.placement.node_selector
    if args.placement.tolerations:
        pod["tolerations"] = args.placement.tolerations
    claim: dict[str, object] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": args.storage_size}},
    }
    if args.storage_class:
        claim["storageClassName"] = args.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "serviceName": metadata["name"],
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
    }
