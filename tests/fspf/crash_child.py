"""Child process for the crash tests: one counter run against a volume, optionally dying at a step.

Usage: python crash_child.py STORAGE WORKDIR ANCHOR_FILE KEY_HEX [CRASH_AT [OCCURRENCE]]
       python crash_child.py --loop STORAGE WORKROOT ANCHOR_FILE KEY_HEX RUNS

Dies with ``os._exit`` — no cleanup, no flush, as abrupt as ``kill -9`` at that point.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pulumi_sconify.engine.fspf import FileAnchor, Volume

NAME = "ns/counter/V1"


def run_once(
    storage: Path, workdir: Path, anchor: Path, key: bytes, crash_at: str | None, occurrence: int
) -> int:
    workdir.mkdir()
    volume = Volume.open(storage, workdir, name=NAME, key=key, anchor=FileAnchor(anchor), mount_path="/V1")
    number = workdir / "num"
    value = int(number.read_text()) if number.exists() else 0
    number.write_text(f"{value + 1}\n")
    (workdir / "history").write_text("".join(f"{n}\n" for n in range(value + 1)))
    if not (workdir / "unchanged").exists():
        (workdir / "unchanged").write_bytes(b"u" * 100_000)
    seen = 0

    def observer(step: str) -> None:
        nonlocal seen
        if step == crash_at:
            seen += 1
            if seen == occurrence:
                os._exit(137)

    volume.commit(observer)
    return value


def main() -> None:
    if sys.argv[1] == "--loop":
        storage, root, anchor, key_hex, runs = sys.argv[2:7]
        for run in range(int(runs)):
            value = run_once(
                Path(storage),
                Path(root) / f"w{os.getpid()}-{run}",
                Path(anchor),
                bytes.fromhex(key_hex),
                None,
                0,
            )
            print(value + 1, flush=True)  # committed: the anchor holds it
        return
    storage, workdir, anchor, key_hex = sys.argv[1:5]
    crash_at = sys.argv[5] if len(sys.argv) > 5 else None
    occurrence = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    run_once(Path(storage), Path(workdir), Path(anchor), bytes.fromhex(key_hex), crash_at, occurrence)


if __name__ == "__main__":
    main()
