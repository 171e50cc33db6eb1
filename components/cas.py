"""Where services attest: a CAS deployed into the cluster (``CasDeployment``) or one that exists
(``ExternalCas``). Both offer the same three outputs (:class:`CasEndpoint`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pulumi

from ..engine.cas.quotas import granted_identities
from ..engine.chart.objects import ATTESTS_LABEL
from ..engine.cli.cas import serve_command
from ..engine.image.cas_image import DATA_DIRECTORY, STATE_DIRECTORY
from ..engine.policy import DEFAULT_KUBERNETES_ISSUER
from ..engine.vocabulary import ATTESTATION_PORT, CLIENT_PORT
from ..provider.resources import CasKeys, CasRecoveryKey
from .cluster import Placement
from .kubernetes import ingress_policy, object_resource, pending
from .naming import Children
from .postgres import CAS_POD_LABELS, PostgresStore

CA_DIRECTORY = "/etc/sconify-cas/ca"
RECOVERY_DIRECTORY = "/etc/sconify-cas/recovery"
STORE_CA_DIRECTORY = "/etc/sconify-cas/store-ca"
ZONE_LABEL = "topology.kubernetes.io/zone"
CAS_USER = 10001


class CasEndpoint(Protocol):
    address: pulumi.Output[str]
    """The client API (``host:port``) as the machine running Pulumi reaches it: sessions are uploaded
    there."""
    attestation_address: pulumi.Output[str]
    """The attestation API (``host:port``) as confidential pods reach it."""
    ca_certificate: pulumi.Output[str]
    """The CA certificate (PEM) both are pinned to."""


@dataclass(frozen=True, kw_only=True)
class ExternalCasArgs:
    address: pulumi.Input[str]
    """The client API, ``host:port``."""
    ca_certificate: pulumi.Input[str]
    """The CAS's CA certificate (PEM), as ``sconify cas serve`` writes it to ``DATA_DIR/cas-ca.pem``."""
    attestation_address: pulumi.Input[str] | None = None
    """The attestation API as pods reach it; by default the client API's host at port 18765."""


