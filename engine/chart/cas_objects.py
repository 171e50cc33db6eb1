"""The CAS's Kubernetes objects and those of its in-cluster PostgreSQL, as pure functions of plain values.

Beside :mod:`.objects` (the confidential service's): the Pulumi components (``CasDeployment``,
``InClusterPostgres``) declare what these functions return, one resource per object, and tests validate
them against Kubernetes' OpenAPI schemas without Pulumi. A value known only once other resources exist
(the CAS image's digest, its keys) is given as a placeholder string the component fills in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cas.server.options import serve_command
from ..layout import (
    CAS_CA_DIRECTORY,
    CAS_DATA_DIRECTORY,
    CAS_RECOVERY_DIRECTORY,
    CAS_STATE_DIRECTORY,
    CAS_STORE_CA_DIRECTORY,
)
from ..vocabulary import ATTESTATION_PORT, CLIENT_PORT
from .hardened import (
    SERVICE_USER,
    container_security,
    ingress_policy,
    namespace_object,
    placed,
    pod_security,
    retained_claim_templates,
)
from .objects import ATTESTS_LABEL

CAS_NAME = "sconify-cas"
"""The name of the CAS's StatefulSet, Services, Secret and service account."""
CAS_POD_LABELS = {"app.kubernetes.io/name": CAS_NAME}
"""What every CAS pod is labelled: the only clients the in-cluster database admits."""
CAS_SERVICE_TYPES = ("NodePort", "LoadBalancer")
"""How the CAS's client API can be exposed outside the cluster."""
ZONE_LABEL = "topology.kubernetes.io/zone"

POSTGRES_NAME = "sconify-cas-store"
POSTGRES_PORT = 5432
POSTGRES_USER_ID = 999
"""The ``postgres`` user of the official image (Debian variant)."""
POSTGRES_DATA = "/var/lib/postgresql/data"

Objects = dict[str, dict[str, Any]]
"""Kubernetes objects by the name of the child resource that declares each, in creation order."""


@dataclass(frozen=True, kw_only=True)
class CasSecrets:
    """Placeholders for what the CAS's Secret holds, filled in by the component (never plaintext here)."""

    ca_certificate: str
    ca_key: str
    master_key: str
    store_password: str | None = None
    """Only with a PostgreSQL store."""


@dataclass(frozen=True, kw_only=True)
class CasPlan:
    """What the CAS's objects are made of (``CasDeploymentArgs`` documents each choice)."""

    instance: str
    """The component's name: the pods' ``app.kubernetes.io/instance``."""
    namespace: str
    image: str
    external_host: str
    kubernetes_issuer: str
    secrets: CasSecrets
    recovery_public_key: str
    service_type: str = "NodePort"
    node_port: int = 30081
    service_annotations: Mapping[str, str] = field(default_factory=dict)
    expose_attestation: bool = False
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    storage_class: str = ""
    storage_size: str = "1Gi"
    store_url: str | None = None
    """A PostgreSQL database (then replicas, no claim); None: SQLite on the pod's claim."""
    store_ca_certificate: str | None = None
    replicas: int = 0
    """0: the store's default (1 on SQLite, 2 on PostgreSQL)."""
    granted_identities: Sequence[str] = ()

    @property
    def replica_count(self) -> int:
        return self.replicas or (2 if self.store_url is not None else 1)

    @property
    def internal_host(self) -> str:
        """The Services' name as pods in the cluster reach it."""
        return f"{CAS_NAME}.{self.namespace}.svc"

    @property
    def labels(self) -> dict[str, str]:
        return {**CAS_POD_LABELS, "app.kubernetes.io/instance": self.instance}


