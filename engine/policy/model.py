"""The typed model of a session policy (SCONE session YAML 0.3, the parts this project uses).

Instances are immutable and always valid: they are produced by :func:`~.parse.parse_session` (from
text) or :func:`~.parse.validate_session` (from instances built in code, e.g. by the builder), both of
which enforce every rule in ``docs/policy.md``. Fields that may hold secret material (keys, secret
values, injected file contents, environment values) are left out of ``repr`` so that a model printed
in a traceback or a log does not leak them.

Defaults are normalised on parsing: a volume without ``update_policy`` *is* ``rollback_protected``,
a missing ``access_policy`` *is* creator-only. Two texts that differ only in such defaults are the
same model and have the same hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from ..vocabulary import INSECURE_SOFTWARE_EVIDENCE

VOLUME_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")
"""The name of a volume the engine mounts (``sconify image --volume``, charts, components): a letter, then
letters and digits, up to 40. It names the volume's claim and chart values (lower-cased), so it is stricter
than the session YAML's names, and two names that differ only in case are one volume."""
VOLUME_NAME_RULE = "a letter, then letters and digits (up to 40)"

SUPPORTED_VERSION = "0.3"
"""The session YAML version this model implements."""

CREATOR = "CREATOR"
"""Access entry: the identity (public key) that created the session."""
ANY = "ANY"
"""Access entry: every authenticated client."""
NONE = "NONE"
"""Access entry: nobody."""


class UpdatePolicy(StrEnum):
    """How a volume's state may move between runs."""

    ROLLBACK_PROTECTED = "rollback_protected"
    """Default: every commit advances a generation the CAS remembers; older states are refused."""
    EPHEMERAL = "ephemeral"
    """Fresh and empty on every start; nothing is kept between runs."""
    NO_ROLLBACK_PROTECTION = "no_rollback_protection"
    """Integrity and confidentiality only: an older committed state is accepted."""


class SecretKind(StrEnum):
    """Kinds of secrets a session can declare."""

    ASCII = "ascii"
    BINARY = "binary"
    PRIVATE_KEY = "private-key"
    X509 = "x509"
    X509_CA = "x509-ca"


KNOWN_TOLERATIONS: dict[str, str] = {
    INSECURE_SOFTWARE_EVIDENCE: "self-reported evidence from the runtime, which anyone can make up "
    "(development only; refused on AKS by the policy pack)",
    "debug-mode": "a TEE that can be debugged (SGX debug enclave, SEV-SNP or TDX debug policy)",
    "hyperthreading": "simultaneous multithreading enabled on the TEE's cores",
    "insecure-igpu": "an SGX platform with its integrated GPU enabled",
    "outdated-tcb": "hardware whose trusted computing base is out of date",
    "software-hardening-needed": "a TCB that needs software mitigations the workload may lack",
    "insecure-configuration": "a platform whose configuration needs changes to be secure",
}
"""Every weakness a policy may tolerate, and what it admits: ``security.attestation.tolerate`` takes
these names only. The evidence verifiers report the weaknesses they find; the CAS refuses evidence with
a weakness its policy does not tolerate (see docs/cas.md)."""


class AttestationMode(StrEnum):
    """``security.attestation.mode``: what evidence the CAS requires from a service."""

    HARDWARE = "hardware"
    MAA = "maa"
    NONE = "none"


@dataclass(frozen=True)
class AccessPolicy:
    """Who may read or update the session, and who may create sessions inside it (a namespace).

    Each entry is ``CREATOR``, ``ANY``, ``NONE``, the SHA-256 hash (64 hex) of a client's public key
    (DER SubjectPublicKeyInfo), or a PEM certificate whose public key is meant.
    """

    read: tuple[str, ...] = (CREATOR,)
    update: tuple[str, ...] = (CREATOR,)
    create_sessions: tuple[str, ...] | None = None
    """``None`` means "the same as ``update``" (SCONE's default)."""

    @property
    def effective_create_sessions(self) -> tuple[str, ...]:
        return self.update if self.create_sessions is None else self.create_sessions


@dataclass(frozen=True)
class ServiceAttestation:
    """One accepted measurement set of a service (the newer form of ``mrenclaves``)."""

    mrenclaves: tuple[str, ...]


DEFAULT_KUBERNETES_ISSUER = "https://kubernetes.default.svc.cluster.local"
"""The service-account issuer of a cluster that sets none of its own (kubeadm, minikube, AKS without
its OIDC issuer)."""


@dataclass(frozen=True)
class KubernetesIdentity:
    """``services[].kubernetes`` (our extension): the Kubernetes workload a service's pods run as. The
    CAS accepts a projected service-account token for this CAS, signed by ``issuer``, of a pod in
    ``namespace`` running as ``service_account``."""

    issuer: str
    """The cluster's service-account issuer (``iss``), e.g. ``https://kubernetes.default.svc.cluster.local``."""
    namespace: str
    service_account: str


@dataclass(frozen=True)
class Service:
    """A program the CAS configures: what it must measure as and how it is started."""

    name: str
    image_name: str | None = None
    mrenclaves: tuple[str, ...] = ()
    attestation: tuple[ServiceAttestation, ...] = ()
    command: str | tuple[str, ...] | None = None
    """A string (split like a shell) or an argument list; kept in the form it was written."""
    environment: dict[str, str] = field(default_factory=dict, repr=False)
    """Exactly the variables the program sees; values may hold ``$$SCONE::secret$$`` placeholders.
    A plain dict so that models pickle and copy; treat it as read-only like the rest of the model."""
    pwd: str | None = None
    fspf_path: str | None = None
    fspf_key: str | None = field(default=None, repr=False)
    fspf_tag: str | None = None
    kubernetes: KubernetesIdentity | None = None
    """The Kubernetes workload identity whose token attests this service (our extension)."""

    @property
    def measurements(self) -> frozenset[str]:
        """Every measurement that is accepted for this service."""
        accepted = set(self.mrenclaves)
        for rule in self.attestation:
            accepted.update(rule.mrenclaves)
        return frozenset(accepted)


