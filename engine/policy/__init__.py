"""The session policy model: parse, validate, render and hash SCONE session YAML 0.3.

>>> from pulumi_sconify.engine.policy import parse_session, render_session, session_hash
>>> session = parse_session(text)                # PolicyError names every bad field
>>> parse_session(render_session(session)) == session
True
"""

from .builder import (
    DEFAULT_TOLERATE,
    default_environment,
    namespace_session,
    random_namespace,
    sconified_session,
)
from .errors import PolicyError, Problem
from .loader import MAX_DOCUMENT_BYTES
from .model import (
    ANY,
    CREATOR,
    DEFAULT_KUBERNETES_ISSUER,
    KNOWN_TOLERATIONS,
    NONE,
    SUPPORTED_VERSION,
    VOLUME_NAME_RE,
    VOLUME_NAME_RULE,
    AccessPolicy,
    Attestation,
    AttestationMode,
    AzureCvmReference,
    Image,
    ImageVolume,
    InjectionFile,
    KubernetesIdentity,
    Platforms,
    Secret,
    SecretKind,
    Security,
    Service,
    ServiceAttestation,
    Session,
    SevSnpReference,
    SnpTcb,
    TdxReference,
    UpdatePolicy,
    Volume,
)
from .names import config_id, default_session_name, qualified_session_name
from .parse import parse_session, platforms_from_data, session_from_data, validate_session
from .render import canonical_json, render_session, session_hash, session_to_data

__all__ = [
    "ANY",
    "CREATOR",
    "DEFAULT_KUBERNETES_ISSUER",
    "DEFAULT_TOLERATE",
    "KNOWN_TOLERATIONS",
    "MAX_DOCUMENT_BYTES",
    "NONE",
    "SUPPORTED_VERSION",
    "VOLUME_NAME_RE",
    "VOLUME_NAME_RULE",
    "AccessPolicy",
    "Attestation",
    "AttestationMode",
    "AzureCvmReference",
    "Image",
    "ImageVolume",
    "InjectionFile",
    "KubernetesIdentity",
    "Platforms",
    "PolicyError",
    "Problem",
    "Secret",
    "SecretKind",
    "Security",
    "Service",
    "ServiceAttestation",
    "Session",
    "SevSnpReference",
    "SnpTcb",
    "TdxReference",
    "UpdatePolicy",
    "Volume",
    "canonical_json",
    "config_id",
    "default_environment",
    "default_session_name",
    "namespace_session",
    "parse_session",
    "platforms_from_data",
    "qualified_session_name",
    "random_namespace",
    "render_session",
    "sconified_session",
    "session_from_data",
    "session_hash",
    "session_to_data",
    "validate_session",
]
