"""The measurement (``mrenclave``) of a confidential image: a hash over what the runtime will run.

The sconifier computes it from the protected entries; the runtime recomputes it at start from the files
themselves, guided by ``/sconify/measure.json`` (the plan: program, regions, heap, stack), which lies in
the authenticated ``/sconify`` region and so is measured too — the runtime must measure before the CAS
gives it the FSPF key, so it cannot rely on the sealed metadata for the list.

Version 1 is the lower-case hex SHA-256 of ``b"sconify-measurement-v1\\n"`` followed by canonical JSON
(sorted keys, no white space) of::

    {"binary": "<absolute path of the program the policy runs>",
     "files": [[path, type, mode, size, sha256-or-link-target], ...],   # sorted by path
     "heap": "<--heap or empty>", "stack": "<--stack or empty>"}

where ``files`` lists every entry of the image's authenticated regions: the binary, its libraries and
interpreter modules, and the runtime itself. Content is hashed in the clear, so the measurement does
not depend on the FSPF key: the same native image and options always measure the same. The runtime
recomputes it at start, over the same regions, before it asks the CAS for anything; the CAS releases
the configuration only for a measurement the policy lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..fspf.metadata import Entry, Protection, Region

DOMAIN = b"sconify-measurement-v1\n"
PLAN_PATH = "/sconify/measure.json"


def _file_sha256(location: Path) -> str:
    with location.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def describe(root: Path, paths: Iterable[str]) -> list[list[object]]:
    """``[path, type, mode, size, sha256 or target]`` for each path (absolute, in the tree ``root``)."""
    rows: list[list[object]] = []
    for path in sorted(set(paths)):
        location = root / path.lstrip("/")
        info = os.lstat(location)
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            rows.append([path, "symlink", 0o777, 0, str(location.readlink())])
        elif stat.S_ISDIR(info.st_mode):
            rows.append([path, "dir", mode, 0, ""])
        else:
            rows.append([path, "file", mode, info.st_size, _file_sha256(location)])
    return rows


def rows_from_entries(entries: Iterable[Entry]) -> list[list[object]]:
    """The same rows as :func:`describe`, from FSPF entries that carry their content digests."""
    rows: list[list[object]] = []
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.type == "symlink":
            rows.append([entry.path, "symlink", 0o777, 0, entry.target or ""])
        elif entry.type == "dir":
            rows.append([entry.path, "dir", entry.mode, 0, ""])
        else:
            rows.append([entry.path, "file", entry.mode, entry.size, entry.digest.hex()])
    return rows


def measurement(binary: str, rows: list[list[object]], heap: str = "", stack: str = "") -> str:
    """The measurement for ``binary`` over the rows of the authenticated files."""
    document = {"binary": binary, "files": rows, "heap": heap, "stack": stack}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(DOMAIN + canonical).hexdigest()


def plan_json(binary: str, regions: Iterable[Region], heap: str, stack: str) -> bytes:
    """The measurement plan the sconifier writes into the image (canonical JSON)."""
    document = {
        "version": 1,
        "binary": binary,
        "heap": heap,
        "stack": stack,
        "regions": [[r.path, r.protection.value] for r in sorted(regions, key=lambda r: r.path)],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def measure_root(root: Path) -> str:
    """Recompute the measurement of the image whose root file system is ``root`` (what the runtime does).

    Walks the authenticated regions the plan names — exactly the entries the sconifier protected — and
    hashes them; raises ``ValueError`` if the plan is missing or malformed.
    """
    return measure_with_digests(root)[0]


def measure_with_digests(root: Path) -> tuple[str, dict[str, bytes]]:
    """The measurement, and the SHA-256 of every authenticated file it read (so that verification need
    not read them again)."""
    from ..fspf.paths import host_path, is_within, walk  # noqa: PLC0415 - the runtime's import set
    from ..fspf.tree import normalise_regions, region_for  # noqa: PLC0415

    try:
        plan = json.loads((root / PLAN_PATH.lstrip("/")).read_bytes())
        regions = normalise_regions(Region(path, Protection(kind)) for path, kind in plan["regions"])
        binary, heap, stack = str(plan["binary"]), str(plan["heap"]), str(plan["stack"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{PLAN_PATH}: missing or malformed ({type(error).__name__})") from None
    protected = [r.path for r in regions if r.protection is not Protection.NOT_PROTECTED]
    roots = sorted(p for p in protected if not any(o != p and is_within(p, o) for o in protected))
    paths: list[str] = []
    for walk_root in roots:
        location = host_path(root, walk_root)
        if not (location.exists() or location.is_symlink()):
            continue
        if walk_root != "/":
            paths.append(walk_root)
        if location.is_dir() and not location.is_symlink():
            paths += [path for path, _ in walk(root, walk_root)]
    authenticated = [p for p in paths if region_for(p, regions).protection is Protection.AUTHENTICATED]
    rows = describe(root, authenticated)
    digests = {str(row[0]): bytes.fromhex(str(row[4])) for row in rows if row[1] == "file"}
    return measurement(binary, rows, heap, stack), digests
