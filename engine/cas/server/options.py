"""The options of ``cas serve``, written once: the CLI's parser is built from them, and what runs a CAS
elsewhere (the CAS image's default command, the CAS the Pulumi component deploys) writes its command with
:func:`serve_command` from the same names, so a renamed flag cannot leave either behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ...vocabulary import ATTESTATION_PORT, CLIENT_PORT


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 10**7:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10**6:
        raise argparse.ArgumentTypeError(f"expected a number of requests per second from 0, got {text!r}")
    return value


STORE_VARIABLE = "SCONIFY_CAS_STORE"


def store_url(text: str) -> str:
    """A PostgreSQL URL without a password (the command line is visible to every process)."""
    from ..state.database import POSTGRES_SCHEMES  # noqa: PLC0415

    if not text.startswith(POSTGRES_SCHEMES):
        raise argparse.ArgumentTypeError("expected a postgresql:// URL (without it, the CAS uses SQLite)")
    userinfo = text.split("://", 1)[1].split("@", 1)[0] if "@" in text else ""
    if ":" in userinfo or "password=" in text:
        raise argparse.ArgumentTypeError(
            "the URL holds a password: give it in PGPASSWORD or a password file (PGPASSFILE) instead; "
            "a command line is visible to every process"
        )
    return text


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=store_url,
        metavar="URL",
        help=f"keep the state in PostgreSQL at this postgresql:// URL (or ${STORE_VARIABLE}); password "
        "in PGPASSWORD or PGPASSFILE. Default: SQLite in the data directory",
    )


def anchor_location(text: str) -> Path | str:
    """``--anchor``: a SQLite file, or a ``postgresql://`` URL (without a password, as ``--store``)."""
    return store_url(text) if text.startswith(("postgresql://", "postgres://")) else Path(text)


def add_anchor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--anchor",
        type=anchor_location,
        metavar="FILE|URL",
        help="a second store (a SQLite file, or a postgresql:// URL) kept apart from the CAS's, where the "
        "audit head is written after every change: a database rolled back as a whole is refused at start",
    )


def positive_count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1000000, got {text!r}")
    return int(text)


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--data-dir", type=Path, required=True, help="state, keys and TLS files (made on first start)"
    )
    add_store_argument(serve)
    add_anchor_argument(serve)
    serve.add_argument(
        "--listen",
        type=host_port,
        default=("127.0.0.1", CLIENT_PORT),
        metavar="HOST:PORT",
        help=f"client API (default 127.0.0.1:{CLIENT_PORT})",
    )
    serve.add_argument(
        "--attest-listen",
        type=host_port,
        default=("127.0.0.1", ATTESTATION_PORT),
        metavar="HOST:PORT",
        help=f"attestation API (default 127.0.0.1:{ATTESTATION_PORT})",
    )
    serve.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP the server certificate must be valid for (repeatable)",
    )
    serve.add_argument(
        "--master-key-file",
        type=Path,
        help="the 64-hex master key (default: $SCONIFY_CAS_MASTER_KEY, else DATA_DIR/master.key)",
    )
    serve.add_argument(
        "--ca-dir",
        type=Path,
        metavar="DIR",
        help="issue the server certificate from this CA (DIR/ca.pem, DIR/ca-key.pem) instead of a new one",
    )
    serve.add_argument(
        "--credential-lifetime",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a volume credential from one attestation is valid (default 900); runtimes renew",
    )
    serve.add_argument(
        "--kubernetes-issuer",
        metavar="URL",
        help="accept service-account tokens of this cluster's issuer as evidence (the tokens' iss)",
    )
    serve.add_argument(
        "--kubernetes-jwks",
        metavar="FILE|URL",
        help="the issuer's key set: a file, or an https URL (default: ISSUER/openid/v1/jwks, reached "
        "with the pod's service-account CA and token when the CAS runs in the cluster)",
    )
    serve.add_argument("--kubernetes-ca", type=Path, metavar="FILE", help="CA for an https key set URL")
    serve.add_argument(
        "--kubernetes-token-file", type=Path, metavar="FILE", help="bearer token for an https key set URL"
    )
    serve.add_argument(
        "--request-deadline",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a connection has to send each whole request (default 30); slower ones are cut off",
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=positive_count,
        default=None,
        metavar="N",
        help="open connections one IP address may hold (default 64); more are closed",
    )
    serve.add_argument(
        "--max-connections",
        type=positive_count,
        default=None,
        metavar="N",
        help="open connections to each API from all addresses together (default 1024); more are closed",
    )
    serve.add_argument(
        "--client-rate",
        type=rate,
        default=None,
        metavar="PER_SECOND",
        help="requests per second one identity may make of the client API (default 100, bursts of twice "
        "that; 0: no limit)",
    )
    serve.add_argument(
        "--attestation-rate",
        type=rate,
        default=None,
        metavar="PER_SECOND",
        help="requests per second one address may make of the attestation API (default 500; 0: no limit)",
    )
    serve.add_argument(
        "--max-stored-mib",
        type=positive_count,
        default=None,
        metavar="MIB",
        help="policy versions this CAS stores, of all identities together (default 4096); beyond it "
        "uploads are refused",
    )
    serve.add_argument(
        "--self-made-mib",
        type=positive_count,
        default=None,
        metavar="MIB",
        help="policy versions all identities not granted with --grant-identity store together (default "
        "512): what self-made identities can take of the CAS-wide bound",
    )
    serve.add_argument(
        "--grant-identity",
        action="append",
        default=[],
        metavar="KEY_HASH",
        help="an identity (its key hash, 64 hex) granted room beyond the self-made pool, e.g. the owner "
        "who deploys; repeatable",
    )
    serve.add_argument(
        "--recovery-key",
        type=Path,
        action="append",
        default=[],
        metavar="PUBLIC.pem",
        help="seal the master key to this recovery public key (sconify cas recovery-key create), kept in the "
        "store and in every backup; repeat for several holders. When given, exactly these are kept",
    )
    serve.add_argument(
        "--snp-vcek-dir",
        type=Path,
        metavar="DIR",
        help="VCEK certificates from AMD's KDS, for SEV-SNP reports sent without their certificate table",
    )
    serve.add_argument(
        "--tdx-collateral",
        type=Path,
        metavar="DIR",
        help="Intel's TDX collateral (TCB info, QE identity, CRLs; docs/attestation.md): without it TDX "
        "evidence is refused",
    )


def serve_command(**options: object) -> list[str]:
    """``cas serve`` with ``options`` given by the parser's own names (``data_dir=...``, ``host=[...]``): what
    runs a CAS elsewhere — the CAS image's default command, the CAS the Pulumi component deploys — writes
    no flag of its own, so a renamed flag cannot leave them behind. A list or tuple repeats its flag; None
    leaves the option out. An unknown name raises ``ValueError``."""
    parser = argparse.ArgumentParser(add_help=False)
    add_serve_arguments(parser)
    # argparse keeps its actions in a private list; each holds its dest and flags, read here only.
    flags = {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}
    unknown = sorted(set(options) - set(flags))
    if unknown:
        raise ValueError(f"cas serve has no option {', '.join(unknown)}")
    command = ["cas", "serve"]
    for name, value in options.items():
        values = value if isinstance(value, list | tuple) else [] if value is None else [value]
        for item in values:
            command += [flags[name], str(item)]
    return command
