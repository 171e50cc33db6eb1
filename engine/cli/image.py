"""``sconify image``: the open engine's ``sconify_image`` — flags named as SCONE names them."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..chart import ChartSpecError, WorkloadType
from ..fspf import generate_key, load_or_create_key_file
from ..image.oci import Platform
from ..image.output import sconifier_output
from ..image.reference import ImageReference, Transport, parse_reference
from ..image.sconify import SconifyOptions
from ..image.service import ServicePolicy, sconify_service, write_service_chart
from ..image.transport import RegistryOptions, open_source
from ..policy import (
    DEFAULT_KUBERNETES_ISSUER as DEFAULT_ISSUER,
    KubernetesIdentity,
    Session,
    config_id,
    default_session_name,
    qualified_session_name,
    random_namespace,
)
from ..vocabulary import ATTESTATION_PORT, CLIENT_PORT, cas_host_and_port
from .common import (
    CAS_CA_FLAGS,
    EXIT_INVALID,
    CliError,
    add_registry_arguments,
    add_renamed_flag,
    registry_options,
)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "image",
        help="turn a native container image into a confidential one",
        description=(
            "Sconify an image, registry to registry, with no Docker daemon: encrypted --dir regions, "
            "an authenticated program and libraries, the runtime, the session policy and (optionally) "
            "a Helm chart. Flags follow SCONE's sconify_image."
        ),
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="REF",
        help="native image: docker://host/repo:tag|@digest, oci:DIR[:tag], docker-archive:FILE",
    )
    parser.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="REF",
        help="confidential image: docker://host/repo:tag or oci:DIR[:tag]",
    )
    parser.add_argument(
        "--command", help="what the service runs (default: the image's entrypoint and command)"
    )
    parser.add_argument("--binary", help="the program to authenticate (default: the command's program)")
    parser.add_argument(
        "--dir",
        dest="dirs",
        action="append",
        default=[],
        metavar="PATH",
        help="a directory to encrypt (repeatable)",
    )
    parser.add_argument(
        "--volume",
        dest="volumes",
        action="append",
        default=[],
        metavar="NAME:PATH",
        help="an encrypted, rollback-protected volume mounted at PATH (repeatable)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="environment of the service"
    )
    parser.add_argument("--name", help="session name (default: <service-name>-session)")
    parser.add_argument("--service-name", default="service", help="service name (default: service)")
    parser.add_argument(
        "--namespace",
        help="CAS namespace (default: ns-<13 digits>, derived from a reused --fspf-key-file, else random)",
    )
    parser.add_argument("--create-namespace", action="store_true", help="create the namespace in the CAS")
    parser.add_argument(
        "--cas-attestation",
        metavar="HOST[:PORT]",
        help=f"the CAS's attestation API (default port {ATTESTATION_PORT}): baked into the image",
    )
    add_renamed_flag(parser, "--cas", "--cas-attestation", "cas_attestation")
    parser.add_argument(
        "--cas-client",
        metavar="HOST[:PORT]",
        help=f"the CAS's client API, for the upload (default: the attestation host, port {CLIENT_PORT})",
    )
    parser.add_argument(
        *CAS_CA_FLAGS,
        dest="cas_ca",
        type=Path,
        metavar="FILE",
        help="the CAS's CA certificate: pinned in the image",
    )
    parser.add_argument(
        "--identity", type=Path, metavar="PATH", help="CAS client identity (directory or PEM)"
    )
    parser.add_argument(
        "--push-image", action="store_true", help="write the confidential image to a registry"
    )
    parser.add_argument("--dry-run", action="store_true", help="compute everything, write and upload nothing")
    parser.add_argument("--heap", default="", help="heap size for the runtime (part of the measurement)")
    parser.add_argument("--stack", default="", help="stack size for the runtime (part of the measurement)")
    parser.add_argument(
        "--k8s-helm-workload-type", default="job", choices=["job", "deployment", "statefulset", "daemonset"]
    )
    parser.add_argument(
        "--k8s-helm-output-dir", type=Path, metavar="DIR", help="write DIR/<service>/ (Helm chart)"
    )
    parser.add_argument("--no-color", action="store_true", help="plain output (it always is)")
    parser.add_argument("-v", "--verbose", action="store_true", help="report progress on standard error")
    parser.add_argument(
        "--fspf-key-file",
        type=Path,
        metavar="FILE",
        help="reuse this FSPF key (64 hex), or create it with mode 600; same key, same digest",
    )
    parser.add_argument(
        "--writable",
        action="append",
        default=[],
        metavar="PATH",
        help="a path the program writes besides its volumes and /tmp, /run: left unprotected (repeatable; "
        "the rest of the image root is authenticated)",
    )
    parser.add_argument(
        "--authenticated",
        action="append",
        default=[],
        metavar="PATH",
        help="authenticate a path inside one left unprotected (repeatable)",
    )
    attestation = parser.add_argument_group(
        "attestation",
        "How the service proves itself to the CAS. Pin the Kubernetes workload identity its pods run as; "
        "without one, nothing is accepted unless --insecure-software-evidence says so.",
    )
    attestation.add_argument(
        "--k8s-service-account", metavar="NAME", help="the service account the service's pods run as"
    )
    attestation.add_argument(
        "--k8s-namespace",
        default="default",
        metavar="NS",
        help="their Kubernetes namespace (default: default)",
    )
    attestation.add_argument(
        "--k8s-issuer",
        default=DEFAULT_ISSUER,
        metavar="URL",
        help=f"the cluster's service-account issuer (default: {DEFAULT_ISSUER})",
    )
    attestation.add_argument(
        "--insecure-software-evidence",
        action="store_true",
        help="INSECURE: let the CAS release the keys on the runtime's own word, which anyone who reaches "
        "the CAS can give (local development only)",
    )
    add_registry_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_image)


def _pairs(values: list[str], separator: str, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, found, rest = value.partition(separator)
        if not found or not name or not rest:
            raise CliError(f"{flag} {value!r}: expected NAME{separator}VALUE")
        pairs.append((name, rest))
    return pairs


def _cas_addresses(attestation: str | None, client: str | None) -> tuple[str, str]:
    """The attestation and client API addresses, ``host:port`` each; the client API defaults to the
    attestation API's host."""
    if not attestation:
        return "", client or ""
    host, port = cas_host_and_port(attestation, ATTESTATION_PORT)
    return f"{host}:{port}", client or f"{host}:{CLIENT_PORT}"