def cas_objects(plan: CasPlan) -> Objects:
    """The CAS: a StatefulSet (a claim for SQLite, or replicas on PostgreSQL spread over zones), its keys
    in a Secret, an internal Service for attestation, an exposed one for the client API, a NetworkPolicy
    that lets only attesting pods reach attestation, and the right to read the issuer's key set."""
    labels = plan.labels
    metadata = {"name": CAS_NAME, "namespace": plan.namespace, "labels": labels}
    objects: Objects = {"namespace": namespace_object(plan.namespace)}
    objects["secret"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {**metadata, "name": f"{CAS_NAME}-keys"},
        "type": "Opaque",
        "stringData": {
            "ca.pem": plan.secrets.ca_certificate,
            "ca-key.pem": plan.secrets.ca_key,
            "master-key": plan.secrets.master_key,
            **({"store-password": plan.secrets.store_password} if plan.secrets.store_password else {}),
        },
    }
    objects["recovery-key"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**metadata, "name": f"{CAS_NAME}-recovery-key"},
        "data": {"recovery-key.pub.pem": plan.recovery_public_key},
    }
    if plan.store_ca_certificate is not None:
        objects["store-ca"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**metadata, "name": f"{CAS_NAME}-store-ca"},
            "data": {"ca.pem": plan.store_ca_certificate},
        }
    if plan.replica_count > 1:
        objects["disruption-budget"] = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata,
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
        }
    objects["service"] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "client", "port": CLIENT_PORT, "targetPort": "client"},
                {"name": "attestation", "port": ATTESTATION_PORT, "targetPort": "attestation"},
            ],
        },
    }
    exposed_port: dict[str, Any] = {"name": "client", "port": CLIENT_PORT, "targetPort": "client"}
    if plan.service_type == "NodePort":
        exposed_port["nodePort"] = plan.node_port
    exposed_attestation = [{"name": "attestation", "port": ATTESTATION_PORT, "targetPort": "attestation"}]
    objects["client-service"] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**metadata, "name": f"{CAS_NAME}-client", "annotations": dict(plan.service_annotations)},
        "spec": {
            "type": plan.service_type,
            "selector": labels,
            "ports": [exposed_port, *(exposed_attestation if plan.expose_attestation else [])],
        },
    }
    objects["service-account"] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    # Reading the issuer's key set is all the CAS may do with the API server.
    objects["issuer-discovery"] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{CAS_NAME}-{plan.namespace}-issuer-discovery", "labels": labels},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:service-account-issuer-discovery",
        },
        "subjects": [{"kind": "ServiceAccount", "name": CAS_NAME, "namespace": plan.namespace}],
    }
    attesting_pods = {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(ATTESTS_LABEL)}}
    objects["network-policy"] = ingress_policy(
        metadata,
        labels,
        [
            (CLIENT_PORT, None),  # uploads: the client API demands mutual TLS
            (ATTESTATION_PORT, None if plan.expose_attestation else [attesting_pods]),
        ],
    )
    objects["statefulset"] = _cas_statefulset(plan, metadata)
    return objects


def cas_serve_command(plan: CasPlan) -> list[str]:
    """The CAS container's arguments."""
    return serve_command(
        data_dir=CAS_STATE_DIRECTORY,
        ca_dir=CAS_CA_DIRECTORY,
        listen=f"0.0.0.0:{CLIENT_PORT}",
        attest_listen=f"0.0.0.0:{ATTESTATION_PORT}",
        host=[plan.internal_host, f"{plan.internal_host}.cluster.local", plan.external_host],
        kubernetes_issuer=plan.kubernetes_issuer,
        store=plan.store_url,
        recovery_key=f"{CAS_RECOVERY_DIRECTORY}/recovery-key.pub.pem",
        grant_identity=list(plan.granted_identities),
    )


