"""The measurement (``mrenclave``) of a confidential image: a hash over what the runtime will run.

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

from ..fspf.metadata import Entry

DOMAIN = b"sconify-measurement-v1\n"


def _file_sha256(location: Path) -> str:
    digest = hashlib.sha256()
    with location.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
