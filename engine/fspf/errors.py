"""Errors of file-system protection.

Messages name the file, chunk, volume or check that failed — never a key, a tag that is secret, or
file content. :class:`IntegrityError` is what an attack looks like; the runtime prints it as its one
FATAL line.
"""

from __future__ import annotations

from ..errors import EXIT_INVALID, EXIT_USAGE, SconifyError


class FspfError(SconifyError):
    """Anything file-system protection refuses to do."""

    exit_code = EXIT_USAGE


class UsageError(FspfError):
    """The request itself is wrong (bad region paths, a missing source tree, a malformed key)."""


class IntegrityError(FspfError):
    """Protected data does not verify: it was changed, moved, truncated, deleted or rolled back."""

    exit_code = EXIT_INVALID


class RollbackError(IntegrityError):
    """A volume is not in the state its freshness anchor last committed (older copy, deletion)."""


class AnchorConflictError(FspfError):
    """A compare-and-swap on a freshness anchor found another state than the one expected."""


def chunk_failure(path: str, index: int, chunk_size: int, size: int) -> IntegrityError:
    """The error for one chunk, worded like SCONE's so that operators recognise it."""
    first = index * chunk_size
    last = max(first, min(size, first + chunk_size) - 1)
    return IntegrityError(
        f"Verification of file chunk {index} (bytes {first} to {last}) of file {path} failed"
    )
