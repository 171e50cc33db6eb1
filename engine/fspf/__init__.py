"""File-system protection (FSPF): protected image regions and encrypted, rollback-protected volumes.

- :func:`protect_tree`, :func:`verify_tree`, :func:`decrypt_tree` — regions of an image tree, sealed
  by one key into ``/fspf/fs.fspf``, whose tag names the exact protected state;
- :class:`Volume` — a directory of ciphertext whose freshness a :class:`FreshnessAnchor` holds;
- errors: :class:`IntegrityError` (an attack, or damage), :class:`RollbackError` (a stale or deleted
  volume), :class:`UsageError` (a wrong request).

The format is specified in ``docs/fspf.md``.
"""

from .anchor import AnchorState, FileAnchor, FreshnessAnchor, InMemoryAnchor
from .chunks import DEFAULT_CHUNK_SIZE
from .errors import AnchorConflictError, FspfError, IntegrityError, RollbackError, UsageError
from .keys import generate_key, load_or_create_key_file, parse_key, parse_tag, read_key_file
from .metadata import Entry, Manifest, Protection, Region
from .tree import Protected, decrypt_tree, protect_tree, verify_tree
from .volume import Volume

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AnchorConflictError",
    "AnchorState",
    "Entry",
    "FileAnchor",
    "FreshnessAnchor",
    "FspfError",
    "InMemoryAnchor",
    "IntegrityError",
    "Manifest",
    "Protected",
    "Protection",
    "Region",
    "RollbackError",
    "UsageError",
    "Volume",
    "decrypt_tree",
    "generate_key",
    "load_or_create_key_file",
    "parse_key",
    "parse_tag",
    "protect_tree",
    "read_key_file",
    "verify_tree",
]
