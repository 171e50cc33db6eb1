"""Parse and validate session policies.

There is one set of rules, applied to plain data (what YAML loading produces). Text goes through
:func:`parse_session`; a model built in code goes through :func:`validate_session`, which renders it
to the same plain data and applies the same rules, so no policy can reach the CAS or an image by a
path that skips a check.

Every problem is collected (not just the first) and reported with its field path; messages say what
was expected and never repeat the value found. The rules are listed in ``docs/policy.md``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from cryptography import x509

from ..vocabulary import HARDWARE_KINDS
from .errors import PolicyError, Problem
from .loader import SourcedFloat, SourcedInt, load_yaml
from .model import (
    ANY,
    CREATOR,
    KNOWN_TOLERATIONS,
    NONE,
    SUPPORTED_VERSION,
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

T = TypeVar("T")

NAME_RE = re.compile(r"[A-Za-z0-9_.~-]{1,128}")
"""One name component: letters, digits and ``_ - . ~``, 1 to 128 characters."""
NAME_RULE = "1 to 128 letters, digits or _ - . ~"
MAX_ITEMS = 1024
"""The most items of any list in a policy (services, secrets, volumes, images, measurements, ...) and the
most variables of a service's environment."""
MAX_NAME_DEPTH = 16
"""Most ``/``-separated components of a session name."""
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER_RE = re.compile(r"\$\$SCONE::([^$:]+)(?::[^$]*)?\$\$")
"""``$$SCONE::name$$`` or ``$$SCONE::name:format$$``: replaced by the CAS with a secret's value."""
ISSUER_RE = re.compile(r"https://[^\s?#]{1,2000}")
DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
)
ADVISORY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SECRET_SIZE = 4096
PEM_CERTIFICATE_PREFIX = "-----BEGIN CERTIFICATE-----"

KEY_HEX = 64
"""Hex characters of a 32-byte key (``fspf_key``) and of a SHA-256 hash (measurements, key hashes)."""
TAG_HEX = 32
"""Hex characters of a 16-byte AES-GCM tag (``fspf_tag``)."""

_TOP_KEYS = (
    "name",
    "version",
    "predecessor",
    "access_policy",
    "services",
    "volumes",
    "images",
    "secrets",
    "security",
)
_ACCESS_KEYS = ("read", "update", "create_sessions")
_SERVICE_KEYS = (
    "name",
    "image_name",
    "mrenclaves",
    "attestation",
    "command",
    "environment",
    "pwd",
    "fspf_path",
    "fspf_key",
    "fspf_tag",
    "kubernetes",
)
_KUBERNETES_KEYS = ("issuer", "namespace", "service_account")
_VOLUME_KEYS = ("name", "fspf_key", "fspf_tag", "update_policy")
_IMAGE_KEYS = ("name", "volumes", "injection_files")
_SECRET_KEYS = (
    "name",
    "kind",
    "value",
    "size",
    "export_public",
    "private_key",
    "issuer",
    "common_name",
    "dns",
)


