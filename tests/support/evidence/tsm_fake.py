"""A fake of the kernel's configfs-tsm report interface, mounted with FUSE where the runtime looks.

Laid out as Documentation/ABI/testing/configfs-tsm documents it: ``report/`` holds one directory per
entry a process makes with ``mkdir``; each has ``inblob`` (write: up to 64 bytes of report-data, which
increments ``generation``), ``outblob`` (read: the report or quote for the last inblob), ``auxblob``
(read: the SEV-SNP certificate table), ``provider`` (``sev_guest`` or ``tdx_guest``) and ``generation``.
Reports come from a callback — the tests' own AMD- or Intel-like hierarchy signs them — and are made at
the first read after a write, as the kernel asks the TEE then.
"""

from __future__ import annotations

import errno
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy as fuse

FILES = ("inblob", "outblob", "auxblob", "provider", "generation")


@dataclass
class Entry:
    inblob: bytes = b""
    generation: int = 0
    outblob: bytes | None = None


@dataclass
class TsmFake(fuse.Operations):  # type: ignore[misc]
    provider: str
    make_report: Callable[[bytes], bytes]
    auxblob: bytes = b""
    interfere: int = 0
    """How many outblob reads another "writer" spoils by writing inblob just before them."""
    entries: dict[str, Entry] = field(default_factory=dict)
    reports_made: int = 0
    use_ns = True  # mfusepy: times in nanoseconds (this fake reports none)

    def _split(self, path: str) -> tuple[str | None, str | None]:
        parts = [part for part in path.split("/") if part]
        if not parts:
            return None, None
        if parts[0] != "report" or len(parts) > 3:
            raise fuse.FuseOSError(errno.ENOENT)
        entry = parts[1] if len(parts) > 1 else None
        name = parts[2] if len(parts) > 2 else None
        if entry is not None and entry not in self.entries:
            raise fuse.FuseOSError(errno.ENOENT)
        if name is not None and name not in FILES:
            raise fuse.FuseOSError(errno.ENOENT)
        return entry, name

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        _, name = self._split(path)
        if name is None:
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        mode = 0o200 if name == "inblob" else 0o444
        return {"st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_size": 0}

    def readdir(self, path: str, fh: Any) -> list[str]:
        entry, _ = self._split(path)
        if path.strip("/") == "":
            return [".", "..", "report"]
        if entry is None:
            return [".", "..", *self.entries]
        return [".", "..", *FILES]

    def mkdir(self, path: str, mode: int) -> None:
        parts = [part for part in path.split("/") if part]
        if len(parts) != 2 or parts[0] != "report":
            raise fuse.FuseOSError(errno.EPERM)
        if parts[1] in self.entries:
            raise fuse.FuseOSError(errno.EEXIST)
        self.entries[parts[1]] = Entry()

    def rmdir(self, path: str) -> None:
        entry, name = self._split(path)
        if entry is None or name is not None:
            raise fuse.FuseOSError(errno.EPERM)
        del self.entries[entry]

    def open(self, path: str, flags: int) -> int:
        self._split(path)
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        self._split(path)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        entry, name = self._split(path)
        if name != "inblob" or entry is None:
            raise fuse.FuseOSError(errno.EACCES)
        if offset + len(data) > 64:
            raise fuse.FuseOSError(errno.EINVAL)
        self._write_inblob(entry, data)
        return len(data)

    def _write_inblob(self, entry: str, data: bytes) -> None:
        record = self.entries[entry]
        record.inblob, record.outblob = data, None
        record.generation += 1

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        entry, name = self._split(path)
        assert entry is not None and name is not None
        record = self.entries[entry]
        if name == "outblob":
            if self.interfere and offset == 0:
                self.interfere -= 1
                self._write_inblob(entry, b"\xee" * 64)  # someone else's request
            if record.outblob is None:
                record.outblob = self.make_report(record.inblob.ljust(64, b"\0"))
                self.reports_made += 1
            content = record.outblob
        elif name == "auxblob":
            content = self.auxblob
        elif name == "provider":
            content = f"{self.provider}\n".encode()
        elif name == "generation":
            content = f"{record.generation}\n".encode()
        else:
            raise fuse.FuseOSError(errno.EACCES)
        return content[offset : offset + size]


@contextmanager
def mounted(fake: TsmFake, mountpoint: Path) -> Iterator[Path]:
    """``fake`` mounted at ``mountpoint`` (the ``tsm`` directory), until the block ends."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    thread = threading.Thread(
        target=lambda: fuse.FUSE(
            fake,
            str(mountpoint),
            foreground=True,
            nothreads=True,
            direct_io=True,  # sizes are unknown until read, as in configfs
            attr_timeout=0,
            entry_timeout=0,
        ),
        daemon=True,
    )
    thread.start()
    while not mountpoint.is_mount():
        if not thread.is_alive():
            raise RuntimeError("the configfs-tsm fake could not be mounted (is /dev/fuse usable?)")
        time.sleep(0.01)  # polling for a state: mounted, or the thread ended
    try:
        yield mountpoint / "report"
    finally:
        subprocess.run(["fusermount", "-u", str(mountpoint)], check=True)
        thread.join()
