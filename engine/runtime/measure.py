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
import stat
from collections.abc import Iterable
from pathlib import Path

from ..fspf.metadata import Entry, Protection, Region
from ..fspf.observation import Observation, observe
from ..layout import MEASUREMENT_PLAN

DOMAIN = b"sconify-measurement-v1\n"


def rows_from_observation(observation: Observation) -> list[list[object]]:
    """``[path, type, mode, size, sha256 or target]`` for each authenticated entry of ``observation``."""
    rows: list[list[object]] = []
    for path in sorted(observation.stats):
        if observation.protections[path] is not Protection.AUTHENTICATED:
            continue
        info = observation.stats[path]
        if stat.S_ISLNK(info.st_mode):
            rows.append([path, "symlink", 0o777, 0, observation.links[path]])
        elif stat.S_ISDIR(info.st_mode):
            rows.append([path, "dir", stat.S_IMODE(info.st_mode), 0, ""])
        else:
            rows.append(
                [path, "file", stat.S_IMODE(info.st_mode), info.st_size, observation.digests[path].hex()]
            )
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
