"""``sconify fspf``: protect, verify, decrypt and show file-system trees."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..fspf import (
    FspfError,
    IntegrityError,
    Protection,
    Region,
    decrypt_tree,
    load_or_create_key_file,
    parse_tag,
    protect_tree,
    read_key_file,
    verify_tree,
)
from ..fspf.metadata import FORMAT_VERSION, image_context, stored_tag, unseal
from ..fspf.tree import read_metadata
from ..layout import FSPF_METADATA
from .common import CliError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "fspf",
        help="protect, verify and decrypt file-system trees (FSPF)",
        description="File-system protection: regions of a tree sealed under one key.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    protect = commands.add_parser("protect", help="protect the tree SRC into OUT; prints the tag last")
    protect.add_argument("source", metavar="SRC", type=Path)
    protect.add_argument("out", metavar="OUT", type=Path)
    for protection in Protection:
        protect.add_argument(
            f"--{protection.value}",
            metavar="PATH",
            action="append",
            default=[],
            dest=protection.name.lower(),
            help=f"an absolute path inside the tree to make {protection.value} (repeatable)",
        )
    protect.add_argument(
        "--key-file",
        type=Path,
        required=True,
        help="the 64-hex key; created with mode 600 if it does not exist",
    )
    protect.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    protect.set_defaults(handler=_protect)

    verify = commands.add_parser("verify", help="verify a protected tree against its key and tag")
    verify.add_argument("tree", metavar="OUT", type=Path)
    _key_and_tag(verify)
    verify.set_defaults(handler=_verify)

    decrypt = commands.add_parser(
        "decrypt", help="verify, then write the encrypted regions' plaintext to DEST"
    )
    decrypt.add_argument("tree", metavar="OUT", type=Path)
    decrypt.add_argument("destination", metavar="DEST", type=Path)
    _key_and_tag(decrypt)
    decrypt.set_defaults(handler=_decrypt)

    show = commands.add_parser("show", help="describe a protected tree (never keys or content)")
    show.add_argument("tree", metavar="OUT", type=Path)
    show.add_argument("--key-file", type=Path, help="with the key, also list regions and entries")
    show.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    show.set_defaults(handler=_show)


def _key_and_tag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", type=Path, required=True, help="the file holding the 64-hex key")
    parser.add_argument("--tag", required=True, help="the 32-hex tag that protect printed")


def _fatal(error: FspfError) -> CliError:
    kind = "FATAL" if isinstance(error, IntegrityError) else "error"
    return CliError(f"{kind}: {error}", error.exit_code)


def _protect(args: argparse.Namespace) -> int:
    regions = [
        Region(path, protection)
        for protection in Protection
        for path in getattr(args, protection.name.lower())
    ]
    try:
        key, created = load_or_create_key_file(args.key_file)
        result = protect_tree(args.source, args.out, key, regions)
    except FspfError as error:
        raise _fatal(error) from None
    counts = {
        p.value: sum(1 for e in result.manifest.entries if e.protection is p and e.type == "file")
        for p in (Protection.AUTHENTICATED, Protection.ENCRYPTED)
    }
    if args.json:
        print(
            json.dumps(
                {
                    "tag": result.tag.hex(),
                    "metadata": FSPF_METADATA,
                    "key_file": str(args.key_file),
                    "key_created": created,
                    "files": counts,
                }
            )
        )
    else:
        if created:
            print(f"created key file {args.key_file} (mode 600)")
        print(
            f"protected {counts['encrypted']} encrypted and {counts['authenticated']} authenticated files "
            f"into {args.out}"
        )
        print(f"tag: {result.tag.hex()}")
    return 0


def _key_tag(args: argparse.Namespace) -> tuple[bytes, bytes]:
    try:
        return read_key_file(args.key_file), parse_tag(args.tag, "--tag")
    except FspfError as error:
        raise _fatal(error) from None


def _verify(args: argparse.Namespace) -> int:
    key, tag = _key_tag(args)
    try:
        manifest = verify_tree(args.tree, key, tag)
    except FspfError as error:
        raise _fatal(error) from None
    print(f"verified {len(manifest.entries)} protected entries of {args.tree}")
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    key, tag = _key_tag(args)
    try:
        manifest = decrypt_tree(args.tree, args.destination, key, tag)
    except FspfError as error:
        raise _fatal(error) from None
    written = sum(1 for e in manifest.entries if e.protection is Protection.ENCRYPTED and e.type == "file")
    print(f"verified {args.tree} and decrypted {written} files into {args.destination}")
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        data = read_metadata(args.tree)
        summary: dict[str, object] = {
            "metadata": FSPF_METADATA,
            "format": FORMAT_VERSION,
            "bytes": len(data),
            "tag": stored_tag(data, FSPF_METADATA).hex(),
        }
        if args.key_file is not None:
            manifest = unseal(data, read_key_file(args.key_file), image_context(), FSPF_METADATA)
            summary["chunk_size"] = manifest.chunk_size
            summary["regions"] = [
                {"path": r.path, "protection": r.protection.value} for r in manifest.regions
            ]
            summary["entries"] = [
                {
                    "path": e.path,
                    "type": e.type,
                    "protection": e.protection.value,
                    "mode": oct(e.mode),
                    **({"size": e.size} if e.type == "file" else {}),
                }
                for e in manifest.entries
            ]
    except FspfError as error:
        raise _fatal(error) from None
    if args.json:
        print(json.dumps(summary))
        return 0
    for field in ("metadata", "format", "bytes", "tag", "chunk_size"):
        if field in summary:
            print(f"{field}: {summary[field]}")
    for region in summary.get("regions", []):  # type: ignore[attr-defined]
        print(f"region {region['path']}: {region['protection']}")
    for entry in summary.get("entries", []):  # type: ignore[attr-defined]
        size = f" {entry['size']} bytes" if "size" in entry else ""
        print(f"{entry['protection']:13} {entry['type']:7} {entry['mode']:>6}{size} {entry['path']}")
    return 0