@dataclass(frozen=True)
class Volume:
    """An encrypted volume. Without key and tag the CAS generates them on first use."""

    name: str
    fspf_key: str | None = field(default=None, repr=False)
    fspf_tag: str | None = None
    update_policy: UpdatePolicy = UpdatePolicy.ROLLBACK_PROTECTED


@dataclass(frozen=True)
class ImageVolume:
    """Where an image mounts one of the session's volumes."""

    name: str
    path: str


@dataclass(frozen=True)
class InjectionFile:
    """A file the runtime writes into memory-backed storage before the program starts."""

    path: str
    content: str = field(repr=False)


@dataclass(frozen=True)
class Image:
    """A container image of the session: its volume mount points and injected files."""

    name: str
    volumes: tuple[ImageVolume, ...] = ()
    injection_files: tuple[InjectionFile, ...] = ()


@dataclass(frozen=True)
class Secret:
    """A secret the CAS holds: given (``value``) or generated (``size``, or a key or certificate)."""

    name: str
    kind: SecretKind
    value: str | None = field(default=None, repr=False)
    size: int | None = None
    export_public: bool = False
    private_key: str | None = None
    """x509 / x509-ca: name of the ``private-key`` secret the certificate is for."""
    issuer: str | None = None
    """x509: name of the ``x509-ca`` secret that signs it."""
    common_name: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnpTcb:
    """An AMD SEV-SNP TCB version: the security patch level of each firmware component. Compared
    component by component (:meth:`at_least`): a TCB is not one number."""

    bootloader: int = 0
    tee: int = 0
    snp: int = 0
    microcode: int = 0
    fmc: int = 0
    """Turin's FMC (first mutable code) level; always 0 on Milan and Genoa."""

    def at_least(self, minimum: SnpTcb) -> bool:
        return all(getattr(self, name) >= getattr(minimum, name) for name in SNP_TCB_COMPONENTS)


SNP_TCB_COMPONENTS = ("bootloader", "tee", "snp", "microcode", "fmc")


@dataclass(frozen=True)
class SevSnpReference:
    """``security.attestation.platforms.sev-snp`` (ours): what an SEV-SNP report must show."""

    measurements: tuple[str, ...]
    """Accepted launch measurements (96 hex digits each)."""
    minimum_tcb: SnpTcb = field(default_factory=SnpTcb)
    maximum_vmpl: int = 0
    """The least privileged VMPL whose report is accepted (0 is the most privileged)."""


@dataclass(frozen=True)
class TdxReference:
    """``security.attestation.platforms.tdx`` (ours): what a TDX quote must show."""

    mrtd: tuple[str, ...]
    """Accepted TD measurements (96 hex digits each)."""
    rtmrs: tuple[tuple[int, str], ...] = ()
    """Runtime measurement registers that must hold exactly these values: ``(index, 96 hex)``."""


@dataclass(frozen=True)
class AzureCvmReference:
    """``security.attestation.platforms.azure-cvm`` (ours): what an Azure confidential VM's vTPM
    evidence must show."""

    pcrs: tuple[tuple[int, str], ...]
    """SHA-256 PCRs that must hold exactly these values: ``(index, 64 hex)``; the quote covers them."""
    measurements: tuple[str, ...] = ()
    """Accepted hardware measurements of the VM's firmware (SNP launch measurement or TDX MRTD; empty:
    any genuine Azure confidential VM)."""
    minimum_tcb: SnpTcb = field(default_factory=SnpTcb)
    """The minimum TCB of an SNP-based VM."""


@dataclass(frozen=True)
class Platforms:
    """``security.attestation.platforms`` (ours): the hardware evidence the policy accepts and the
    reference values each must match. A platform that is absent is not accepted."""

    sev_snp: SevSnpReference | None = None
    tdx: TdxReference | None = None
    azure_cvm: AzureCvmReference | None = None


@dataclass(frozen=True)
class Attestation:
    """``security.attestation``: the evidence required and the weaknesses tolerated."""

    mode: AttestationMode | None = None
    tolerate: tuple[str, ...] = ()
    ignore_advisories: str | tuple[str, ...] | None = None
    """``"*"`` (all advisories) or a list of advisory ids."""
    platforms: Platforms = field(default_factory=Platforms)


@dataclass(frozen=True)
class Security:
    attestation: Attestation = field(default_factory=Attestation)


@dataclass(frozen=True)
class Session:
    """A complete session policy."""

    name: str
    version: str = SUPPORTED_VERSION
    predecessor: str | None = None
    """Hash of the version this one replaces; required for every update of an existing session."""
    access_policy: AccessPolicy = field(default_factory=AccessPolicy)
    services: tuple[Service, ...] = ()
    volumes: tuple[Volume, ...] = ()
    images: tuple[Image, ...] = ()
    secrets: tuple[Secret, ...] = ()
    security: Security | None = None

    @property
    def namespace(self) -> str | None:
        """The enclosing namespace (``ns`` of ``ns/name``), or ``None`` at the top level."""
        head, sep, _ = self.name.rpartition("/")
        return head if sep else None

    def service(self, name: str) -> Service:
        """The service called ``name``; ``KeyError`` if there is none."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def image(self, name: str) -> Image:
        """The image called ``name``; ``KeyError`` if there is none."""
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)
