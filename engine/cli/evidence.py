"""``sconify evidence``: verify hardware attestation evidence offline, with the CAS's own verifiers."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..attestation.offline import OfflineOptions, verify_file
from ..attestation.verdict import Verdict
from ..errors import EvidenceRefusedError
from ..policy import PolicyError, parse_session
from ..runtime.hardware import HardwareSources
from ..runtime.protocol import evidence_binding
from ..vocabulary import HARDWARE_KINDS
from .common import EXIT_INVALID, CliError, read_bounded

MAX_EVIDENCE_FILE = 1024 * 1024


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evidence = groups.add_parser(
        "evidence",
        help="verify hardware attestation evidence (SEV-SNP, TDX, Azure confidential VMs)",
        description="Hardware attestation evidence, checked with the same code as the CAS.",
    )
    commands = evidence.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify",
        help="verify evidence and print what it proves",
        description="Verify FILE (a raw report or quote, its hex, or the JSON a runtime sends) as KIND "
        "evidence and print the verified claims and the checks that ran (exit 0), or the check that "
        "refused it (exit 1). Without --policy no reference values are checked: this is how to learn "
        "the measurements to pin.",
    )
    verify.add_argument("kind", metavar="KIND", choices=HARDWARE_KINDS, help=", ".join(HARDWARE_KINDS))
    verify.add_argument("file", metavar="FILE", help="the report, quote or evidence bundle (- for stdin)")
    verify.add_argument(
        "--vcek", type=Path, metavar="FILE", help="SEV-SNP: the VCEK (DER or PEM) from AMD's KDS"
    )
    verify.add_argument(
        "--certificates", type=Path, metavar="FILE", help="SEV-SNP: the extended report's certificate table"
    )
    verify.add_argument(
        "--collateral", type=Path, metavar="DIR", help="TDX: Intel's collateral, laid out as for the CAS"
    )
    verify.add_argument(
        "--at",
        metavar="RFC3339-TIME",
        help="verify as of this moment (default: now), e.g. when the evidence was made",
    )
    verify.add_argument(
        "--policy", type=Path, metavar="FILE", help="check against this session's reference values"
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.set_defaults(handler=_verify)

    collect = commands.add_parser(
        "collect",
        help="collect this node's hardware evidence (run it on a confidential VM)",
        description="Collect KIND evidence from this node's TEE (configfs-tsm, /dev/sev-guest, or an Azure "
        "confidential VM's vTPM) and print it as the JSON a runtime sends; give it to `sconify evidence "
        "verify` to read the measurements and PCRs a policy should pin. Without --nonce the report is "
        "bound to nothing and no CAS accepts it.",
    )
    collect.add_argument("kind", metavar="KIND", choices=HARDWARE_KINDS, help=", ".join(HARDWARE_KINDS))
    collect.add_argument("--nonce", metavar="HEX", default="", help="a CAS nonce to bind the evidence to")
    collect.add_argument(
        "--runtime-key",
        metavar="HEX",
        default="00" * 32,
        help="the Ed25519 key it is bound to (32 bytes, hex)",
    )
    collect.set_defaults(handler=_collect)


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at: not an RFC 3339 time: {text!r} (e.g. 2025-06-25T00:00:00Z)") from None
    if moment.tzinfo is None:
        raise CliError("--at: give the time zone (e.g. a trailing Z for UTC)")
    return moment


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"{what}: {error.strerror}: {path}") from None


def _verify(args: argparse.Namespace) -> int:
    session = None
    if args.policy is not None:
        try:
            session = parse_session(_read(args.policy, "--policy") or b"")
        except PolicyError as error:
            raise CliError(f"--policy: {error}", EXIT_INVALID) from None
    options = OfflineOptions(
        at=_moment(args.at),
        vcek=_read(args.vcek, "--vcek"),
        certificates=_read(args.certificates, "--certificates"),
        collateral=args.collateral,
        session=session,
    )
    data = read_bounded(args.file, MAX_EVIDENCE_FILE)
    try:
        verdict = verify_file(args.kind, data, options)
    except EvidenceRefusedError as refusal:
        if args.json:
            print(
                json.dumps(
                    {"platform": args.kind, "refused": {"check": refusal.check, "reason": str(refusal)}}
                )
            )
            return refusal.exit_code
        raise
    print(json.dumps(verdict.as_json(), indent=2) if args.json else _human(verdict, session is not None))
    return 0


def _human(verdict: Verdict, with_policy: bool) -> str:
    lines = [f"{verdict.platform} evidence verified: {', '.join(verdict.checks)}"]
    if verdict.not_checked:
        why = "" if with_policy else " (no --policy; nothing bound to a nonce)"
        lines.append(f"not checked: {', '.join(verdict.not_checked)}{why}")
    lines.extend(_flatten(verdict.claims))
    if verdict.weaknesses:
        lines.append(f"weaknesses: {', '.join(sorted(verdict.weaknesses))} (a policy must tolerate each)")
    if verdict.advisories:
        lines.append(f"advisories: {', '.join(sorted(verdict.advisories))} (a policy must ignore each)")
    return "\n".join(lines)


def _flatten(claims: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in claims.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            lines.append(f"{prefix}{key}: {' '.join(map(str, value))}")
        else:
            lines.append(f"{prefix}{key}: {value}")
    return lines


def _collect(args: argparse.Namespace) -> int:
    try:
        binding = evidence_binding(args.nonce, bytes.fromhex(args.runtime_key))
    except ValueError:
        raise CliError("--nonce and --runtime-key: hex") from None
    sources = HardwareSources()
    if args.kind not in sources.available():
        raise CliError(
            f"this node offers no {args.kind} evidence (found: {', '.join(sources.available()) or 'no TEE'})",
            EXIT_INVALID,
        )
    evidence = sources.collect(args.kind, binding)
    print(json.dumps(evidence, indent=2))
    return 0
