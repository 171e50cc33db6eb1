"""`sconify fspf` driven as a user drives it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.support.fspf_trees import build_source
from tests.support.processes import sconify


def protect(tmp_path: Path, out: str = "out", *extra: str) -> tuple[Path, str]:
    result = sconify(
        "fspf",
        "protect",
        str(tmp_path / "src"),
        str(tmp_path / out),
        "--encrypted",
        "/code",
        "--authenticated",
        "/usr",
        "--not-protected",
        "/usr/tmp",
        "--key-file",
        str(tmp_path / "key"),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / out, result.stdout


def test_protect_verify_decrypt_show(tmp_path: Path) -> None:
    build_source(tmp_path / "src")
    out, stdout = protect(tmp_path)
    lines = stdout.splitlines()
    assert lines[0] == f"created key file {tmp_path / 'key'} (mode 600)"
    assert lines[-1].startswith("tag: ")
    tag = lines[-1].removeprefix("tag: ")
    assert len(tag) == 32
    key_file = tmp_path / "key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_hex = key_file.read_text().strip()

    verified = sconify("fspf", "verify", str(out), "--key-file", str(key_file), "--tag", tag)
    assert verified.returncode == 0, verified.stderr

    decrypted = sconify(
        "fspf", "decrypt", str(out), str(tmp_path / "plain"), "--key-file", str(key_file), "--tag", tag
    )
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "plain/code/app.py").read_bytes() == (tmp_path / "src/code/app.py").read_bytes()

    shown = sconify("fspf", "show", str(out), "--key-file", str(key_file))
    assert shown.returncode == 0
    assert "region /code: encrypted" in shown.stdout
    assert "authenticated file     0o755" in shown.stdout
    for output in (stdout, verified.stdout, decrypted.stdout, shown.stdout, shown.stderr):
        assert key_hex not in output


def test_key_file_is_reused(tmp_path: Path) -> None:
    build_source(tmp_path / "src")
    protect(tmp_path, "first")
    key = (tmp_path / "key").read_text()
    out, stdout = protect(tmp_path, "second", "--json")
    summary = json.loads(stdout)
    assert summary["key_created"] is False
    assert (tmp_path / "key").read_text() == key
    assert summary["files"] == {"authenticated": 2, "encrypted": 5}
    verified = sconify(
        "fspf", "verify", str(out), "--key-file", str(tmp_path / "key"), "--tag", summary["tag"]
    )
    assert verified.returncode == 0


def test_tampering_gives_one_fatal_line(tmp_path: Path) -> None:
    build_source(tmp_path / "src")
    out, stdout = protect(tmp_path)
    tag = stdout.splitlines()[-1].removeprefix("tag: ")
    (out / "usr/bin/helper").write_text("#!/bin/sh\necho pwned\n")
    result = sconify("fspf", "verify", str(out), "--key-file", str(tmp_path / "key"), "--tag", tag)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "sconify: FATAL: Verification of file chunk 0 (bytes 0 to 21) of file /usr/bin/helper failed"
    ]


def test_show_without_key_reveals_only_the_header(tmp_path: Path) -> None:
    build_source(tmp_path / "src")
    out, stdout = protect(tmp_path)
    shown = sconify("fspf", "show", str(out), "--json")
    summary = json.loads(shown.stdout)
    assert summary["tag"] == stdout.splitlines()[-1].removeprefix("tag: ")
    assert "entries" not in summary


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    build_source(tmp_path / "src")
    out, _ = protect(tmp_path)
    bad_tag = sconify("fspf", "verify", str(out), "--key-file", str(tmp_path / "key"), "--tag", "xyz")
    assert bad_tag.returncode == 2
    assert "--tag: expected 32 hex characters" in bad_tag.stderr
    bad_region = sconify(
        "fspf",
        "protect",
        str(tmp_path / "src"),
        str(tmp_path / "o2"),
        "--encrypted",
        "code",
        "--key-file",
        str(tmp_path / "key"),
    )
    assert bad_region.returncode == 2
    assert "normalised absolute path" in bad_region.stderr
    assert not (tmp_path / "o2").exists()