def _cas_statefulset(plan: CasPlan, metadata: dict[str, Any]) -> dict[str, Any]:
    labels = plan.labels

    def from_keys(variable: str, key: str) -> dict[str, Any]:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": f"{CAS_NAME}-keys", "key": key}}}

    environment = [from_keys("SCONIFY_CAS_MASTER_KEY", "master-key")]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": CAS_DATA_DIRECTORY},
        {"name": "ca", "mountPath": CAS_CA_DIRECTORY, "readOnly": True},
        {"name": "recovery-key", "mountPath": CAS_RECOVERY_DIRECTORY, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "ca",
            "secret": {
                "secretName": f"{CAS_NAME}-keys",
                "defaultMode": 0o440,  # group-readable: the CAS user reads it through fsGroup
                "items": [{"key": "ca.pem", "path": "ca.pem"}, {"key": "ca-key.pem", "path": "ca-key.pem"}],
            },
        },
        {"name": "recovery-key", "configMap": {"name": f"{CAS_NAME}-recovery-key"}},
    ]
    if plan.store_url is not None:
        environment.append(from_keys("PGPASSWORD", "store-password"))
        # The CAS keeps nothing on disk but what it makes again from its keys at start (its server
        # certificate): without a claim, a replica moves to another zone as freely as a stateless pod.
        volumes.append({"name": "data", "emptyDir": {}})
    if plan.store_ca_certificate is not None:
        environment += [
            {"name": "PGSSLROOTCERT", "value": f"{CAS_STORE_CA_DIRECTORY}/ca.pem"},
            {"name": "PGSSLMODE", "value": "verify-full"},  # a sslmode in the URL takes precedence
        ]
        mounts.append({"name": "store-ca", "mountPath": CAS_STORE_CA_DIRECTORY, "readOnly": True})
        volumes.append({"name": "store-ca", "configMap": {"name": f"{CAS_NAME}-store-ca"}})
    pod: dict[str, Any] = {
        "serviceAccountName": CAS_NAME,
        "automountServiceAccountToken": True,  # to read the issuer's keys, nothing else (above)
        "securityContext": pod_security(SERVICE_USER),
        "containers": [
            {
                "name": "cas",
                "image": plan.image,
                "args": cas_serve_command(plan),
                "env": environment,
                "ports": [
                    {"name": "client", "containerPort": CLIENT_PORT},
                    {"name": "attestation", "containerPort": ATTESTATION_PORT},
                ],
                "readinessProbe": {"tcpSocket": {"port": "client"}, "periodSeconds": 5},
                "securityContext": container_security(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    placed(pod, plan.node_selector, plan.tolerations)
    if plan.replica_count > 1:
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
    storage = (
        retained_claim_templates(plan.storage_size, plan.storage_class) if plan.store_url is None else {}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "serviceName": CAS_NAME,
            # SQLite: one writer, the anchor of every volume. PostgreSQL: replicas on one database.
            "replicas": plan.replica_count,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
            **storage,
        },
    }


@dataclass(frozen=True, kw_only=True)
class PostgresPlan:
    """What the CAS's in-cluster PostgreSQL is made of (``InClusterPostgresArgs`` documents each)."""

    instance: str
    namespace: str
    client_namespace: str
    image: str
    password: str
    """A placeholder the component fills in."""
    storage_class: str = ""
    storage_size: str = "2Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": POSTGRES_NAME, "app.kubernetes.io/instance": self.instance}

    @property
    def url(self) -> str:
        """Where the CAS finds it: user ``cas``, database ``cas``."""
        return f"postgresql://cas@{POSTGRES_NAME}.{self.namespace}.svc:{POSTGRES_PORT}/cas"


def postgres_objects(plan: PostgresPlan) -> Objects:
    """One PostgreSQL server: a StatefulSet on a retained claim, its password in a Secret, a Service, and
    a NetworkPolicy that admits the CAS's pods only."""
    labels = plan.labels
    metadata = {"name": POSTGRES_NAME, "namespace": plan.namespace, "labels": labels}
    cas_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": plan.client_namespace}},
        "podSelector": {"matchLabels": dict(CAS_POD_LABELS)},
    }
    return {
        "namespace": namespace_object(plan.namespace),
        "secret": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "Opaque",
            "stringData": {"password": plan.password},
        },
        "service": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "selector": labels,
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres"}],
            },
        },
        "network-policy": ingress_policy(metadata, labels, [(POSTGRES_PORT, [cas_pods])]),
        "statefulset": _postgres_statefulset(plan, metadata),
    }


def _postgres_statefulset(plan: PostgresPlan, metadata: dict[str, Any]) -> dict[str, Any]:
    """The official image: user ``cas``, database ``cas``, data in a subdirectory of the claim (initdb
    refuses a mount point's ``lost+found``), run as its ``postgres`` user."""
    pod: dict[str, Any] = {
        "securityContext": pod_security(POSTGRES_USER_ID),
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "postgres",
                "image": plan.image,
                "env": [
                    {"name": "POSTGRES_USER", "value": "cas"},
                    {"name": "POSTGRES_DB", "value": "cas"},
                    {
                        "name": "POSTGRES_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": POSTGRES_NAME, "key": "password"}},
                    },
                    {"name": "PGDATA", "value": f"{POSTGRES_DATA}/pgdata"},
                ],
                "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                "readinessProbe": {
                    "exec": {"command": ["pg_isready", "--username=cas", "--dbname=cas"]},
                    "periodSeconds": 5,
                },
                "securityContext": container_security(),
                "volumeMounts": [
                    {"name": "data", "mountPath": POSTGRES_DATA},
                    {"name": "run", "mountPath": "/var/run/postgresql"},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own, empty
                ],
            }
        ],
        "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    placed(pod, plan.node_selector, plan.tolerations)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "serviceName": POSTGRES_NAME,
            "replicas": 1,
            "selector": {"matchLabels": plan.labels},
            "template": {"metadata": {"labels": plan.labels}, "spec": pod},
            **retained_claim_templates(plan.storage_size, plan.storage_class),
        },
    }
