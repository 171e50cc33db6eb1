"""``SconifiedImage``: a native image made confidential, with its measurement, FSPF key and policy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi

from ...engine.chart import WorkloadType
from ...engine.fspf import generate_key
from ...engine.image.oci import DEFAULT_PLATFORM, ImageError, Platform
from ...engine.image.reference import ImageReferenceError, parse_reference
from ...engine.image.registry import RegistryError
from ...engine.image.sconify import SconifyOptions, check_paths
from ...engine.image.service import ServicePolicy, sconify_service, write_service_chart
from ...engine.image.transport import RegistryOptions, open_destination, open_source
from ...engine.policy import (
    KubernetesIdentity,
    PolicyError,
    Service,
    Session,
    config_id,
    platforms_from_data,
    render_session,
    validate_session,
)
from ...engine.policy.builder import DEFAULT_TOLERATE, sconified_session
from ...engine.runtime.binary import ARCHITECTURES
from .base import (
    PROVIDER_VERSION,
    Changes,
    CheckFailure,
    CheckResult,
    CreateResult,
    ReadResult,
    ReportsProgress,
    ResourceLogic,
    UpdateResult,
    changed,
    inputs_of,
    is_unknown,
    private_files,
    required,
    whole_numbers,
)
from .sdk import SconifyResource, take_renamed
from .spec import (
    ANY,
    BOOLEAN,
    PROVIDER_VERSION_PROPERTY,
    STRING,
    WORKLOAD_TYPE,
    Property,
    ResourceSpec,
    array_of,
    map_of,
)

REGISTRY_AUTH = Property(
    STRING, "A Docker `config.json` (its text) for the registries involved.", secret=True
)
INSECURE_REGISTRIES = Property(array_of(STRING), "Registries reached over plain HTTP (`host:port`).")
PLATFORM = Property(STRING, "The image platform, `linux/amd64` or `linux/arm64`.")
SPEC = ResourceSpec(
    "SconifiedImage",
    "A confidential image made from a native one by the open engine: the runtime and the protected file "
    "system added, the measurement and the session policy made. `pulumi preview` resolves the native tag, "
    "so a moved tag shows as a change; the FSPF key is made once (unless given) and kept, so the same inputs "
    "give the same image digest.",
    # 0.2 called both CAS endpoints `cas` (the attestation API here, the client API in CasSession).
    renamed={"cas": "cas_attestation_address", "cas_ca": "cas_ca_certificate"},
    inputs={
        "native_image": Property(
            STRING,
            "The native image (`registry/repo:tag` or `@sha256:...`); a change of its digest updates.",
            required=True,
        ),
        "target": Property(STRING, "Where the confidential image is pushed.", replaces=True, required=True),
        "command": Property(STRING, "The service's command line in the confidential image.", required=True),
        "session": Property(STRING, "The session name (without namespace).", required=True),
        "namespace": Property(STRING, "The CAS namespace the session is in.", required=True),
        "service": Property(STRING, "The service name in the session."),
        "binary": Property(STRING, "The binary to measure, when not the command's first word."),
        "dirs": Property(
            array_of(STRING), "Directories of the image whose files are encrypted and authenticated."
        ),
        "writable": Property(
            array_of(STRING),
            "Paths the service writes besides its volumes, `/tmp` and `/run`: left unprotected. The rest of "
            "the image's root is authenticated.",
        ),
        "volumes": Property(map_of(STRING), "Policy volumes: name to absolute mount path in the image."),
        "env": Property(map_of(STRING), "Environment variables the policy gives the service."),
        "heap": Property(STRING, "SCONE's heap size (`SCONE_HEAP`), empty for the default."),
        "stack": Property(STRING, "SCONE's stack size (`SCONE_STACK`), empty for the default."),
        "tolerate": Property(
            array_of(STRING),
            "What attestation tolerates (policy only); unset for SCONE's defaults, which include "
            "`debug-mode`.",
        ),
        "kubernetes": Property(
            map_of(STRING), "`{issuer, namespace, service_account}`: the workload identity the policy pins."
        ),
        "insecure_software_evidence": Property(
            BOOLEAN, "INSECURE: the policy also accepts self-reported software evidence. Off by default."
        ),
        "hardware_attestation": Property(
            ANY, "Hardware evidence the policy requires, per platform (`azure-cvm`, `snp`, `tdx`)."
        ),
        "cas_attestation_address": Property(
            STRING, "The CAS's attestation API (`host:port`) baked into the image: runtimes attest there."
        ),
        "cas_ca_certificate": Property(STRING, "The CAS's CA certificate (PEM) the image pins."),
        "fspf_key": Property(
            STRING, "The FSPF key (64 hex); without it a key is made on create and kept.", secret=True
        ),
        "chart_dir": Property(STRING, "Where to write the service's Helm chart (empty: none)."),
        "workload_type": Property(WORKLOAD_TYPE.ref, "The chart's workload."),
        "registry_auth": REGISTRY_AUTH,
        "insecure_registries": INSECURE_REGISTRIES,
        "platform": PLATFORM,
        "engine": Property(STRING, "`open` (the only engine in this version).", replaces=True),
        "provider_version": PROVIDER_VERSION_PROPERTY,
    },
    outputs={
        "native_digest": Property(
            STRING, "The native image, pinned by digest, as resolved at the last check.", made_at_check=True
        ),
        "image": Property(STRING, "The confidential image, pinned by digest."),
        "image_reference": Property(STRING, "The confidential image as pushed (its reference with digest)."),
        "mrenclave": Property(STRING, "The measurement the policy lists."),
        "fspf_tag": Property(STRING, "The protected file system's tag (its root MAC)."),
        "policy": Property(
            STRING, "The session policy YAML for a CasSession (it holds the FSPF key).", secret=True
        ),
        "session_name": Property(STRING, "`namespace/session`."),
        "config_id": Property(STRING, "`namespace/session/service`: what the runtime attests for."),
        "mounts": Property(
            array_of(map_of(STRING)), "How to run the image: `{path, kind, volume}` per mount."
        ),
        "chart_path": Property(STRING, "The chart's directory, when one was written."),
        "chart_digest": Property(STRING, "A digest of the chart's files."),
        "policy_outline": Property(
            STRING,
            "The session policy as planned at check, for review: the measurement and file system tag "
            "shown as `[measured at build]`, the FSPF key as `[secret]`. `pulumi preview --diff` shows how "
            "a change of the inputs changes the policy. Secret when an input it is made from is.",
            made_at_check=True,
            secret_with=(
                "command",
                "namespace",
                "session",
                "service",
                "volumes",
                "env",
                "tolerate",
                "kubernetes",
                "insecure_software_evidence",
                "hardware_attestation",
            ),
        ),
    },
)
SECRET_OUTPUTS = SPEC.secret_outputs
DEFAULTS: dict[str, Any] = {
    "dirs": [],
    "writable": [],
    "volumes": {},
    "env": {},
    "heap": "",
    "stack": "",
    "service": "service",
    "engine": "open",
    "workload_type": "job",
    "insecure_registries": [],
    "platform": DEFAULT_PLATFORM,
    "provider_version": PROVIDER_VERSION,
}


@contextmanager
def registry_options(props: dict[str, Any]) -> Iterator[RegistryOptions]:
    auth = props.get("registry_auth")
    insecure = frozenset(props.get("insecure_registries") or [])
    if not auth:
        yield RegistryOptions(insecure=insecure)
        return
    with private_files(config=str(auth)) as files:
        yield RegistryOptions(insecure=insecure, auth_file=files["config"])


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


class SconifiedImageProvider(ReportsProgress, ResourceLogic):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = whole_numbers({**DEFAULTS, **inputs_of(news)})
        failures = required(news, ["native_image", "target", "command", "session", "namespace"])
        if news.get("engine") not in ("open", None) and _known(news.get("engine")):
            failures.append(CheckFailure("engine", "only the open engine is available in this version"))
        for field in ("native_image", "target"):
            value = news.get(field)
            if isinstance(value, str) and value and not is_unknown(value):
                try:
                    parse_reference(value)
                except ImageReferenceError as error:
                    failures.append(CheckFailure(field, str(error)))
        if isinstance(news.get("volumes"), dict) and not all(
            isinstance(v, str) for v in news["volumes"].values()
        ):
            failures.append(CheckFailure("volumes", "a mapping of volume names to absolute paths"))
        failures.extend(_kubernetes_failures(news.get("kubernetes")))
        if not failures:
            refused, planned = _planned_policy(news)
            failures.extend(refused)
            if planned is not None:
                news["policy_outline"] = policy_outline(planned)
        hardware = news.get("hardware_attestation")
        if hardware and not is_unknown(hardware):
            try:
                platforms_from_data(hardware, "hardware_attestation")
            except PolicyError as error:
                failures.extend(
                    CheckFailure("hardware_attestation", str(problem)) for problem in error.problems
                )
            if news.get("insecure_software_evidence") is True:
                failures.append(
                    CheckFailure(
                        "insecure_software_evidence", "excluded by hardware_attestation: one or the other"
                    )
                )
        native = news.get("native_image")
        if not failures and isinstance(native, str) and not is_unknown(native) and "@sha256:" in native:
            # Pinned by digest: nothing can move, so nothing is resolved — a preview on a machine that
            # cannot reach the registry (a fresh CI runner) sees the same input and no diff.
            news["native_digest"] = str(parse_reference(native))
        elif not failures and isinstance(native, str) and not is_unknown(native):
            # A tag is resolved now, so that a moved tag shows up in `pulumi preview`.
            try:
                with (
                    registry_options(news) as registry,
                    open_source(parse_reference(native), registry) as source,
                ):
                    news["native_digest"] = str(source.resolve(Platform.parse(news["platform"])).reference)
            except (ImageError, RegistryError, ImageReferenceError) as error:
                failures.append(CheckFailure("native_image", f"cannot resolve: {error}"))
        return CheckResult(news, failures)

    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes:
        # The native image counts by its digest (resolved at check): a new tag for one digest is no change.
        compared = [
            key
            for key in SPEC.inputs
            if key not in SPEC.replace_on and key not in ("native_image", "fspf_key")
        ]
        updates = changed(olds, news, ["native_digest", *compared])
        if olds.get("policy_outline") is not None and olds.get("policy_outline") != news.get(
            "policy_outline"
        ):
            updates.append(
                "policy_outline"
            )  # what the policy's change is, for a reviewer (states before 0.2 lack it)
        if news.get("fspf_key") and news.get("fspf_key") != olds.get("fspf_key"):
            updates.append("fspf_key")  # no key given means "keep the one made at create"
        return Changes(updates=updates, replaces=changed(olds, news, SPEC.replace_on))

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props, props.get("fspf_key") or generate_key().hex())
        return CreateResult(id=outs["target"], outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # A key made by the provider is kept across updates: the same key, the same image for the same input.
        return UpdateResult(outs=self._build(news, news.get("fspf_key") or olds["fspf_key"]))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        image = parse_reference(str(props["image_reference"]))
        with (
            registry_options(props) as registry,
            open_destination(parse_reference(str(props["target"])), registry) as destination,
        ):
            present = destination.has_manifest(str(image.digest))
        # Gone means the image was deleted at the registry: the engine then drops the resource.
        return ReadResult(id=id_ if present else "", outs=inputs_of(props) if present else {})

    def _build(self, props: dict[str, Any], fspf_key: str) -> dict[str, Any]:
        namespace, session_name, service = (
            str(props["namespace"]),
            str(props["session"]),
            str(props["service"]),
        )
        volumes = dict(props.get("volumes") or {})
        with registry_options(props) as registry:
            options = SconifyOptions(
                source=parse_reference(str(props["native_digest"])),
                destination=parse_reference(str(props["target"])),
                command=str(props["command"]),
                fspf_key=bytes.fromhex(fspf_key),
                service=service,
                binary=props.get("binary") or None,
                dirs=tuple(props.get("dirs") or ()),
                writable=tuple(props.get("writable") or ()),
                volumes=tuple(volumes.items()),
                config_id=config_id(namespace, session_name, service),
                cas_attestation_address=str(props.get("cas_attestation_address") or ""),
                cas_ca_certificate=str(props.get("cas_ca_certificate") or "").encode(),
                heap=str(props.get("heap") or ""),
                stack=str(props.get("stack") or ""),
                platform=Platform.parse(str(props["platform"])),
                registry=registry,
            )
            made = sconify_service(
                options,
                ServicePolicy(
                    namespace=namespace,
                    session=session_name,
                    environment=dict(props.get("env") or {}),
                    tolerate=tuple(props["tolerate"])
                    if props.get("tolerate") is not None
                    else DEFAULT_TOLERATE,
                    kubernetes=KubernetesIdentity(**props["kubernetes"]) if props.get("kubernetes") else None,
                    insecure_software_evidence=bool(props.get("insecure_software_evidence")),
                    platforms=platforms_from_data(props["hardware_attestation"])
                    if props.get("hardware_attestation")
                    else None,
                ),
                self.progress,
            )
        result, session = made.result, made.session
        output = made.output()
        outs = {
            **inputs_of(props),
            "fspf_key": fspf_key,
            "image_reference": str(result.image),
            "image": output["image"],
            "mrenclave": result.mrenclave,
            "fspf_tag": result.fspf_tag,
            "policy": output["session"],
            "session_name": session.name,
            "config_id": options.config_id,
            "mounts": output["mounts"],
            "chart_path": "",
            "chart_digest": "",
        }
        if props.get("chart_dir"):
            outs["chart_path"], outs["chart_digest"] = _chart(output, props)
        return outs


POLICY_FIELDS = (
    ("security.attestation.tolerate", "tolerate"),
    ("images[0].volumes", "volumes"),
    ("services[0].environment", "env"),
    ("services[0].command", "command"),
    ("services[0].kubernetes", "kubernetes"),
    ("services[0]", "service"),
    ("images[0]", "service"),
    ("security", "hardware_attestation"),
    ("name", "session"),
)
"""Which input a problem of the policy comes from, by the problem's path (the first prefix that matches)."""