class _Checker:
    """Reads plain data into model values, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- shapes ---------------------------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A mapping with string keys among ``allowed``; unknown keys are problems (typos in a
        security policy must not pass silently). Returns ``{}`` when ``value`` is not a mapping."""
        if not isinstance(value, dict):
            self.fail(path, "expected a mapping")
            return {}
        allowed = tuple(allowed)
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.fail(path, "keys must be strings")
            elif key not in allowed:
                self.fail(_join(path, key), f"unknown key (allowed here: {', '.join(allowed)})")
            else:
                result[key] = item
        for key in required:
            if result.get(key) is None:
                self.fail(_join(path, key), "required")
        return result

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, "expected a list")
            return []
        return value

    def items(self, value: Any, path: str, read: Callable[[Any, str], T | None]) -> tuple[T, ...]:
        """Read every element of a list with ``read``, dropping those that failed. A list longer than
        :data:`MAX_ITEMS` is refused unread: what a policy costs to parse and to keep is bounded."""
        sequence = self.sequence(value, path)
        if len(sequence) > MAX_ITEMS:
            self.fail(path, f"at most {MAX_ITEMS} items")
            return ()
        results = (read(item, f"{path}[{index}]") for index, item in enumerate(sequence))
        return tuple(item for item in results if item is not None)

    # -- scalars --------------------------------------------------------------------------------

    def string(self, value: Any, path: str, *, allow_empty: bool = False) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(path, "expected a string (quote the value)")
            return None
        if not value and not allow_empty:
            self.fail(path, "must not be empty")
            return None
        return value

    def name(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is not None and not NAME_RE.fullmatch(text):
            self.fail(path, f"expected a name of {NAME_RULE}")
            return None
        return text

    def session_name(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        parts = text.split("/")
        if len(parts) > MAX_NAME_DEPTH:
            self.fail(path, f"more than {MAX_NAME_DEPTH} namespace levels")
            return None
        if any(not NAME_RE.fullmatch(part) or part in {".", ".."} for part in parts):
            self.fail(path, f"expected 'name' or 'namespace/name', each part {NAME_RULE} (not . or ..)")
            return None
        return text

    def hex_string(self, value: Any, path: str, length: int) -> str | None:
        """A hex string of exactly ``length`` characters, returned in lower case.

        YAML reads an all-decimal-digit value as a number; the loader kept its text, so such a
        value is accepted as the hex string it was written as.
        """
        if isinstance(value, SourcedInt | SourcedFloat):
            value = value.text
        if value is None:
            return None
        if not isinstance(value, str) or len(value) != length or not _is_hex(value):
            self.fail(path, f"expected {length} hex characters")
            return None
        return value.lower()

    def absolute_path(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        parts = text.split("/")[1:]
        if not text.startswith("/") or (text != "/" and any(p in {"", ".", ".."} for p in parts)):
            self.fail(path, "expected a normalised absolute path (starts with /, no //, . or .. parts)")
            return None
        return text

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(path, "expected true or false")
            return None
        return value

    def positive_int(self, value: Any, path: str, maximum: int) -> int | None:
        if value is None:
            return None
        # A float with an integral value (e.g. from JSON or Pulumi, where numbers are floats) is fine.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            self.fail(path, f"expected a whole number from 1 to {maximum}")
            return None
        return int(value)

    def choice(self, value: Any, path: str, enum: Callable[[str], T], allowed: Iterable[str]) -> T | None:
        text = self.string(value, path)
        if text is None:
            return None
        try:
            return enum(text)
        except ValueError:
            self.fail(path, f"expected one of: {', '.join(allowed)}")
            return None

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        return self.items(value, path, self.string)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


# -- sections ------------------------------------------------------------------------------------


def _access_entries(check: _Checker, value: Any, path: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    entries: list[str] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = f"{path}[{index}]"
        text = check.string(item, item_path)
        if text is None:
            continue
        if text in {CREATOR, ANY, NONE}:
            entries.append(text)
        elif text.startswith(PEM_CERTIFICATE_PREFIX):
            try:
                x509.load_pem_x509_certificate(text.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                check.fail(item_path, "not a valid PEM certificate")
                continue
            entries.append(text)
        elif len(text) == KEY_HEX and _is_hex(text):
            entries.append(text.lower())
        else:
            check.fail(
                item_path, "expected CREATOR, ANY, NONE, a 64-hex public-key hash or a PEM certificate"
            )
    if len(set(entries)) != len(entries):
        check.fail(path, "lists an entry twice")
    for exclusive in (ANY, NONE):
        if exclusive in entries and len(entries) > 1:
            check.fail(path, f"{exclusive} must be the only entry")
    return tuple(entries)


def _access_policy(check: _Checker, value: Any, path: str) -> AccessPolicy:
    if value is None:
        return AccessPolicy()
    fields = check.mapping(value, path, _ACCESS_KEYS)
    defaults = AccessPolicy()
    read = _access_entries(check, fields.get("read"), _join(path, "read"))
    update = _access_entries(check, fields.get("update"), _join(path, "update"))
    create = _access_entries(check, fields.get("create_sessions"), _join(path, "create_sessions"))
    return AccessPolicy(
        read=defaults.read if read is None else read,
        update=defaults.update if update is None else update,
        create_sessions=create,
    )


def _command(check: _Checker, value: Any, path: str) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        # Arguments may be empty strings (``prog ''`` is a real call); the program name may not.
        argv = check.items(value, path, lambda item, p: check.string(item, p, allow_empty=True))
        if not value or not value[0]:
            check.fail(path, "must start with the program to run")
        return argv if len(argv) == len(value) and argv and argv[0] else None
    text = check.string(value, path)
    if text is None:
        return None
    try:
        if not shlex.split(text):
            check.fail(path, "must not be empty")
            return None
    except ValueError:
        check.fail(path, "cannot be split like a shell command (unbalanced quotes?)")
        return None
    return text


def _environment(check: _Checker, value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        check.fail(path, "expected a mapping of variable names to strings")
        return {}
    if len(value) > MAX_ITEMS:
        check.fail(path, f"at most {MAX_ITEMS} variables")
        return {}
    environment: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            check.fail(path, "variable names must be letters, digits and _, not starting with a digit")
            continue
        text = check.string(item, _join(path, key), allow_empty=True)
        if text is not None:
            environment[key] = text
    return environment


def _service_attestation(check: _Checker, value: Any, path: str) -> ServiceAttestation | None:
    fields = check.mapping(value, path, ("mrenclave",), required=("mrenclave",))
    measurements = _measurements(check, fields.get("mrenclave"), _join(path, "mrenclave"))
    return ServiceAttestation(measurements) if measurements else None


def _measurements(check: _Checker, value: Any, path: str) -> tuple[str, ...]:
    found = check.items(value, path, lambda item, item_path: check.hex_string(item, item_path, KEY_HEX))
    if len(set(found)) != len(found):
        check.fail(path, "lists a measurement twice")
    return found


def _service(check: _Checker, value: Any, path: str) -> Service | None:
    fields = check.mapping(value, path, _SERVICE_KEYS, required=("name",))
    name = check.name(fields.get("name"), _join(path, "name"))
    service = Service(
        name=name or "",
        image_name=check.name(fields.get("image_name"), _join(path, "image_name")),
        mrenclaves=_measurements(check, fields.get("mrenclaves"), _join(path, "mrenclaves")),
        attestation=check.items(
            fields.get("attestation"),
            _join(path, "attestation"),
            lambda item, p: _service_attestation(check, item, p),
        ),
        command=_command(check, fields.get("command"), _join(path, "command")),
        environment=_environment(check, fields.get("environment"), _join(path, "environment")),
        pwd=check.absolute_path(fields.get("pwd"), _join(path, "pwd")),
        fspf_path=check.absolute_path(fields.get("fspf_path"), _join(path, "fspf_path")),
        fspf_key=check.hex_string(fields.get("fspf_key"), _join(path, "fspf_key"), KEY_HEX),
        fspf_tag=check.hex_string(fields.get("fspf_tag"), _join(path, "fspf_tag"), TAG_HEX),
        kubernetes=(
            _kubernetes(check, fields["kubernetes"], _join(path, "kubernetes"))
            if fields.get("kubernetes") is not None
            else None
        ),
    )
    present = {key for key in ("fspf_path", "fspf_key", "fspf_tag") if fields.get(key) is not None}
    if present and present != {"fspf_path", "fspf_key", "fspf_tag"}:
        for missing in sorted({"fspf_path", "fspf_key", "fspf_tag"} - present):
            check.fail(_join(path, missing), "required together with " + " and ".join(sorted(present)))
    return service if name else None


def _kubernetes(check: _Checker, value: Any, path: str) -> KubernetesIdentity | None:
    fields = check.mapping(value, path, _KUBERNETES_KEYS, required=_KUBERNETES_KEYS)
    issuer = check.string(fields.get("issuer"), _join(path, "issuer"))
    if issuer is not None and not ISSUER_RE.fullmatch(issuer):
        check.fail(
            _join(path, "issuer"), "expected an https:// URL without query or fragment (the token's iss)"
        )
    namespace = check.string(fields.get("namespace"), _join(path, "namespace"))
    if namespace is not None and not DNS_LABEL_RE.fullmatch(namespace):
        check.fail(_join(path, "namespace"), "expected a Kubernetes namespace: a DNS label")
    account = check.string(fields.get("service_account"), _join(path, "service_account"))
    if account is not None and not DNS_SUBDOMAIN_RE.fullmatch(account):
        check.fail(_join(path, "service_account"), "expected a service account name: a DNS subdomain")
    if issuer is None or namespace is None or account is None:
        return None
    return KubernetesIdentity(issuer, namespace, account)


def _volume(check: _Checker, value: Any, path: str) -> Volume | None:
    fields = check.mapping(value, path, _VOLUME_KEYS, required=("name",))
    name = check.name(fields.get("name"), _join(path, "name"))
    key = check.hex_string(fields.get("fspf_key"), _join(path, "fspf_key"), KEY_HEX)
    tag = check.hex_string(fields.get("fspf_tag"), _join(path, "fspf_tag"), TAG_HEX)
    if (fields.get("fspf_key") is None) != (fields.get("fspf_tag") is None):
        check.fail(path, "fspf_key and fspf_tag go together: give both or neither")
    policy = check.choice(
        fields.get("update_policy"),
        _join(path, "update_policy"),
        UpdatePolicy,
        [p.value for p in UpdatePolicy],
    )
    if not name:
        return None
    return Volume(
        name=name, fspf_key=key, fspf_tag=tag, update_policy=policy or UpdatePolicy.ROLLBACK_PROTECTED
    )


def _image_volume(check: _Checker, value: Any, path: str) -> ImageVolume | None:
    fields = check.mapping(value, path, ("name", "path"), required=("name", "path"))
    name = check.name(fields.get("name"), _join(path, "name"))
    mount = check.absolute_path(fields.get("path"), _join(path, "path"))
    return ImageVolume(name, mount) if name and mount else None


def _injection_file(check: _Checker, value: Any, path: str) -> InjectionFile | None:
    fields = check.mapping(value, path, ("path", "content"), required=("path", "content"))
    file_path = check.absolute_path(fields.get("path"), _join(path, "path"))
    content = check.string(fields.get("content"), _join(path, "content"), allow_empty=True)
    return InjectionFile(file_path, content) if file_path and content is not None else None


def _image(check: _Checker, value: Any, path: str) -> Image | None:
    fields = check.mapping(value, path, _IMAGE_KEYS, required=("name",))
    name = check.name(fields.get("name"), _join(path, "name"))
    volumes_path = _join(path, "volumes")
    volumes = check.items(fields.get("volumes"), volumes_path, lambda v, p: _image_volume(check, v, p))
    files_path = _join(path, "injection_files")
    files = check.items(fields.get("injection_files"), files_path, lambda v, p: _injection_file(check, v, p))
    _unique(check, volumes_path, [v.name for v in volumes], "volume")
    _unique(check, volumes_path, [v.path for v in volumes], "mount path")
    _unique(check, files_path, [f.path for f in files], "path")
    return Image(name, volumes, files) if name else None


def _secret(check: _Checker, value: Any, path: str) -> Secret | None:
    fields = check.mapping(value, path, _SECRET_KEYS, required=("name", "kind"))
    name = check.name(fields.get("name"), _join(path, "name"))
    kind = check.choice(fields.get("kind"), _join(path, "kind"), SecretKind, [k.value for k in SecretKind])
    secret_value = check.string(fields.get("value"), _join(path, "value"))
    size = check.positive_int(fields.get("size"), _join(path, "size"), MAX_SECRET_SIZE)
    export_public = check.boolean(fields.get("export_public"), _join(path, "export_public"))
    private_key = check.name(fields.get("private_key"), _join(path, "private_key"))
    issuer = check.name(fields.get("issuer"), _join(path, "issuer"))
    common_name = check.string(fields.get("common_name"), _join(path, "common_name"))
    dns = check.strings(fields.get("dns"), _join(path, "dns"))
    if secret_value is not None and size is not None:
        check.fail(path, "give either value or size, not both")
    if kind is SecretKind.BINARY and secret_value is not None and not _is_hex(secret_value):
        check.fail(_join(path, "value"), "a binary secret's value is written in hex")
    if kind in {SecretKind.BINARY, SecretKind.ASCII} or kind is None:
        for key in ("private_key", "issuer", "common_name", "dns"):
            if fields.get(key) is not None:
                check.fail(_join(path, key), "only for x509 and x509-ca secrets")
    elif size is not None:
        check.fail(_join(path, "size"), "only for ascii and binary secrets")
    if not (name and kind):
        return None
    return Secret(
        name=name,
        kind=kind,
        value=secret_value,
        size=size,
        export_public=bool(export_public),
        private_key=private_key,
        issuer=issuer,
        common_name=common_name,
        dns=dns,
    )


def _security(check: _Checker, value: Any, path: str) -> Security | None:
    if value is None:
        return None
    fields = check.mapping(value, path, ("attestation",))
    att_path = _join(path, "attestation")
    att = check.mapping(
        fields.get("attestation", {}), att_path, ("mode", "tolerate", "ignore_advisories", "platforms")
    )
    mode = check.choice(
        att.get("mode"), _join(att_path, "mode"), AttestationMode, [m.value for m in AttestationMode]
    )
    tolerate_path = _join(att_path, "tolerate")
    tolerate = check.strings(att.get("tolerate"), tolerate_path)
    for index, item in enumerate(tolerate):
        # Every toleration must mean something to the CAS: a misspelt or unknown one would be parsed and
        # then never evaluated, which hides a mistake in a security policy.
        if item not in KNOWN_TOLERATIONS:
            hint = (
                " (renamed insecure-software-evidence: self-reported evidence is insecure)"
                if item == "software-evidence"
                else ""
            )
            check.fail(
                f"{tolerate_path}[{index}]",
                f"unknown toleration{hint}; known: {', '.join(KNOWN_TOLERATIONS)}",
            )
    _unique(check, tolerate_path, list(tolerate), "toleration")
    advisories = _advisories(check, att.get("ignore_advisories"), _join(att_path, "ignore_advisories"))
    platforms = _platforms(check, att.get("platforms"), _join(att_path, "platforms"))
    if mode is AttestationMode.HARDWARE and platforms == Platforms():
        check.fail(
            _join(att_path, "platforms"),
            "mode hardware needs the hardware it accepts and what that must measure: "
            f"one or more of {', '.join(PLATFORM_KEYS)}",
        )
    return Security(
        Attestation(mode=mode, tolerate=tolerate, ignore_advisories=advisories, platforms=platforms)
    )


PLATFORM_KEYS = HARDWARE_KINDS
"""``security.attestation.platforms`` (ours): the hardware evidence a session accepts."""
_TCB_KEYS = ("bootloader", "tee", "snp", "microcode", "fmc")
SNP_MEASUREMENT_HEX = 96
PCR_HEX = 64
MAX_PCR = 23
MAX_VMPL = 3


def platforms_from_data(value: Any, path: str = "security.attestation.platforms") -> Platforms:
    """``security.attestation.platforms`` from plain data (a component's input); raises
    :class:`PolicyError` naming each problem by its path."""
    check = _Checker()
    platforms = _platforms(check, value, path)
    if check.problems:
        raise PolicyError(check.problems)
    return platforms


def _platforms(check: _Checker, value: Any, path: str) -> Platforms:
    if value is None:
        return Platforms()
    fields = check.mapping(value, path, PLATFORM_KEYS)
    snp = fields.get("sev-snp")
    tdx = fields.get("tdx")
    azure = fields.get("azure-cvm")
    return Platforms(
        sev_snp=None if snp is None else _sev_snp(check, snp, _join(path, "sev-snp")),
        tdx=None if tdx is None else _tdx(check, tdx, _join(path, "tdx")),
        azure_cvm=None if azure is None else _azure_cvm(check, azure, _join(path, "azure-cvm")),
    )


def _hardware_measurements(check: _Checker, value: Any, path: str, *, required: bool) -> tuple[str, ...]:
    found = check.items(value, path, lambda item, p: check.hex_string(item, p, SNP_MEASUREMENT_HEX))
    if required and (value is None or value == []):
        # Without a measurement, any genuine machine of this kind passes -- including one a stranger
        # rents in the same cloud. A policy must say which code it trusts.
        check.fail(path, "required: the measurements (96 hex characters each) the policy accepts")
    if len(set(found)) != len(found):
        check.fail(path, "lists a measurement twice")
    return found


def _small_int(check: _Checker, value: Any, path: str, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        check.fail(path, f"expected a whole number from 0 to {maximum}")
        return None
    return int(value)


def _tcb(check: _Checker, value: Any, path: str) -> SnpTcb:
    if value is None:
        return SnpTcb()
    fields = check.mapping(value, path, _TCB_KEYS)
    levels = {key: _small_int(check, fields.get(key), _join(path, key), 255) for key in _TCB_KEYS}
    return SnpTcb(**{key: level or 0 for key, level in levels.items()})


def _registers(
    check: _Checker, value: Any, path: str, maximum: int, length: int
) -> tuple[tuple[int, str], ...]:
    """A mapping of register index (a number, or its digits as a string) to its hex value."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        check.fail(path, "expected a mapping of register numbers to hex values")
        return ()
    registers = []
    for key, item in value.items():
        index = int(key) if isinstance(key, str) and key.isdigit() else key
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= maximum:
            check.fail(path, f"register numbers are 0 to {maximum}, not {key!r}")
            continue
        text = check.hex_string(item, _join(path, str(index)), length)
        if text is not None:
            registers.append((index, text))
    return tuple(sorted(registers))


def _sev_snp(check: _Checker, value: Any, path: str) -> SevSnpReference:
    fields = check.mapping(value, path, ("measurements", "minimum_tcb", "maximum_vmpl"))
    return SevSnpReference(
        measurements=_hardware_measurements(
            check, fields.get("measurements"), _join(path, "measurements"), required=True
        ),
        minimum_tcb=_tcb(check, fields.get("minimum_tcb"), _join(path, "minimum_tcb")),
        maximum_vmpl=_small_int(check, fields.get("maximum_vmpl"), _join(path, "maximum_vmpl"), MAX_VMPL)
        or 0,
    )


def _tdx(check: _Checker, value: Any, path: str) -> TdxReference:
    fields = check.mapping(value, path, ("mrtd", "rtmrs"))
    return TdxReference(
        mrtd=_hardware_measurements(check, fields.get("mrtd"), _join(path, "mrtd"), required=True),
        rtmrs=_registers(check, fields.get("rtmrs"), _join(path, "rtmrs"), 3, SNP_MEASUREMENT_HEX),
    )


FIRMWARE_EXTENDED_PCRS = frozenset({0, 7})
"""PCRs the firmware extends on every measured boot (its own code; the secure-boot policy) before any
loader runs: zero there is never a real value, only a placeholder left in a configuration."""


def _azure_cvm(check: _Checker, value: Any, path: str) -> AzureCvmReference:
    fields = check.mapping(value, path, ("pcrs", "measurements", "minimum_tcb"))
    pcrs = _registers(check, fields.get("pcrs"), _join(path, "pcrs"), MAX_PCR, PCR_HEX)
    if not pcrs:
        # The vTPM's PCRs are what identify the VM's boot chain and configuration; the hardware report
        # only says "an Azure confidential VM", which anyone can rent.
        check.fail(_join(path, "pcrs"), "required: the SHA-256 PCR values (64 hex characters) to pin")
    for index, pcr in pcrs:
        if index in FIRMWARE_EXTENDED_PCRS and set(pcr) == {"0"}:
            check.fail(
                _join(path, f"pcrs.{index}"),
                "all zeros, which no measured boot leaves there (the firmware extends it before anything "
                "runs): a placeholder. Read the nodes' values with `sconify evidence collect azure-cvm` on a "
                "node, then `sconify evidence verify azure-cvm` (docs/attestation.md)",
            )
    return AzureCvmReference(
        pcrs=pcrs,
        measurements=_hardware_measurements(
            check, fields.get("measurements"), _join(path, "measurements"), required=False
        ),
        minimum_tcb=_tcb(check, fields.get("minimum_tcb"), _join(path, "minimum_tcb")),
    )


def _advisories(check: _Checker, value: Any, path: str) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if value == "*":
        return "*"
    if isinstance(value, list):
        ids = check.strings(value, path)
        for index, item in enumerate(ids):
            if not ADVISORY_RE.fullmatch(item):
                check.fail(f"{path}[{index}]", "expected an advisory id such as INTEL-SA-00334")
        return ids or None  # an empty list ignores nothing, like no list
    check.fail(path, 'expected "*" or a list of advisory ids')
    return None


def _unique(check: _Checker, path: str, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            # Names are not secrets, but repeat nothing: the path and the kind of duplicate suffice.
            check.fail(path, f"the same {what} appears twice")
            return
        seen.add(value)


# -- whole session -------------------------------------------------------------------------------


def _version(check: _Checker, value: Any) -> str:
    if isinstance(value, SourcedFloat | SourcedInt | float | int):
        check.fail("version", f'must be a quoted string: version: "{SUPPORTED_VERSION}"')
        return SUPPORTED_VERSION
    text = check.string(value, "version")
    if text is not None and text != SUPPORTED_VERSION:
        check.fail("version", f'unsupported version (this model implements "{SUPPORTED_VERSION}")')
    return SUPPORTED_VERSION


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER_RE.findall(text))


def _cross_references(check: _Checker, session: Session) -> None:
    volume_names = {volume.name for volume in session.volumes}
    image_names = {image.name for image in session.images}
    secrets = {secret.name: secret for secret in session.secrets}

    _unique(check, "services", [s.name for s in session.services], "service name")
    _unique(check, "volumes", [v.name for v in session.volumes], "volume name")
    _unique(check, "images", [i.name for i in session.images], "image name")
    _unique(check, "secrets", [s.name for s in session.secrets], "secret name")

    for index, service in enumerate(session.services):
        path = f"services[{index}]"
        if service.image_name is not None and service.image_name not in image_names:
            check.fail(f"{path}.image_name", "refers to an image that images does not declare")
        used: set[str] = set()
        if isinstance(service.command, str):
            used |= _placeholders(service.command)
        elif service.command is not None:
            for argument in service.command:
                used |= _placeholders(argument)
        for variable in service.environment.values():
            used |= _placeholders(variable)
        if used - secrets.keys():
            check.fail(path, "a $$SCONE::name$$ placeholder refers to a secret that secrets does not declare")

    for index, image in enumerate(session.images):
        for volume_index, volume in enumerate(image.volumes):
            if volume.name not in volume_names:
                check.fail(
                    f"images[{index}].volumes[{volume_index}].name",
                    "refers to a volume that volumes does not declare",
                )
        for file_index, injected in enumerate(image.injection_files):
            if _placeholders(injected.content) - secrets.keys():
                check.fail(
                    f"images[{index}].injection_files[{file_index}].content",
                    "a $$SCONE::name$$ placeholder refers to a secret that secrets does not declare",
                )

    for index, secret in enumerate(session.secrets):
        path = f"secrets[{index}]"
        if secret.private_key is not None:
            target = secrets.get(secret.private_key)
            if target is None or target.kind is not SecretKind.PRIVATE_KEY:
                check.fail(f"{path}.private_key", "must name a private-key secret of this session")
        if secret.issuer is not None:
            target = secrets.get(secret.issuer)
            if target is None or target.kind is not SecretKind.X509_CA:
                check.fail(f"{path}.issuer", "must name an x509-ca secret of this session")


def session_from_data(data: Any) -> Session:
    """Validate plain data (as loaded from YAML or JSON) and build the model from it."""
    if not isinstance(data, dict):
        raise PolicyError.single("(document)", "expected a mapping at the top level")
    check = _Checker()
    fields = check.mapping(data, "", _TOP_KEYS, required=("name", "version"))
    session = Session(
        name=check.session_name(fields.get("name"), "name") or "",
        version=_version(check, fields.get("version")),
        predecessor=check.hex_string(fields.get("predecessor"), "predecessor", KEY_HEX),
        access_policy=_access_policy(check, fields.get("access_policy"), "access_policy"),
        services=check.items(fields.get("services"), "services", lambda v, p: _service(check, v, p)),
        volumes=check.items(fields.get("volumes"), "volumes", lambda v, p: _volume(check, v, p)),
        images=check.items(fields.get("images"), "images", lambda v, p: _image(check, v, p)),
        secrets=check.items(fields.get("secrets"), "secrets", lambda v, p: _secret(check, v, p)),
        security=_security(check, fields.get("security"), "security"),
    )
    _cross_references(check, session)
    if check.problems:
        raise PolicyError(check.problems)
    return session


def parse_session(text: str | bytes) -> Session:
    """Parse session YAML text into a validated :class:`Session`.

    Raises :class:`PolicyError` listing every problem with its field path.
    """
    return session_from_data(load_yaml(text))


def validate_session(session: Session) -> Session:
    """Check a model built in code against the same rules as parsed text; return it normalised.

    The result equals ``parse_session(render_session(session))``.
    """
    from .render import session_to_data  # noqa: PLC0415 - render imports this module's constants

    return session_from_data(session_to_data(session))