def _derived_namespace(key: bytes) -> str:
    """A namespace that follows from a reused FSPF key: the same key file, the same session names, and
    so (the configuration id is baked into the image) the same image digest."""
    number = int.from_bytes(hmac.new(key, b"sconify-namespace-v1", hashlib.sha256).digest()[:8], "big")
    return f"ns-{number % 10**13:013d}"


def _default_command(source: ImageReference, registry: RegistryOptions, platform: Platform) -> str:
    with open_source(source, registry) as image:
        runtime = image.resolve(platform).config.get("config") or {}
    argv = list(runtime.get("Entrypoint") or []) + list(runtime.get("Cmd") or [])
    if not argv:
        raise CliError("the image has no entrypoint or command: give --command")
    return shlex.join(argv)


def _image(args: argparse.Namespace) -> int:
    source = parse_reference(args.source)
    destination = parse_reference(args.destination)
    if destination.transport is Transport.DOCKER and not (args.push_image or args.dry_run):
        raise CliError("--to names a registry: add --push-image to write there (or --dry-run)")
    registry = registry_options(args)
    platform = Platform.parse(args.platform)
    quiet = args.json or not (args.verbose or sys.stderr.isatty())

    def progress(message: str) -> None:
        if not quiet:
            print(f"sconify: {message}", file=sys.stderr)

    if args.fspf_key_file:
        key, created = load_or_create_key_file(args.fspf_key_file)
        if created:
            progress(f"created FSPF key file {args.fspf_key_file} (mode 600)")
    else:
        key = generate_key()
        progress("no --fspf-key-file: a fresh FSPF key, so the image digest differs from any earlier run")
    volumes = _pairs(args.volumes, ":", "--volume")
    environment = dict(_pairs(args.env, "=", "--env"))
    command = args.command or _default_command(source, registry, platform)
    namespace = args.namespace or (_derived_namespace(key) if args.fspf_key_file else random_namespace())
    session = args.name or default_session_name(args.service_name)
    session_name = qualified_session_name(namespace, session)
    attest_address, client_address = _cas_addresses(args.cas_attestation, args.cas_client)
    pin = args.cas_ca.read_bytes() if args.cas_ca else b""

    options = SconifyOptions(
        source=source,
        destination=destination,
        command=command,
        fspf_key=key,
        service=args.service_name,
        binary=args.binary,
        dirs=tuple(args.dirs),
        authenticated=tuple(args.authenticated),
        writable=tuple(args.writable),
        volumes=tuple(volumes),
        config_id=config_id(namespace, session, args.service_name),
        cas_attestation_address=attest_address,
        cas_ca_certificate=pin,
        heap=args.heap,
        stack=args.stack,
        platform=platform,
        registry=registry,
        dry_run=args.dry_run,
    )
    made = sconify_service(
        options,
        ServicePolicy(
            namespace=namespace,
            session=session_name.rpartition("/")[2],
            environment=environment,
            kubernetes=(
                KubernetesIdentity(args.k8s_issuer, args.k8s_namespace, args.k8s_service_account)
                if args.k8s_service_account
                else None
            ),
            insecure_software_evidence=args.insecure_software_evidence,
        ),
        progress,
    )
    result, session = made.result, made.session
    session_hash = None
    if client_address and args.identity and not args.dry_run:
        if not args.cas_ca:
            raise CliError(
                "uploading with --identity needs --cas-ca-certificate: the CAS's identity must be pinned"
            )
        session, session_hash = _upload(
            session, client_address, args.cas_ca, args.identity, args.create_namespace, progress
        )
    output = sconifier_output(result, options, session, session_hash)
    chart = None
    if args.k8s_helm_output_dir:
        workload = WorkloadType(args.k8s_helm_workload_type)
        try:
            chart = str(write_service_chart(output, workload, args.k8s_helm_output_dir))
        except ChartSpecError as error:
            raise CliError(f"--k8s-helm-output-dir: {error}") from None
    output["chart"] = chart
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(f"image: {output['image']}")
        print(f"mrenclave: {result.mrenclave}")
        print(f"config id: {output['config_id']}")
        if chart:
            print(f"chart: {chart}")
        if session_hash:
            print(f"session hash: {session_hash}")
    return 0


def _upload(
    session: Session, address: str, ca: Path, identity_path: Path, create_namespace: bool, progress: Any
) -> tuple[Session, str]:
    from ..cas.clients.client import CasClient  # noqa: PLC0415 - only uploads need HTTP
    from ..cas.clients.identity import load_client_identity  # noqa: PLC0415
    from ..cas.clients.upload import ensure_namespace, upload_latest  # noqa: PLC0415
    from ..errors import CasError  # noqa: PLC0415 - only uploads need HTTP

    identity = load_client_identity(identity_path)
    namespace = session.namespace
    with CasClient(address, ca, identity) as client:
        try:
            if create_namespace and namespace:
                created = ensure_namespace(client, namespace)
                progress(f"created namespace {namespace}" if created else f"namespace {namespace} exists")
            session, digest = upload_latest(client, session)
            if session.predecessor:
                progress(f"updated session {session.name} (predecessor {session.predecessor[:12]})")
        except CasError as error:
            problems = "".join(f"\n  {p}" for p in error.extra.get("problems", []))
            raise CliError(f"{error}{problems}", EXIT_INVALID) from None
    return session, digest
