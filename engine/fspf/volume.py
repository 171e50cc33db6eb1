"""Encrypted, rollback-protected volumes.

A volume's storage (the directory the adversary controls) holds ciphertext only::

    state.<generation>.<tag>.fspf   the sealed metadata of a committed state (one, except mid-commit)
    data/<random id>            the encrypted content of one file version

Its freshness lives in a :class:`~.anchor.FreshnessAnchor` outside the storage: the latest committed
``(generation, tag)``. Opening a volume accepts exactly that state and nothing else, so an older copy
of the volume, an older copy of one file, a deleted file or a deleted volume are all refused.

Commit protocol (each step is reported to the optional ``observer``, which the crash tests use to
kill the process at every step)::

    1. write each changed file's ciphertext under a fresh name, fsync     "blob-written" (each)
    2. fsync data/                                                        "blobs-synced"
    3. write state.<g+1>.<tag>.fspf.tmp, fsync                            "state-written"
    4. rename it to state.<g+1>.<tag>.fspf, fsync the storage directory   "state-renamed"
    5. anchor: compare-and-swap (g, tag_g) -> (g+1, tag_g+1)              "anchor-swapped"
    6. remove every other state file and temporary files, fsync           "old-state-removed"
    7. remove ciphertext no longer referenced, fsync                      "garbage-removed"

Before step 5 completes the anchor names the old state, which is untouched on disk; after it, the
new state, which is durable on disk since step 4. Opening never deletes anything, and a state file
the anchor does not name is ignored (and removed by the next commit). So a crash at any point leaves
the old or the new committed state readable: never a false rollback alarm, never a lost commit.

One writer at a time: a volume is opened by one runtime (ReadWriteOnce, or one replica). A second
writer's commit fails at step 5 with :class:`~.errors.AnchorConflictError` and removes only what it wrote
(state file names carry their tag, so no writer ever replaces another's file). If the swap fails in
any other way its outcome is unknown: the next commit first asks the anchor whether it happened and
continues from there (and the next open follows whatever the anchor says).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from . import chunks
from .anchor import AnchorState, FreshnessAnchor
from .errors import AnchorConflictError, IntegrityError, RollbackError, UsageError
from .keys import KEY_BYTES, generate_key
from .metadata import (
    MAX_METADATA_BYTES,
    Entry,
    Manifest,
    Protection,
    seal,
    stored_tag,
    unseal,
    volume_context,
)
from .paths import fsync_directory, host_path, open_regular, walk

Observer = Callable[[str], None]

DATA = "data"
_STATE_PREFIX = "state."
_STATE_SUFFIX = ".fspf"
_TEMPORARY_SUFFIX = ".tmp"


def state_file_name(state: AnchorState) -> str:
    """``state.<generation>.<tag>.fspf``: unique per sealing, so no write can replace another state."""
    return f"{_STATE_PREFIX}{state.generation}.{state.tag.hex()}{_STATE_SUFFIX}"


def _ignore(_: str) -> None:
    return None


class Volume:
    """A volume opened into a plaintext working directory. Use :meth:`open`, then :meth:`commit`."""

    def __init__(
        self,
        storage: Path,
        workdir: Path,
        name: str,
        key: bytes,
        anchor: FreshnessAnchor,
        mount_path: str,
        chunk_size: int,
        committed: AnchorState | None,
        manifest: Manifest | None,
    ) -> None:
        self.storage = storage
        self.workdir = workdir
        self.name = name
        self.mount_path = mount_path
        self._key = key
        self._anchor = anchor
        self._chunk_size = chunk_size
        self._committed = committed
        self._manifest = manifest
        self._unconfirmed: tuple[AnchorState, Manifest] | None = None
        """A commit whose swap may or may not have happened (its answer was lost)."""

    def __repr__(self) -> str:  # the default would show the key
        return f"Volume(name={self.name!r}, storage={self.storage!s}, generation={self.generation})"

    @property
    def generation(self) -> int:
        """The committed generation this volume is at; 0 before its first commit."""
        return self._committed.generation if self._committed is not None else 0

    @property
    def committed(self) -> AnchorState | None:
        return self._committed

    # -- open -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        storage: Path,
        workdir: Path,
        *,
        name: str,
        key: bytes,
        anchor: FreshnessAnchor,
        mount_path: str = "/",
        chunk_size: int = chunks.DEFAULT_CHUNK_SIZE,
    ) -> Volume:
        """Verify the committed state of the volume in ``storage`` and decrypt it into ``workdir``.

        ``workdir`` must be an empty directory. ``mount_path`` is only used to name files in
        errors as the program sees them (``/V1/num``). Reads ``storage`` only; changes nothing there.
        Raises :class:`RollbackError` if the storage does not hold the state the anchor committed.
        """
        if len(key) != KEY_BYTES:
            raise UsageError(f"volume {name}: key must be {KEY_BYTES} bytes")
        if not workdir.is_dir() or any(workdir.iterdir()):
            raise UsageError(f"volume {name}: working directory {workdir} must be an empty directory")
        committed = anchor.current(name)
        volume = cls(storage, workdir, name, key, anchor, mount_path, chunk_size, committed, None)
        if committed is not None:
            volume._manifest = volume._read_committed(committed)
            volume._decrypt_all()
        return volume

    def _read_committed(self, committed: AnchorState) -> Manifest:
        location = self.storage / state_file_name(committed)
        try:
            with os.fdopen(open_regular(location), "rb") as stream:
                data = stream.read(MAX_METADATA_BYTES + 1)
        except OSError:
            raise RollbackError(
                f"volume {self.name}: committed state {committed.generation} is missing "
                "(the volume was deleted or replaced by an older copy)"
            ) from None
        shown = f"volume {self.name} state {committed.generation}"
        if not hmac.compare_digest(stored_tag(data, shown), committed.tag):
            raise RollbackError(
                f"volume {self.name}: state {committed.generation} on disk is not the committed one "
                "(rolled back or replaced)"
            )
        manifest = unseal(data, self._key, volume_context(self.name, committed.generation), shown)
        if (
            manifest.kind != "volume"
            or manifest.volume != self.name
            or manifest.generation != committed.generation
        ):
            raise IntegrityError(
                f"Verification of {shown} failed: it belongs to another volume or generation"
            )
        return manifest

    def _shown(self, path: str) -> str:
        return path if self.mount_path == "/" else self.mount_path.rstrip("/") + path

    def _decrypt_all(self) -> None:
        assert self._manifest is not None
        for entry in self._manifest.entries:  # walk order: directories before their contents
            target = host_path(self.workdir, entry.path)
            if entry.type == "dir":
                target.mkdir(mode=0o700)
            elif entry.type == "symlink":
                assert entry.target is not None
                target.symlink_to(entry.target)
            else:
                self._decrypt_file(entry, target)
        for entry in reversed(self._manifest.entries):
            if entry.type == "dir":
                host_path(self.workdir, entry.path).chmod(entry.mode)

    def _decrypt_file(self, entry: Entry, target: Path) -> None:
        assert entry.blob is not None and self._manifest is not None
        try:
            source = os.fdopen(open_regular(self.storage / DATA / entry.blob), "rb")
        except OSError:
            raise IntegrityError(
                f"Verification of file {self._shown(entry.path)} failed: its encrypted content is missing"
            ) from None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with source, os.fdopen(fd, "wb") as sink:
            chunks.decrypt_file(
                entry.key,
                entry.path,
                source,
                sink,
                entry.size,
                self._manifest.chunk_size,
                shown_as=self._shown(entry.path),
            )
        target.chmod(entry.mode)

    # -- commit -----------------------------------------------------------------------------------

    def commit(self, observer: Observer | None = None) -> AnchorState | None:
        """Make the working directory the volume's new committed state (see the module's protocol).

        Returns the new committed state, or the current one if nothing changed.
        """
        notify = observer or _ignore
        if self._unconfirmed is not None:
            self._settle(notify)
        old_entries = self._manifest.entry_map() if self._manifest is not None else {}
        data_dir = self.storage / DATA
        data_dir.mkdir(parents=True, exist_ok=True)
        new_blobs: list[Path] = []
        entries: list[Entry] = []
        for path, info in walk(self.workdir):
            entries.append(self._snapshot(path, info, old_entries.get(path), data_dir, new_blobs, notify))
        if self._committed is not None and tuple(entries) == tuple(old_entries.values()):
            return self._committed
        fsync_directory(data_dir)
        notify("blobs-synced")

        generation = self.generation + 1
        manifest = Manifest(
            kind="volume",
            chunk_size=self._chunk_size,
            entries=tuple(entries),
            volume=self.name,
            generation=generation,
        )
        sealed, tag = seal(manifest, self._key, volume_context(self.name, generation))
        new_state = AnchorState(generation, tag)
        final = self.storage / state_file_name(new_state)
        temporary = final.with_name(final.name + _TEMPORARY_SUFFIX)
        with temporary.open("wb") as stream:
            stream.write(sealed)
            stream.flush()
            os.fsync(stream.fileno())
        notify("state-written")
        temporary.replace(final)
        fsync_directory(self.storage)
        notify("state-renamed")

        try:
            self._anchor.compare_and_swap(self.name, self._committed, new_state)
        except AnchorConflictError:
            # Certainly not committed: undo, so the conflict changes nothing.
            final.unlink(missing_ok=True)
            for blob in new_blobs:
                blob.unlink(missing_ok=True)
            raise
        except BaseException:
            # The swap may or may not have happened: keep both states on disk; the next commit (or
            # the next open) follows whatever the anchor says.
            self._unconfirmed = (new_state, manifest)
            raise
        notify("anchor-swapped")
        self._committed, self._manifest = new_state, manifest
        self._collect_garbage(notify)
        return new_state

    def _settle(self, notify: Observer) -> None:
        """Learn from the anchor whether the commit whose answer was lost happened."""
        assert self._unconfirmed is not None
        state, manifest = self._unconfirmed
        current = self._anchor.current(self.name)
        if current == state:
            self._committed, self._manifest = state, manifest
            self._collect_garbage(notify)
        elif current != self._committed:
            raise AnchorConflictError(f"volume {self.name}: another state was committed meanwhile")
        self._unconfirmed = None

    def _snapshot(
        self,
        path: str,
        info: os.stat_result,
        old: Entry | None,
        data_dir: Path,
        new_blobs: list[Path],
        notify: Observer,
    ) -> Entry:
        mode = stat.S_IMODE(info.st_mode)
        location = host_path(self.workdir, path)
        if stat.S_ISDIR(info.st_mode):
            return Entry(path, "dir", Protection.ENCRYPTED, mode=mode)
        if stat.S_ISLNK(info.st_mode):
            return Entry(path, "symlink", Protection.ENCRYPTED, mode=0o777, target=str(location.readlink()))
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"volume {self.name}: {self._shown(path)} is not a file, directory or link")
        if old is not None and old.type == "file" and old.size == info.st_size and old.key and old.digest:
            with os.fdopen(open_regular(location), "rb") as source:
                unchanged = chunks.chunk_tags_digest(old.key, path, source, info.st_size, self._chunk_size)
            if hmac.compare_digest(unchanged, old.digest):
                return Entry(
                    path,
                    "file",
                    Protection.ENCRYPTED,
                    mode=mode,
                    size=old.size,
                    key=old.key,
                    blob=old.blob,
                    digest=old.digest,
                )
        file_key = generate_key()
        blob = secrets.token_hex(16)
        tags = hashlib.sha256()
        target = data_dir / blob
        new_blobs.append(target)
        with os.fdopen(open_regular(location), "rb") as source, target.open("xb") as sink:
            chunks.encrypt_file(file_key, path, source, sink, info.st_size, self._chunk_size, tags=tags)
            sink.flush()
            os.fsync(sink.fileno())
        notify("blob-written")
        return Entry(
            path,
            "file",
            Protection.ENCRYPTED,
            mode=mode,
            size=info.st_size,
            key=file_key,
            blob=blob,
            digest=tags.digest(),
        )

    def _collect_garbage(self, notify: Observer) -> None:
        """Remove every state file but the committed one, then every unreferenced ciphertext."""
        assert self._committed is not None
        keep = state_file_name(self._committed)
        for location in self.storage.iterdir():
            if location.name.startswith(_STATE_PREFIX) and location.name != keep:
                location.unlink(missing_ok=True)
        fsync_directory(self.storage)
        notify("old-state-removed")
        assert self._manifest is not None
        referenced = {entry.blob for entry in self._manifest.entries if entry.blob is not None}
        data_dir = self.storage / DATA
        for location in data_dir.iterdir():
            if location.name not in referenced:
                location.unlink(missing_ok=True)
        fsync_directory(data_dir)
        notify("garbage-removed")
