"""A FIFO where fspf expects a file: refused by name, never waited on.

Each case runs in a child process with a generous deadline: before the fix the open blocked forever
waiting for a writer, and a regression must fail this test, not hang the suite. The deadline is a safety
net, not a measure: a refusal comes at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import FileAnchor
from tests.support.fspf_trees import Counter, ProtectedTree

SAFETY_NET = 120


def child(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=SAFETY_NET, check=False
    )


def fifo_in_place_of(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def verify(tree: ProtectedTree) -> subprocess.CompletedProcess[str]:
    return child(
        "from pathlib import Path\n"
        "from pulumi_sconify.engine.fspf import IntegrityError, verify_tree\n"
        "try:\n"
        f"    verify_tree(Path({str(tree.out)!r}), bytes.fromhex({tree.key.hex()!r}), "
        f"bytes.fromhex({tree.tag.hex()!r}))\n"
        "except IntegrityError as error:\n"
        "    print(error)\n"
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("fspf/fs.fspf", "Verification of /fspf/fs.fspf failed: a FIFO, not a regular file"),
        ("usr/bin/helper", "/usr/bin/helper failed: expected a file"),
        ("blob:/code/lib/big.bin", "/fspf/data/"),
    ],
)
def test_a_fifo_in_a_protected_tree_is_refused_by_name(tree: ProtectedTree, where: str, reason: str) -> None:
    path = tree.blob_of(where.removeprefix("blob:")) if where.startswith("blob:") else tree.out / where
    fifo_in_place_of(path)
    result = verify(tree)
    assert result.returncode == 0, result.stderr
    assert reason in result.stdout


def test_a_fifo_in_place_of_a_volumes_files_is_refused(tmp_path: Path) -> None:
    anchor_file = tmp_path / "anchor.json"
    counter = Counter(tmp_path, anchor=FileAnchor(anchor_file))
    counter.run()
    counter.run()
    victims = sorted(path for path in counter.storage.rglob("*") if path.is_file())
    assert len(victims) == 2  # the data blob and the committed state
    for index, victim in enumerate(victims):
        snapshot = counter.snapshot(f"before-{index}")
        fifo_in_place_of(victim)
        workdir = tmp_path / f"work-{index}"
        workdir.mkdir()
        result = child(
            "from pathlib import Path\n"
            "from pulumi_sconify.engine.fspf import FileAnchor, FspfError, Volume\n"
            "try:\n"
            f"    Volume.open(Path({str(counter.storage)!r}), Path({str(workdir)!r}), name={counter.name!r}, "
            f"key=bytes.fromhex({counter.key.hex()!r}), anchor=FileAnchor(Path({str(anchor_file)!r})))\n"
            "    print('opened')\n"
            "except FspfError as error:\n"
            "    print('refused:', error)\n"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("refused:"), (victim.name, result.stdout)
        counter.restore(snapshot)
