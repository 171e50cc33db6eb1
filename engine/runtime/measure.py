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

where ``files`` lists every entry of the image's authenticated regions — the whole root but for what is left
unprotected: the binary, its libraries, its shell and helpers, ``/etc``, and the runtime itself — with one
exception that keeps the measurement the same whoever the runtime runs as: what not everyone may read counts
by its metadata only. A file whose mode does not let others read it is measured without its content (the
hash is empty), and what lies below a directory others may not both list and enter is not listed at all.
A runtime that runs as another user than the file's owner cannot read such a file, and neither can the
program it starts as that user; verification after attestation checks every entry the runtime can reach
against the sealed metadata, this content included when it can read it.

Content is hashed in the clear, so the measurement does not depend on the FSPF key: the same native image
and options always measure the same. The runtime recomputes it at start, over the same regions, before it
asks the CAS for anything; the CAS releases the configuration only for a measurement the policy lists.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterable
from pathlib import Path

from ..fspf.metadata import Entry, Protection, Region
from ..fspf.observation import Observation, observe
from ..layout import MEASUREMENT_PLAN

DOMAIN = b"sconify-measurement-v1\n"


OTHERS_READ = 0o004
OTHERS_LIST_AND_ENTER = 0o005


def _closed(directories: set[str], path: str) -> bool:
    """``path`` lies below one of ``directories`` (those others may not list and enter)."""
    parent = path.rsplit("/", 1)[0] or "/"
    while parent != "/":
        if parent in directories:
            return True
        parent = parent.rsplit("/", 1)[0] or "/"
    return False


def _rows(items: Iterable[tuple[str, str, int, int, str]]) -> list[list[object]]:
    """Rows from ``(path, type, mode, size, sha256 or target)`` sorted by path, under the rule of what not
    everyone may read (see the module)."""
    rows: list[list[object]] = []
    closed: set[str] = set()
    for path, kind, mode, size, detail in items:
        if _closed(closed, path):
            continue
        if kind == "dir" and mode & OTHERS_LIST_AND_ENTER != OTHERS_LIST_AND_ENTER:
            closed.add(path)
        hidden = kind == "file" and not mode & OTHERS_READ
        rows.append([path, kind, mode, size, "" if hidden else detail])
    return rows


def rows_from_observation(observation: Observation) -> list[list[object]]:
    """``[path, type, mode, size, sha256 or target]`` for each authenticated entry of ``observation``."""
    items: list[tuple[str, str, int, int, str]] = []
    for path in sorted(observation.stats):
        if observation.protections[path] is not Protection.AUTHENTICATED:
            continue
        info = observation.stats[path]
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            items.append((path, "symlink", 0o777, 0, observation.links[path]))
        elif stat.S_ISDIR(info.st_mode):
            items.append((path, "dir", mode, 0, ""))
        else:
            digest = observation.digests.get(path)
            items.append((path, "file", mode, info.st_size, digest.hex() if digest else ""))
    return _rows(items)


def rows_from_entries(entries: Iterable[Entry]) -> list[list[object]]:
    """The same rows as :func:`rows_from_observation`, from FSPF entries that carry their content digests."""
    items: list[tuple[str, str, int, int, str]] = []
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.type == "symlink":
            items.append((entry.path, "symlink", 0o777, 0, entry.target or ""))
        elif entry.type == "dir":
            items.append((entry.path, "dir", entry.mode, 0, ""))
        else:
            items.append((entry.path, "file", entry.mode, entry.size, entry.digest.hex()))
    return _rows(items)


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
    return measure_and_observe(root)[0]


def measure_and_observe(root: Path) -> tuple[str, Observation]:
    """The measurement, and what the walk for it saw of the protected regions (so that verification need
    not walk and read them again). Raises ``ValueError`` for a missing or malformed plan or a special file
    in an authenticated region, ``OSError`` for what cannot be read."""
    from ..fspf.tree import normalise_regions  # noqa: PLC0415 - the runtime's import set

    try:
        plan = json.loads((root / MEASUREMENT_PLAN.lstrip("/")).read_bytes())
        regions = normalise_regions(Region(path, Protection(kind)) for path, kind in plan["regions"])
        binary, heap, stack = str(plan["binary"]), str(plan["heap"]), str(plan["stack"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{MEASUREMENT_PLAN}: missing or malformed ({type(error).__name__})") from None
    observation = observe(root, regions)
    return measurement(binary, rows_from_observation(observation), heap, stack), observation
