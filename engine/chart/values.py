"""Every value a generated chart accepts, defined once.

``values.yaml``, ``values.schema.json`` and the chart's ``README.md`` are all generated from
:func:`value_definitions`, so the documentation cannot drift from the values and Helm rejects what the
schema does not allow. Names follow the public SCONE demo (``volumev1.persistence.existingClaim``,
``useSGXDevPlugin``, ``scone.cas`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..vocabulary import ATTESTATION_PORT
from .hardened import SERVICE_USER, container_security, pod_security
from .spec import ServiceSpec, WorkloadType

SGX_PLUGINS = ("scone", "enabled", "azure", "disabled")
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?|[mk])?$"


@dataclass(frozen=True)
class ValueDefinition:
    """One value: its full dotted name, JSON-schema type, default and description."""

    name: str
    schema: dict[str, Any]
    default: Any
    description: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        kind = self.schema.get("type", "object")
        return " or ".join(kind) if isinstance(kind, list) else str(kind)


def volume_key(volume: str) -> str:
    """The values key of a policy volume: ``V1`` → ``volumev1``."""
    return f"volume{volume.lower()}"


def value_definitions(spec: ServiceSpec, workload: WorkloadType) -> list[ValueDefinition]:
    """The values of the chart for ``spec``, in the order values.yaml and the README list them."""
    single_writer = bool(spec.volumes)
    definitions = [
        ValueDefinition(
            "image",
            {"type": "string", "pattern": r"^[^@\s]+@sha256:[0-9a-f]{64}$"},
            spec.image,
            "The confidential image, pinned by digest (what `sconify image` produced).",
        ),
        ValueDefinition(
            "imagePullPolicy",
            {"type": "string", "enum": ["IfNotPresent", "Always", "Never"]},
            "IfNotPresent",
            "When the kubelet pulls the image.",
        ),
        ValueDefinition(
            "imagePullSecrets",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "minLength": 1}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
            [],
            "Secrets for pulling from a private registry: `[{name: regcred}]`.",
        ),
    ]
    if workload in (WorkloadType.DEPLOYMENT, WorkloadType.STATEFULSET):
        maximum = {"maximum": 1} if single_writer else {}
        definitions.append(
            ValueDefinition(
                "replicaCount",
                {"type": "integer", "minimum": 0, **maximum},
                1,
                "Number of pods."
                + (
                    " At most 1: a rollback-protected volume has one writer at a time, and a second "
                    "replica would be refused by the CAS."
                    if single_writer
                    else ""
                ),
            )
        )
    definitions += [
        ValueDefinition(
            "useSGXDevPlugin",
            {"type": "string", "enum": list(SGX_PLUGINS)},
            "disabled",
            "SGX device plugin to request enclave resources from: `scone` (sgx.k8s.io/sgx), `enabled` "
            "(Intel: sgx.intel.com/epc and sgx.intel.com/enclave), `azure` (AKS confcom: "
            "sgx.intel.com/epc), `disabled` (none; the open engine runs without SGX and without "
            "privileges).",
        ),
        ValueDefinition(
            "sgxEpcMem",
            {"type": "string", "pattern": QUANTITY_PATTERN},
            "64Mi",
            "Enclave page cache to request when `useSGXDevPlugin` is `enabled` or `azure`.",
        ),
        ValueDefinition(
            "scone.cas",
            {"type": "string", "minLength": 1},
            spec.cas or f"cas:{ATTESTATION_PORT}",
            "Address of the CAS attestation API (`host:port`); becomes `SCONE_CAS_ADDR`.",
        ),
        ValueDefinition(
            "scone.casCertificate",
            {"type": "string"},
            spec.cas_certificate,
            "PEM of the CAS CA certificate to pin; empty when the image carries the pin. Mounted "
            "read-only and named by `SCONE_CAS_CA`.",
        ),
        ValueDefinition(
            "scone.las",
            {"type": "string"},
            "",
            "Address of a local attestation service; empty means the node's IP (`SCONE_LAS_ADDR`).",
        ),
        ValueDefinition(
            "scone.configID",
            {"type": "string", "pattern": r"^[^/\s]+(/[^/\s]+)+$"},
            spec.config_id,
            "`<session>/<service>`: the configuration the runtime asks the CAS for (`SCONE_CONFIG_ID`).",
        ),
        ValueDefinition("scone.log", {"type": "string"}, spec.log, "Runtime log level (`SCONE_LOG`)."),
        ValueDefinition(
            "scone.printVersion",
            {"type": "boolean"},
            False,
            "Print the runtime's version and configuration at start (`SCONE_VERSION=1`).",
        ),
        ValueDefinition(
            "scone.heap", {"type": "string"}, spec.heap, "Heap size for the runtime (`SCONE_HEAP`)."
        ),
        ValueDefinition(
            "scone.stack", {"type": "string"}, spec.stack, "Stack size for the runtime (`SCONE_STACK`)."
        ),
        ValueDefinition(
            "attestation.kubernetes.serviceAccount",
            {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"},
            spec.service_account,
            "The service account the policy pins: the pods run as it and attest with its projected "
            "token. Empty: no token is mounted, and the policy must accept other evidence.",
        ),
        ValueDefinition(
            "attestation.kubernetes.createServiceAccount",
            {"type": "boolean"},
            True,
            "Create that service account (without an API token of its own).",
        ),
        ValueDefinition(
            "attestation.kubernetes.audience",
            {"type": "string"},
            spec.cas_audience,
            "The token's audience: the CAS's (`sconify-cas:<CA key hash>`); a token for another "
            "audience is refused.",
        ),
    ]
    if workload is not WorkloadType.JOB:
        definitions += [
            ValueDefinition(
                "service.enabled", {"type": "boolean"}, False, "Create a Service in front of the pods."
            ),
            ValueDefinition(
                "service.type",
                {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "ClusterIP",
                "Kind of Service.",
            ),
            ValueDefinition(
                "service.port",
                {"type": "integer", "minimum": 1, "maximum": 65535},
                80,
                "Port the Service listens on.",
            ),
            ValueDefinition(
                "service.targetPort",
                {"type": "integer", "minimum": 1, "maximum": 65535},
                8080,
                "Port the service's program listens on in the pod.",
            ),
        ]
    for volume in spec.volumes:
        key = volume_key(volume)
        definitions += [
            ValueDefinition(
                f"{key}.persistence.enabled",
                {"type": "boolean"},
                True,
                f"Keep volume {volume} on a PersistentVolumeClaim; `false` uses an emptyDir (the data "
                "is lost with the pod, and the CAS then refuses the next pod: the volume was "
                "initialised).",
            ),
            ValueDefinition(
                f"{key}.persistence.existingClaim",
                {"type": "string"},
                "",
                f"Use this existing claim for volume {volume} instead of creating one.",
            ),
            ValueDefinition(
                f"{key}.persistence.storageClass",
                {"type": "string"},
                "",
                "Storage class of a created claim; empty for the cluster's default "
                "(use `azurefile-csi` on AKS for ReadWriteMany).",
            ),
            ValueDefinition(
                f"{key}.persistence.size",
                {"type": "string", "pattern": QUANTITY_PATTERN},
                "1Gi",
                "Size of a created claim.",
            ),
            ValueDefinition(
                f"{key}.persistence.accessModes",
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "string",
                        "enum": ["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"],
                    },
                },
                ["ReadWriteOnce"],
                "Access modes of a created claim.",
            ),
        ]
    definitions += [
        ValueDefinition("resources", {"type": "object"}, {}, "Container resource requests and limits."),
        ValueDefinition(
            "nodeSelector",
            {"type": "object", "additionalProperties": {"type": "string"}},
            {},
            "Node labels the pods must be scheduled on (e.g. a confidential node pool).",
        ),
        ValueDefinition(
            "tolerations",
            {"type": "array", "items": {"type": "object"}},
            [],
            "Tolerations of the pods (e.g. for a tainted SGX node pool).",
        ),
        ValueDefinition("affinity", {"type": "object"}, {}, "Affinity rules of the pods."),
        ValueDefinition(
            "podSecurityContext",
            {"type": "object"},
            pod_security(SERVICE_USER),
            "Pod security context. The open engine needs no root: the defaults run as user 10001 and "
            "give it the volume claims through `fsGroup`.",
        ),
        ValueDefinition(
            "securityContext",
            {"type": "object"},
            container_security(),
            "Container security context. Plaintext lives only on memory-backed mounts, so the root "
            "file system can stay read-only.",
        ),
        ValueDefinition(
            "extraEnvVars",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "minLength": 1}, "value": {"type": "string"}},
                    "required": ["name"],
                },
            },
            [],
            "Extra environment for the runtime container (`[{name, value}]`). "
            "The program itself sees only the "
            "policy's environment.",
        ),
    ]
    return definitions


def nested_defaults(definitions: list[ValueDefinition]) -> dict[str, Any]:
    """The defaults as the nested mapping values.yaml holds."""
    values: dict[str, Any] = {}
    for definition in definitions:
        *parents, leaf = definition.name.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = definition.default
    return values


def values_schema(definitions: list[ValueDefinition]) -> dict[str, Any]:
    """A JSON schema (draft-07, as Helm uses) that rejects unknown or mistyped values."""
    root: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"global": {"type": "object"}},
        "additionalProperties": False,
    }
    for definition in definitions:
        *parents, leaf = definition.name.split(".")
        node = root
        for parent in parents:
            node = node["properties"].setdefault(
                parent, {"type": "object", "properties": {}, "additionalProperties": False}
            )
        node["properties"][leaf] = {**definition.schema, "description": definition.description}
    return root