class ExternalCas(pulumi.ComponentResource):
    """A CAS that exists already (shared by teams, or run outside the cluster)."""

    address: pulumi.Output[str]
    """The client API (``host:port``)."""
    attestation_address: pulumi.Output[str]
    """The attestation API (``host:port``) as confidential pods reach it."""
    ca_certificate: pulumi.Output[str]
    """The CA certificate (PEM) both are pinned to."""

    def __init__(
        self, resource_name: str, args: ExternalCasArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:ExternalCas", resource_name, None, opts)
        self.address = pulumi.Output.from_input(args.address)
        self.ca_certificate = pulumi.Output.from_input(args.ca_certificate)
        self.attestation_address = (
            pulumi.Output.from_input(args.attestation_address)
            if args.attestation_address is not None
            else self.address.apply(
                lambda address: f"{address.rpartition(':')[0] or address}:{ATTESTATION_PORT}"
            )
        )
        self.register_outputs(
            {
                "address": self.address,
                "attestation_address": self.attestation_address,
                "ca_certificate": self.ca_certificate,
            }
        )


CAS_SERVICE_TYPES = ("NodePort", "LoadBalancer")
"""How the CAS's client API can be exposed outside the cluster."""


@dataclass(frozen=True, kw_only=True)
class CasDeploymentArgs:
    image: pulumi.Input[str]
    """The CAS image (``sconify cas image`` builds it from this package onto a base image with Python)."""
    external_host: pulumi.Input[str]
    """The DNS name or IP the client API is reached at from outside (minikube's node IP; on AKS the
    load balancer's DNS name). The server certificate is issued for it."""
    namespace: str = "sconify-cas"
    """The Kubernetes namespace (created)."""
    service_type: str = "NodePort"
    """How the client API is exposed: ``NodePort`` (minikube) or ``LoadBalancer`` (AKS)."""
    node_port: int = 30081
    """The client API's node port (``NodePort`` only)."""
    service_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations of the exposed Service, e.g. ``service.beta.kubernetes.io/azure-dns-label-name``."""
    storage_class: str = ""
    """The claim of the CAS database on SQLite: block storage (SQLite wants it), empty for the cluster
    default. A CAS on PostgreSQL has no claim."""
    storage_size: str = "1Gi"
    """The claim's size (SQLite only)."""
    placement: Placement = field(default_factory=Placement)
    """Where the CAS pod runs: it holds every service's secrets, so the confidential pool if any."""
    protect: bool = False
    """Pulumi refuses to delete the CAS's keys and the recovery key it made (production): the master key
    and the database hold every volume's key and latest state, so losing them makes every volume
    unreadable. Lift the protection (``pulumi state unprotect``) to really delete. The SQLite claim
    outlives the StatefulSet in any case."""
    kubernetes_issuer: pulumi.Input[str] = DEFAULT_KUBERNETES_ISSUER
    """The cluster's service-account issuer, whose tokens the CAS accepts as evidence. It reads the
    issuer's keys from ``<issuer>/openid/v1/jwks`` with its own service-account token."""
    expose_attestation: bool = False
    """Also expose the attestation API outside the cluster (on the client API's Service type). Off: only
    attesting pods in the cluster reach it (a NetworkPolicy admits pods labelled
    ``sconify.io/attests: "true"``, which the services' pods are)."""
    store: PostgresStore | None = None
    """Where the CAS keeps its state: None for SQLite on its claim (one pod), or a PostgreSQL database
    (:class:`~.postgres.InClusterPostgres`, :class:`~.azure_postgres.AzurePostgres`, or one given) —
    then the CAS runs as replicas spread over zones, with no claim of its own (docs/cas.md#replicas)."""
    replicas: int = 0
    """CAS pods: 0 for the store's default — 1 on SQLite (one writer), 2 on PostgreSQL, with a
    PodDisruptionBudget that keeps one up through node drains."""
    granted_identities: list[pulumi.Input[str]] = field(default_factory=list)
    """Client identities (key hashes, e.g. a :class:`CreatorIdentity`'s ``key_hash``) the CAS grants room
    beyond the pool that all other identities share (``cas serve --grant-identity``; docs/cas.md, Limits):
    the owners who deploy, so that identities anyone can make cannot fill the room their policies need."""
    recovery_public_key: pulumi.Input[str] | None = None
    """An X25519 public key (PEM) the CAS seals its master key to, so whoever holds the private key can
    rebuild the CAS (docs/cas.md, the recovery runbook). None: Pulumi makes the key pair
    (:class:`CasRecoveryKey`, protected with :attr:`protect`) and the private key is the secret output
    ``recovery_private_key``. Give your own (``sconify cas recovery-key create``) to keep the private key
    out of Pulumi's state."""

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError("replicas: 0 (the store's default) or more")
        if self.store is None and self.replicas > 1:
            raise ValueError(
                "replicas: SQLite has one writer; give a PostgresStore for more than one CAS pod"
            )
        if self.service_type not in CAS_SERVICE_TYPES:
            raise ValueError(f"service_type {self.service_type!r}: expected NodePort or LoadBalancer")
        if not 30000 <= self.node_port <= 32767:
            raise ValueError(f"node_port {self.node_port}: Kubernetes allows 30000-32767")
        for key in self.granted_identities:
            if isinstance(key, str):
                try:
                    granted_identities([key])
                except ValueError as error:
                    raise ValueError(f"granted_identities: {error}") from None


class CasDeployment(pulumi.ComponentResource):
    """The open engine's CAS in the cluster: a StatefulSet with a claim for its database, its CA and
    master key made by Pulumi (:class:`CasKeys`) and kept in a Secret, an internal Service for
    attestation and an exposed one for the client API."""

    address: pulumi.Output[str]
    """The client API (``host:port``) as the machine running Pulumi reaches it, known once the CAS is
    ready."""
    attestation_address: pulumi.Output[str]
    """The attestation API (``host:port``) as confidential pods reach it."""
    ca_certificate: pulumi.Output[str]
    """The CA certificate (PEM) both are pinned to."""
    namespace: str
    """The CAS's Kubernetes namespace."""
    recovery_public_key: pulumi.Output[str]
    """The public key the CAS seals its master key to."""
    recovery_private_key: pulumi.Output[str] | None
    """The recovery private key that Pulumi made (PKCS#8 PEM), None when a public key was given. Secret:
    export it to offline storage (``pulumi stack output ... --show-secrets``)."""

    def __init__(
        self, resource_name: str, args: CasDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:CasDeployment", resource_name, None, opts)
        children = Children(self, resource_name)
        name = "sconify-cas"
        self.namespace = args.namespace
        internal_host = f"{name}.{args.namespace}.svc"
        labels = {**CAS_POD_LABELS, "app.kubernetes.io/instance": resource_name}
        keys = CasKeys(children.name("keys"), opts=children.options("keys", protect=args.protect or None))
        if args.recovery_public_key is None:
            recovery = CasRecoveryKey(
                children.name("recovery"), opts=children.options("recovery", protect=args.protect or None)
            )
            self.recovery_public_key = recovery.public_key_pem
            self.recovery_private_key = recovery.private_key_pem
        else:
            self.recovery_public_key = pulumi.Output.from_input(args.recovery_public_key)
            self.recovery_private_key = None
        namespace = object_resource(
            *children("namespace"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace}},
        )

        def in_namespace(child: str) -> tuple[str, pulumi.ResourceOptions]:
            return children(child, depends_on=[namespace])

        metadata = {"name": name, "namespace": args.namespace, "labels": labels}
        secret = object_resource(
            *in_namespace("secret"),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {**metadata, "name": f"{name}-keys"},
                "type": "Opaque",
                "stringData": {
                    "ca.pem": pending("ca"),
                    "ca-key.pem": pending("ca-key"),
                    "master-key": pending("master-key"),
                    **({"store-password": pending("store-password")} if args.store else {}),
                },
            },
            {
                pending("ca"): keys.ca_certificate_pem,
                pending("ca-key"): keys.ca_key_pem,
                pending("master-key"): keys.master_key,
                **(
                    {pending("store-password"): pulumi.Output.secret(args.store.password)}
                    if args.store
                    else {}
                ),
            },
        )
        replicas = args.replicas or (2 if args.store else 1)
        store_ca = args.store.ca_certificate if args.store else None
        extra: list[pulumi.Resource] = [
            object_resource(
                *in_namespace("recovery-key"),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {**metadata, "name": f"{name}-recovery-key"},
                    "data": {"recovery-key.pub.pem": pending("recovery-key")},
                },
                {pending("recovery-key"): self.recovery_public_key},
            )
        ]
        if store_ca is not None:
            extra.append(
                object_resource(
                    *in_namespace("store-ca"),
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {**metadata, "name": f"{name}-store-ca"},
                        "data": {"ca.pem": pending("store-ca")},
                    },
                    {pending("store-ca"): store_ca},
                )
            )
        if replicas > 1:
            extra.append(
                object_resource(
                    *in_namespace("disruption-budget"),
                    {
                        "apiVersion": "policy/v1",
                        "kind": "PodDisruptionBudget",
                        "metadata": metadata,
                        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
                    },
                )
            )
        ports = [
            {"name": "client", "containerPort": CLIENT_PORT},
            {"name": "attestation", "containerPort": ATTESTATION_PORT},
        ]
        internal = object_resource(
            *in_namespace("service"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata,
                "spec": {
                    "selector": labels,
                    "ports": [
                        {"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]}
                        for p in ports
                    ],
                },
            },
        )
        exposed_port: dict[str, object] = {"name": "client", "port": CLIENT_PORT, "targetPort": "client"}
        if args.service_type == "NodePort":
            exposed_port["nodePort"] = args.node_port
        exposed = object_resource(
            *in_namespace("client-service"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {**metadata, "name": f"{name}-client", "annotations": args.service_annotations},
                "spec": {
                    "type": args.service_type,
                    "selector": labels,
                    "ports": [exposed_port]
                    + (
                        [{"name": "attestation", "port": ATTESTATION_PORT, "targetPort": "attestation"}]
                        if args.expose_attestation
                        else []
                    ),
                },
            },
        )
        granted = {pending(f"granted-{index}"): key for index, key in enumerate(args.granted_identities)}
        arguments = serve_command(
            data_dir=STATE_DIRECTORY,
            ca_dir=CA_DIRECTORY,
            listen=f"0.0.0.0:{CLIENT_PORT}",
            attest_listen=f"0.0.0.0:{ATTESTATION_PORT}",
            host=[internal_host, f"{internal_host}.cluster.local", pending("external-host")],
            kubernetes_issuer=pending("issuer"),
            store=pending("store") if args.store is not None else None,
            recovery_key=f"{RECOVERY_DIRECTORY}/recovery-key.pub.pem",
            grant_identity=list(granted),
        )
        account = object_resource(
            *in_namespace("service-account"),
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        )
        # Reading the issuer's key set is all the CAS may do with the API server.
        discovery = object_resource(
            *in_namespace("issuer-discovery"),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name}-{args.namespace}-issuer-discovery", "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:service-account-issuer-discovery",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": args.namespace}],
            },
        )
        attesting_pods = {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": dict(ATTESTS_LABEL)},
        }
        network_policy = object_resource(
            *in_namespace("network-policy"),
            ingress_policy(
                metadata,
                labels,
                [
                    (CLIENT_PORT, None),  # uploads: the client API demands mutual TLS
                    (ATTESTATION_PORT, None if args.expose_attestation else [attesting_pods]),
                ],
            ),
        )

        def from_keys(variable: str, key: str) -> dict[str, object]:
            return {"name": variable, "valueFrom": {"secretKeyRef": {"name": f"{name}-keys", "key": key}}}

        environment = [from_keys("SCONIFY_CAS_MASTER_KEY", "master-key")]
        mounts: list[dict[str, object]] = [
            {"name": "data", "mountPath": DATA_DIRECTORY},
            {"name": "ca", "mountPath": CA_DIRECTORY, "readOnly": True},
            {"name": "recovery-key", "mountPath": RECOVERY_DIRECTORY, "readOnly": True},
        ]
        volumes: list[dict[str, object]] = [
            {
                "name": "ca",
                "secret": {
                    "secretName": f"{name}-keys",
                    "defaultMode": 0o440,  # group-readable: the CAS user reads it through fsGroup
                    "items": [
                        {"key": "ca.pem", "path": "ca.pem"},
                        {"key": "ca-key.pem", "path": "ca-key.pem"},
                    ],
                },
            },
            {"name": "recovery-key", "configMap": {"name": f"{name}-recovery-key"}},
        ]
        if args.store is not None:
            environment.append(from_keys("PGPASSWORD", "store-password"))
            # The CAS keeps nothing on disk but what it makes again from its keys at start (its server
            # certificate): without a claim, a replica moves to another zone as freely as a stateless pod.
            volumes.append({"name": "data", "emptyDir": {}})
        if store_ca is not None:
            environment += [
                {"name": "PGSSLROOTCERT", "value": f"{STORE_CA_DIRECTORY}/ca.pem"},
                {"name": "PGSSLMODE", "value": "verify-full"},  # a sslmode in the URL takes precedence
            ]
            mounts.append({"name": "store-ca", "mountPath": STORE_CA_DIRECTORY, "readOnly": True})
            volumes.append({"name": "store-ca", "configMap": {"name": f"{name}-store-ca"}})
        pod: dict[str, object] = {
            "serviceAccountName": name,
            "automountServiceAccountToken": True,  # to read the issuer's keys, nothing else (above)
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": CAS_USER,
                "runAsGroup": CAS_USER,
                "fsGroup": CAS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "cas",
                    "image": pending("image"),
                    "args": arguments,
                    "env": environment,
                    "ports": ports,
                    "readinessProbe": {"tcpSocket": {"port": "client"}, "periodSeconds": 5},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        }
        if args.placement.node_selector:
            pod["nodeSelector"] = args.placement.node_selector
        if args.placement.tolerations:
            pod["tolerations"] = args.placement.tolerations
        if replicas > 1:
            # Apart where the cluster allows it, never held back where it does not: a zone or node lost
            # must not keep its replica from starting in one that is left.
            pod["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": key,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": labels},
                }
                for key in (ZONE_LABEL, "kubernetes.io/hostname")
            ]
        storage: dict[str, object] = {}
        if args.store is None:
            claim: dict[str, object] = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": args.storage_size}},
            }
            if args.storage_class:
                claim["storageClassName"] = args.storage_class
            storage = {
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
                # The database's claim outlives the StatefulSet (a replace, a destroy): Kubernetes'
                # default, written out so that no later default can change it.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            }
        statefulset = object_resource(
            *children(
                "statefulset",
                depends_on=[namespace, secret, internal, account, discovery, network_policy, *extra],
            ),
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": metadata,
                "spec": {
                    "serviceName": name,
                    # SQLite: one writer, the anchor of every volume. PostgreSQL: replicas on one database.
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                    **storage,
                },
            },
            {
                pending("image"): args.image,
                pending("external-host"): args.external_host,
                pending("issuer"): args.kubernetes_issuer,
                **({pending("store"): args.store.url} if args.store else {}),
                **granted,
            },
        )
        external = pulumi.Output.from_input(args.external_host)
        port = args.node_port if args.service_type == "NodePort" else CLIENT_PORT
        # The address is known once the CAS is up (the provider waits for the StatefulSet to be ready):
        # what uploads sessions to it waits for that too.
        self.address = pulumi.Output.all(external, exposed.id, statefulset.id).apply(
            lambda parts: f"{parts[0]}:{port}"
        )
        self.attestation_address = pulumi.Output.from_input(f"{internal_host}:{ATTESTATION_PORT}")
        self.ca_certificate = keys.ca_certificate_pem
        self.register_outputs(
            {
                "address": self.address,
                "attestation_address": self.attestation_address,
                "ca_certificate": self.ca_certificate,
                "recovery_public_key": self.recovery_public_key,
            }
        )
