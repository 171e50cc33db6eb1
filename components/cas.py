"""Where services attest: a CAS deployed into the cluster (``CasDeployment``) or one that exists
(``ExternalCas``). Both offer the same three outputs (:class:`CasEndpoint`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pulumi

from ..engine.cas.state.quotas import granted_identities
from ..engine.chart.cas_objects import CAS_SERVICE_TYPES, CasPlan, CasSecrets, cas_objects
from ..engine.errors import ArgumentsError
from ..engine.policy import DEFAULT_KUBERNETES_ISSUER
from ..engine.vocabulary import ATTESTATION_PORT, CLIENT_PORT
from ..provider.resources import CasKeys, CasRecoveryKey
from .cluster import Placement
from .kubernetes import declare_stateful, pending
from .naming import Children
from .postgres import PostgresStore


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
        problems = []
        if self.replicas < 0:
            problems.append("replicas: 0 (the store's default) or more")
        if self.store is None and self.replicas > 1:
            problems.append("replicas: SQLite has one writer; give a PostgresStore for more than one CAS pod")
        if self.service_type not in CAS_SERVICE_TYPES:
            problems.append(f"service_type {self.service_type!r}: expected NodePort or LoadBalancer")
        if not 30000 <= self.node_port <= 32767:
            problems.append(f"node_port {self.node_port}: Kubernetes allows 30000-32767")
        for key in self.granted_identities:
            if isinstance(key, str):
                try:
                    granted_identities([key])
                except ValueError as error:
                    problems.append(f"granted_identities: {error}")
        ArgumentsError.raise_for("CasDeploymentArgs", problems)


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
        self.namespace = args.namespace
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
        granted = {pending(f"granted-{index}"): key for index, key in enumerate(args.granted_identities)}
        plan = CasPlan(
            instance=resource_name,
            namespace=args.namespace,
            image=pending("image"),
            external_host=pending("external-host"),
            kubernetes_issuer=pending("issuer"),
            secrets=CasSecrets(
                ca_certificate=pending("ca"),
                ca_key=pending("ca-key"),
                master_key=pending("master-key"),
                store_password=pending("store-password") if args.store else None,
            ),
            recovery_public_key=pending("recovery-key"),
            service_type=args.service_type,
            node_port=args.node_port,
            service_annotations=args.service_annotations,
            expose_attestation=args.expose_attestation,
            node_selector=args.placement.node_selector,
            tolerations=args.placement.tolerations,
            storage_class=args.storage_class,
            storage_size=args.storage_size,
            store_url=pending("store") if args.store else None,
            store_ca_certificate=(
                pending("store-ca") if args.store and args.store.ca_certificate is not None else None
            ),
            replicas=args.replicas,
            granted_identities=list(granted),
        )
        placeholders: dict[str, pulumi.Input[object]] = {
            pending("ca"): keys.ca_certificate_pem,
            pending("ca-key"): keys.ca_key_pem,
            pending("master-key"): keys.master_key,
            pending("recovery-key"): self.recovery_public_key,
            pending("image"): args.image,
            pending("external-host"): args.external_host,
            pending("issuer"): args.kubernetes_issuer,
            **granted,
        }
        if args.store:
            placeholders[pending("store-password")] = pulumi.Output.secret(args.store.password)
            placeholders[pending("store")] = args.store.url
            if args.store.ca_certificate is not None:
                placeholders[pending("store-ca")] = args.store.ca_certificate
        declared = declare_stateful(children, cas_objects(plan), placeholders)
        statefulset, exposed = declared["statefulset"], declared["client-service"]
        external = pulumi.Output.from_input(args.external_host)
        port = args.node_port if args.service_type == "NodePort" else CLIENT_PORT
        # The address is known once the CAS is up (the provider waits for the StatefulSet to be ready):
        # what uploads sessions to it waits for that too.
        self.address = pulumi.Output.all(external, exposed.id, statefulset.id).apply(
            lambda parts: f"{parts[0]}:{port}"
        )
        self.attestation_address = pulumi.Output.from_input(f"{plan.internal_host}:{ATTESTATION_PORT}")
        self.ca_certificate = keys.ca_certificate_pem
        self.register_outputs(
            {
                "address": self.address,
                "attestation_address": self.attestation_address,
                "ca_certificate": self.ca_certificate,
                "recovery_public_key": self.recovery_public_key,
            }
        )