MEASURED = ("0" * 64, "2" * 32)
"""Placeholders of what only the build knows (the measurement, the file system's tag)."""
KEY_PLACEHOLDER = "1" * 64


def policy_outline(session: Session) -> str:
    """The policy Create will write, for a reviewer: what the build measures and the FSPF key masked."""
    # The placeholders are all digits, which YAML quotes: the labels stay strings in the outline.
    outline = render_session(session).replace(KEY_PLACEHOLDER, "[secret]")
    for placeholder in MEASURED:
        outline = outline.replace(placeholder, "[measured at build]")
    return outline


def _holds_unknown(value: Any) -> bool:
    """A preview-time unknown anywhere inside (an issuer or an environment value from another resource)."""
    if isinstance(value, dict):
        return any(_holds_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_unknown(item) for item in value)
    return is_unknown(value)


def _planned_policy(news: dict[str, Any]) -> tuple[list[CheckFailure], Session | None]:
    """What Create would refuse, found before anything is pulled, built or pushed (the inputs' types,
    the chart's workload among them, are the plugin's first check): the FSPF key, the platform, the paths
    and volume names as the sconifier takes them, and the policy Create will write (made here with
    placeholder measurements, then validated by the policy's rules) — which is returned when nothing is
    refused. Inputs unknown in a preview are checked in the preview that knows them."""
    if _holds_unknown(news):
        return [], None
    failures = []
    key = news.get("fspf_key")
    if key and not (
        isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key)
    ):
        failures.append(CheckFailure("fspf_key", "expected 64 hexadecimal digits (a 32-byte key)"))
    try:
        platform = Platform.parse(str(news["platform"]))
    except ImageError as error:
        failures.append(CheckFailure("platform", str(error)))
    else:
        if platform.os != "linux" or platform.architecture not in ARCHITECTURES:
            supported = ", ".join(f"linux/{name}" for name in ARCHITECTURES)
            failures.append(CheckFailure("platform", f"{platform}: the runtime runs on {supported}"))
    volumes = dict(news.get("volumes") or {})
    try:
        check_paths(
            SconifyOptions(
                source=parse_reference(str(news["native_image"])),
                destination=parse_reference(str(news["target"])),
                command=str(news["command"]),
                fspf_key=bytes(32),
                dirs=tuple(news.get("dirs") or ()),
                writable=tuple(news.get("writable") or ()),
                volumes=tuple(volumes.items()),
            )
        )
    except ImageError as error:
        given_in = [
            name
            for name in ("dirs", "writable")
            if any(str(error).startswith(f"{path}:") for path in news.get(name) or ())
        ]
        return [*failures, CheckFailure(given_in[0] if given_in else "volumes", str(error))], None
    try:
        planned = sconified_session(
            namespace=str(news["namespace"]),
            session=str(news["session"]),
            service=str(news["service"]),
            mrenclave=MEASURED[0],
            command=str(news["command"]),
            fspf_key=KEY_PLACEHOLDER,
            fspf_tag=MEASURED[1],
            volumes=volumes,
            environment=dict(news.get("env") or {}),
            tolerate=tuple(news["tolerate"]) if news.get("tolerate") is not None else DEFAULT_TOLERATE,
            kubernetes=KubernetesIdentity(**news["kubernetes"]) if news.get("kubernetes") else None,
            insecure_software_evidence=bool(news.get("insecure_software_evidence")),
            platforms=platforms_from_data(news["hardware_attestation"])
            if news.get("hardware_attestation")
            else None,
        )
    except PolicyError as error:
        named = set()
        for problem in error.problems:  # the first problem of each input: one cause shows in many places
            field = next(
                name for prefix, name in (*POLICY_FIELDS, ("", "command")) if problem.path.startswith(prefix)
            )
            if field not in named:
                named.add(field)
                failures.append(CheckFailure(field, f"{problem.path}: {problem.message}"))
        return failures, None
    return failures, None if failures else planned


