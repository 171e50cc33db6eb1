"""``sconify cas`` (run a CAS, check its audit log) and ``sconify identity`` (client identities)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..cas.clients.identity import create_client_identity
from ..cas.server.options import (
    STORE_VARIABLE,
    add_anchor_argument,
    add_serve_arguments,
    add_store_argument,
    serve_command,
    store_url,
)
from ..layout import CAS_STATE_DIRECTORY
from ..vocabulary import ATTESTATION_PORT, CLIENT_PORT
from .common import CAS_CA_FLAGS, EXIT_INVALID, CliError, add_registry_arguments, registry_options


def _store_location(args: argparse.Namespace) -> Path | str:
    """``--store``, else ``$SCONIFY_CAS_STORE``, else SQLite in the data directory."""
    given = args.store or os.environ.get(STORE_VARIABLE)
    if given:
        try:
            return store_url(given)
        except argparse.ArgumentTypeError as error:
            raise CliError(f"--store / ${STORE_VARIABLE}: {error}") from None
    return Path(args.data_dir) / "cas.db"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "cas",
        help="run a Configuration and Attestation Service; check its audit log",
        description="The open engine's Configuration and Attestation Service.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run a CAS (client API with mutual TLS, attestation API)")
    add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)

    image = commands.add_parser(
        "image",
        help="build the CAS's container image onto a base image with Python",
        description="Build the open engine's CAS image: BASE plus one layer with the CAS and its "
        "dependencies for BASE's Python; entrypoint `python3 -m pulumi_sconify.engine.cli`, "
        "command `cas serve`, user 10001.",
    )
    image.add_argument("--from", dest="base", required=True, metavar="IMAGE", help="base image with python3")
    image.add_argument("--to", dest="target", required=True, metavar="IMAGE", help="where to push the image")
    add_registry_arguments(image)
    image.set_defaults(handler=_image)

    recovery = commands.add_parser("recovery-key", help="recovery keys for the master key")
    recovery_commands = recovery.add_subparsers(dest="recovery_command", metavar="COMMAND", required=True)
    recovery_create = recovery_commands.add_parser(
        "create", help="write DIR/recovery-key.pem (private, mode 600: keep it offline) and its public key"
    )
    recovery_create.add_argument("--out", type=Path, required=True, metavar="DIR")
    recovery_create.set_defaults(handler=_recovery_key_create)

    recover = commands.add_parser(
        "recover",
        help="recover the master key with a recovery private key, from the store or a backup",
        description="Open the master key a CAS sealed to a recovery key (cas serve --recovery-key) and write "
        "it to a new file, for a new CAS on the same state (--master-key-file).",
    )
    recover.add_argument("--recovery-key", type=Path, required=True, metavar="PRIVATE.pem")
    source = recover.add_mutually_exclusive_group(required=True)
    source.add_argument("--backup", type=Path, metavar="FILE", help="a backup (sconify cas backup create)")
    source.add_argument("--data-dir", type=Path, metavar="DIR", help="the data directory of the store")
    add_store_argument(recover)
    recover.add_argument("--out", type=Path, required=True, metavar="FILE", help="the master key (mode 600)")
    recover.add_argument(
        *CAS_CA_FLAGS,
        dest="cas_ca",
        type=Path,
        required=True,
        metavar="CA.pem",
        help="the CAS's CA certificate, as its clients pin it: a master key this CA did not vouch for (a "
        "backup of another CAS, a replaced sealed copy) is refused",
    )
    recover.set_defaults(handler=_recover)

    backup = commands.add_parser("backup", help="consistent, encrypted backups of a CAS, taken while it runs")
    backup_commands = backup.add_subparsers(dest="backup_command", metavar="COMMAND", required=True)
    backup_create = backup_commands.add_parser("create", help="write a backup of the CAS's state")
    backup_verify = backup_commands.add_parser("verify", help="check a backup completely")
    backup_restore = backup_commands.add_parser(
        "restore", help="replace a CAS's state with a backup's (never a rollback without --allow-rollback)"
    )
    for command in (backup_create, backup_verify, backup_restore):
        command.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
        command.add_argument("--master-key-file", type=Path)
    for command in (backup_create, backup_restore):
        add_store_argument(command)
        add_anchor_argument(command)
    for command in (backup_verify, backup_restore):
        command.add_argument(
            *CAS_CA_FLAGS,
            dest="cas_ca",
            type=Path,
            metavar="CA.pem",
            help="the CAS's CA certificate, as its clients pin it: refuse a backup this CA did not vouch for",
        )
    backup_create.add_argument("--out", type=Path, required=True, metavar="FILE")
    backup_create.set_defaults(handler=_backup_create)
    backup_verify.add_argument("backup", type=Path, metavar="FILE")
    backup_verify.set_defaults(handler=_backup_verify)
    backup_restore.add_argument("backup", type=Path, metavar="FILE")
    backup_restore.add_argument(
        "--allow-rollback",
        action="store_true",
        help="restore even if the store went on past the backup, or holds nothing (audit-logged)",
    )
    backup_restore.set_defaults(handler=_backup_restore)

    audit = commands.add_parser("audit", help="work with the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check that no audit entry was edited, removed or reordered"
    )
    verify.add_argument("data_dir", metavar="DIR", type=Path)
    add_store_argument(verify)
    add_anchor_argument(verify)
    verify.add_argument("--master-key-file", type=Path)
    verify.set_defaults(handler=_audit_verify)

    identity = groups.add_parser(
        "identity",
        help="create CAS client identities (key and certificate)",
        description="CAS client identities: a key and a self-signed certificate.",
    )
    identity_commands = identity.add_subparsers(dest="command", metavar="COMMAND", required=True)
    create = identity_commands.add_parser(
        "create", help="write DIR/client.pem and DIR/client-key.pem (mode 600)"
    )
    create.add_argument("--out", type=Path, required=True, metavar="DIR")
    create.add_argument("--name", default="sconify-client", help="the certificate's common name")
    create.set_defaults(handler=_identity_create)


def default_serve_command() -> list[str]:
    """The CAS image's default command: its state on the image's volume, both APIs on every address."""
    return serve_command(
        data_dir=CAS_STATE_DIRECTORY,
        listen=f"0.0.0.0:{CLIENT_PORT}",
        attest_listen=f"0.0.0.0:{ATTESTATION_PORT}",
    )


def _serve(args: argparse.Namespace) -> int:
    from ..cas.intake.credentials import CREDENTIAL_LIFETIME  # noqa: PLC0415
    from ..cas.intake.hardware import HardwareTrust  # noqa: PLC0415
    from ..cas.intake.kubernetes import JwksSource, in_cluster_source  # noqa: PLC0415
    from ..cas.server.server import (  # noqa: PLC0415 - Twisted is only needed to serve
        ConnectionLimits,
        ServeConfig,
        serve,
    )

    kubernetes = None
    if args.kubernetes_issuer is not None:
        if not args.kubernetes_issuer.startswith("https://"):
            raise CliError("--kubernetes-issuer: expected an https:// URL (the tokens' iss)")
        if args.kubernetes_jwks is None:
            source = in_cluster_source(args.kubernetes_issuer)
        else:
            source = JwksSource(args.kubernetes_jwks, args.kubernetes_ca, args.kubernetes_token_file)
        kubernetes = (args.kubernetes_issuer, source)
    elif args.kubernetes_jwks or args.kubernetes_ca or args.kubernetes_token_file:
        raise CliError(
            "--kubernetes-jwks, --kubernetes-ca and --kubernetes-token-file need --kubernetes-issuer"
        )
    for flag, directory in (("--snp-vcek-dir", args.snp_vcek_dir), ("--tdx-collateral", args.tdx_collateral)):
        if directory is not None and not directory.is_dir():
            raise CliError(f"{flag}: not a directory: {directory}")
    hardware = HardwareTrust(vcek_directory=args.snp_vcek_dir, tdx_collateral=args.tdx_collateral)
    given = {
        "request_deadline": args.request_deadline,
        "per_address": args.max_connections_per_address,
        "total": args.max_connections,
        "client_rate": args.client_rate,
        "attestation_rate": args.attestation_rate,
    }
    limits = ConnectionLimits(**{name: value for name, value in given.items() if value is not None})
    serve(
        ServeConfig(
            data_dir=args.data_dir,
            client_address=args.listen,
            attest_address=args.attest_listen,
            hosts=args.host,
            master_key_file=args.master_key_file,
            ca_directory=args.ca_dir,
            credential_lifetime=args.credential_lifetime or CREDENTIAL_LIFETIME,
            kubernetes=kubernetes,
            hardware=hardware,
            limits=limits,
            database=_store_location(args),
            recovery_keys=[_public_recovery_key(path) for path in args.recovery_key],
            quotas=_quotas(args),
            anchor=args.anchor,
        )
    )
    return 0


def _quotas(args: argparse.Namespace) -> Any:
    from ..cas.state.quotas import Quotas, granted_identities  # noqa: PLC0415

    try:
        granted = granted_identities(args.grant_identity)
    except ValueError as error:
        raise CliError(f"--grant-identity: {error}") from None
    given = {
        "stored_bytes": args.max_stored_mib and args.max_stored_mib * 2**20,
        "self_made_bytes": args.self_made_mib and args.self_made_mib * 2**20,
    }
    return Quotas(granted=granted, **{name: value for name, value in given.items() if value})


def _image(args: argparse.Namespace) -> int:
    from ..image.cas_image import CasImageOptions, build_cas_image  # noqa: PLC0415
    from ..image.oci import Platform  # noqa: PLC0415
    from ..image.output import pinned  # noqa: PLC0415
    from ..image.reference import parse_reference  # noqa: PLC0415

    options = CasImageOptions(
        base=parse_reference(args.base),
        destination=parse_reference(args.target),
        command=tuple(default_serve_command()),
        platform=Platform.parse(args.platform),
        registry=registry_options(args),
    )
    image = build_cas_image(options, lambda message: print(f"sconify: {message}", file=sys.stderr))
    print(pinned(image))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from ..cas.state.anchor import AnchorError  # noqa: PLC0415
    from ..cas.state.database import DatabaseError  # noqa: PLC0415
    from ..cas.state.store import Store, StoreError, load_master_key  # noqa: PLC0415

    database = _store_location(args)
    if isinstance(database, Path) and not database.is_file():
        raise CliError(f"{args.data_dir}: no CAS database here")
    try:
        with Store(database, load_master_key(args.data_dir, args.master_key_file), args.anchor) as store:
            count = store.verify_audit()
    except (StoreError, DatabaseError, AnchorError) as error:
        raise CliError(f"FATAL: {error}", EXIT_INVALID) from None
    print(f"audit log of {args.data_dir}: {count} entries, chain intact")
    return 0


def _public_recovery_key(path: Path) -> Any:
    from ..cas.state.recovery import RecoveryError, load_public_key  # noqa: PLC0415

    try:
        return load_public_key(path)
    except RecoveryError as error:
        raise CliError(f"--recovery-key: {error}") from None


def _recovery_key_create(args: argparse.Namespace) -> int:
    from ..cas.state.recovery import create_recovery_key  # noqa: PLC0415

    files = create_recovery_key(args.out)
    print(f"private key: {files.private} (mode 600; keep it offline, away from the CAS)")
    print(f"public key: {files.public} (give it to cas serve --recovery-key)")
    print(f"fingerprint: {files.fingerprint}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from ..cas.clients.identity import write_private  # noqa: PLC0415
    from ..cas.state.backup import read_header  # noqa: PLC0415
    from ..cas.state.recovery import (  # noqa: PLC0415
        fingerprint,
        load_private_key,
        open_master_key,
        origin_problem,
    )
    from ..cas.state.store import read_recovery_material  # noqa: PLC0415

    pinned_ca = _read_ca(args.cas_ca)
    private = load_private_key(args.recovery_key)
    if args.backup is not None:
        header = read_header(args.backup)
        copies, origin = dict(header["recovery"]), header.get("origin")
        source = str(args.backup)
    else:
        location = _store_location(args)
        copies, origin = read_recovery_material(location)
        source = str(location)
    name = fingerprint(private.public_key())
    if name not in copies:
        raise CliError(f"{source}: holds no master key sealed to recovery key {name[:16]}")
    master = open_master_key(copies[name], private)
    problem = origin_problem(origin, master, pinned_ca)
    if problem is not None:
        raise CliError(f"FATAL: {source}: refused, not the CAS whose CA you pinned: {problem}", EXIT_INVALID)
    try:
        write_private(args.out, master.hex().encode() + b"\n")
    except FileExistsError:
        raise CliError(f"{args.out}: exists; refusing to overwrite it") from None
    print(f"master key recovered into {args.out} (mode 600): start the CAS with --master-key-file {args.out}")
    return 0


def _pinned_ca(path: Path | None) -> bytes | None:
    return None if path is None else _read_ca(path)


def _read_ca(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"--cas-ca: {path}: cannot read ({error.strerror})") from None


def _master_key(args: argparse.Namespace) -> bytes:
    from ..cas.state.store import load_master_key  # noqa: PLC0415

    return load_master_key(args.data_dir, args.master_key_file)


def _backup_create(args: argparse.Namespace) -> int:
    from ..cas.state.backup import write_backup  # noqa: PLC0415
    from ..cas.state.store import Store  # noqa: PLC0415

    master = _master_key(args)
    with Store(_store_location(args), master, args.anchor) as store:
        header = write_backup(store, master, args.out)
    print(f"backup written to {args.out}: up to audit entry {header['audit_head']['seq']}")
    return 0


def _backup_verify(args: argparse.Namespace) -> int:
    from ..cas.state.backup import BackupError, verify_backup  # noqa: PLC0415
    from ..cas.state.store import StoreError  # noqa: PLC0415

    try:
        header = verify_backup(args.backup, _master_key(args), _pinned_ca(args.cas_ca))
    except (BackupError, StoreError) as error:
        raise CliError(f"FATAL: {error}", EXIT_INVALID) from None
    print(f"backup {args.backup}: up to audit entry {header['audit_head']['seq']}, verified")
    return 0


def _backup_restore(args: argparse.Namespace) -> int:
    from ..cas.state.backup import restore_backup  # noqa: PLC0415
    from ..cas.state.store import Store  # noqa: PLC0415

    master = _master_key(args)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # Not checked against the anchor: the restore resets it.
    with Store(_store_location(args), master) as store:
        record = restore_backup(
            args.backup, master, store, args.allow_rollback, _pinned_ca(args.cas_ca), args.anchor
        )
    rolled = " (a rollback, allowed and audit-logged)" if record["rollback_allowed"] else ""
    print(f"restored {args.backup}: the store is at the backup's audit entry {record['backup_seq']}{rolled}")
    return 0


def _identity_create(args: argparse.Namespace) -> int:
    identity = create_client_identity(args.out, args.name)
    print(f"certificate: {identity.certificate}")
    print(f"private key: {identity.key} (mode 600)")
    print(f"key hash: {identity.key_hash}")
    return 0