def _kubernetes_failures(value: Any) -> list[CheckFailure]:
    """The workload identity the policy will pin, checked by the policy's own rules (when known)."""
    if value is None or is_unknown(value):
        return []
    fields = ("issuer", "namespace", "service_account")
    if not isinstance(value, dict) or set(value) != set(fields):
        return [CheckFailure("kubernetes", "expected issuer, namespace and service_account")]
    if any(is_unknown(value[name]) for name in fields):
        return []
    try:
        validate_session(
            Session(name="check", services=(Service("check", kubernetes=KubernetesIdentity(**value)),))
        )
    except PolicyError as error:
        return [
            CheckFailure(
                "kubernetes", "; ".join(f"{p.path.rpartition('.')[2]}: {p.message}" for p in error.problems)
            )
        ]
    return []


def _chart(output: dict[str, Any], props: dict[str, Any]) -> tuple[str, str]:
    directory = write_service_chart(
        output, WorkloadType(str(props["workload_type"])), Path(str(props["chart_dir"]))
    )
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(json.dumps([path.relative_to(directory).as_posix(), path.read_text()]).encode())
    return str(directory), digest.hexdigest()


class SconifiedImage(SconifyResource):
    """A confidential image made from a native one by the open engine.

    ``pulumi preview`` resolves the native tag, so a moved tag shows as a change. The FSPF key is made
    once (unless given) and kept, so the same inputs give the same image digest.
    """

    image: pulumi.Output[str]
    """The confidential image, pinned by digest."""
    mrenclave: pulumi.Output[str]
    """The measurement the policy lists."""
    fspf_tag: pulumi.Output[str]
    fspf_key: pulumi.Output[str]
    """The FSPF key (64 hex). Secret."""
    policy: pulumi.Output[str]
    """The session policy YAML for a :class:`CasSession`. Secret (it holds the FSPF key)."""
    session_name: pulumi.Output[str]
    config_id: pulumi.Output[str]
    mounts: pulumi.Output[list[dict[str, Any]]]
    """How to run the image: ``{path, kind, volume}`` per mount (what the chart and components use)."""
    chart_path: pulumi.Output[str]
    chart_digest: pulumi.Output[str]
    native_digest: pulumi.Output[str]
    """The native image, pinned by digest, as resolved at the last check."""

    def __init__(
        self,
        resource_name: str,
        *,
        native_image: pulumi.Input[str],
        target: pulumi.Input[str],
        command: pulumi.Input[str],
        session: pulumi.Input[str],
        namespace: pulumi.Input[str],
        service: pulumi.Input[str] = "service",
        binary: pulumi.Input[str] | None = None,
        dirs: pulumi.Input[list[str]] | None = None,
        writable: pulumi.Input[list[str]] | None = None,
        volumes: pulumi.Input[dict[str, str]] | None = None,
        env: pulumi.Input[dict[str, str]] | None = None,
        tolerate: pulumi.Input[Sequence[str]] | None = None,
        kubernetes: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        insecure_software_evidence: pulumi.Input[bool] = False,
        hardware_attestation: pulumi.Input[Mapping[str, Any]] | None = None,
        heap: pulumi.Input[str] = "",
        stack: pulumi.Input[str] = "",
        cas_attestation_address: pulumi.Input[str] = "",
        cas_ca_certificate: pulumi.Input[str] = "",
        fspf_key: pulumi.Input[str] | None = None,
        registry_auth: pulumi.Input[str] | None = None,
        insecure_registries: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        chart_dir: pulumi.Input[str] = "",
        workload_type: pulumi.Input[str] = "job",
        platform: pulumi.Input[str] = DEFAULT_PLATFORM,
        engine: pulumi.Input[str] = "open",
        opts: pulumi.ResourceOptions | None = None,
        **renamed: pulumi.Input[str],
    ) -> None:
        """``renamed``: ``cas`` and ``cas_ca``, this class's names in 0.2 for ``cas_attestation_address`` and
        ``cas_ca_certificate``, accepted with a deprecation warning."""
        props: dict[str, Any] = {
            "native_image": native_image,
            "target": target,
            "command": command,
            "session": session,
            "namespace": namespace,
            "service": service,
            "binary": binary,
            "dirs": dirs or [],
            "writable": writable or [],
            "volumes": volumes or {},
            "env": env or {},
            "tolerate": tolerate,
            "kubernetes": kubernetes,
            "insecure_software_evidence": insecure_software_evidence,
            "hardware_attestation": hardware_attestation,
            "heap": heap,
            "stack": stack,
            "cas_attestation_address": cas_attestation_address,
            "cas_ca_certificate": cas_ca_certificate,
            "fspf_key": pulumi.Output.secret(fspf_key) if fspf_key is not None else None,
            "registry_auth": pulumi.Output.secret(registry_auth) if registry_auth is not None else None,
            "insecure_registries": insecure_registries or [],
            "chart_dir": chart_dir,
            "workload_type": workload_type,
            "platform": platform,
            "engine": engine,
            "provider_version": PROVIDER_VERSION,
        }
        for output in (
            "image",
            "image_reference",
            "mrenclave",
            "fspf_tag",
            "policy",
            "session_name",
            "config_id",
            "mounts",
            "chart_path",
            "chart_digest",
            "native_digest",
        ):
            props[output] = None
        take_renamed(SPEC, props, renamed)
        super().__init__(SPEC, resource_name, props, opts)
