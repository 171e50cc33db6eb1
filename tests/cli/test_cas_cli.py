"""`sconify identity` and `sconify session create|update|read` against a running CAS; `sconify cas image`."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.server.options import serve_command
from pulumi_sconify.engine.cli import build_parser
from pulumi_sconify.engine.cli.cas import default_serve_command
from tests.support.cas import RunningCas
from tests.support.images.counter import TAG, counter_layout
from tests.support.images.layers import Entry, write_layout
from tests.support.policies import counter, namespace, text
from tests.support.processes import sconify


def test_identity_and_session_commands(cas: RunningCas, tmp_path: Path) -> None:
    created = sconify("identity", "create", "--out", str(tmp_path / "me"))
    assert created.returncode == 0, created.stderr
    key_hash = created.stdout.splitlines()[-1].removeprefix("key hash: ")
    assert len(key_hash) == 64
    assert stat.S_IMODE((tmp_path / "me" / "client-key.pem").stat().st_mode) == 0o600
    again = sconify("identity", "create", "--out", str(tmp_path / "me"))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr

    connection = [
        "--cas-client",
        cas.address,
        "--cas-ca-certificate",
        str(cas.ca),
        "--identity",
        str(tmp_path / "me"),
    ]
    (tmp_path / "ns.yaml").write_text(namespace())
    (tmp_path / "session.yaml").write_text(text(counter()))
    assert sconify("session", "create", str(tmp_path / "ns.yaml"), *connection).returncode == 0
    first = sconify("session", "create", str(tmp_path / "session.yaml"), *connection)
    assert first.returncode == 0, first.stderr
    first_hash = first.stdout.strip()

    duplicate = sconify("session", "create", str(tmp_path / "session.yaml"), *connection)
    assert duplicate.returncode == 1
    assert "409" in duplicate.stderr

    (tmp_path / "session.yaml").write_text(text(counter()).replace("pwd: /\n", "pwd: /code\n"))
    updated = sconify("session", "update", str(tmp_path / "session.yaml"), *connection)
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.strip() != first_hash

    read = sconify("session", "read", "ns-1/python-session", *connection)
    assert read.returncode == 0
    assert f"predecessor: {first_hash}" in read.stdout
    assert read.stderr.strip() == f"hash: {updated.stdout.strip()}"

    older = sconify("session", "read", "ns-1/python-session", "--hash", first_hash, *connection)
    assert "predecessor" not in older.stdout


def test_invalid_policy_problems_are_listed(cas: RunningCas, tmp_path: Path) -> None:
    sconify("identity", "create", "--out", str(tmp_path / "me"))
    # The flags of 0.2 (`--cas` named the client API here, the attestation API in `sconify image`) still work,
    # with a warning that names the new flag.
    connection = ["--cas", cas.address, "--cas-ca", str(cas.ca), "--identity", str(tmp_path / "me")]
    (tmp_path / "bad.yaml").write_text("name: x\nversion: 0.3\n")
    result = sconify("session", "create", str(tmp_path / "bad.yaml"), *connection)
    assert result.returncode == 1
    assert "version: must be a quoted string" in result.stderr
    assert "sconify: warning: --cas is deprecated; use --cas-client" in result.stderr
    (tmp_path / "ns.yaml").write_text(namespace())
    missing = sconify("session", "create", str(tmp_path / "ns.yaml"), *connection[2:])
    assert missing.returncode == 2 and "--cas-client is required" in missing.stderr


def test_cas_image_builds_into_a_layout_and_refuses_a_base_without_python(tmp_path: Path) -> None:
    built = sconify(
        "cas", "image", "--from", f"oci:{counter_layout()}:{TAG}", "--to", f"oci:{tmp_path / 'cas'}:1"
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip().startswith(f"oci:{tmp_path / 'cas'}@sha256:")
    assert "Python 3.11 (glibc, x86_64) at /usr/bin/python3" in built.stderr

    # A base image without Python is refused by name, with nothing written.
    write_layout(tmp_path / "no-python", "1", [[Entry("etc/hostname", b"x\n")]])
    refused = sconify(
        "cas", "image", "--from", f"oci:{tmp_path / 'no-python'}:1", "--to", f"oci:{tmp_path / 'out'}:1"
    )
    assert refused.returncode == 1  # an image that is not acceptable, as for `sconify image`
    assert "Traceback" not in refused.stderr
    assert "has no /usr/local/bin/python3 or /usr/bin/python3" in refused.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "url",
    ["postgresql://cas:hunter2@db:5432/cas", "postgresql://cas@db:5432/cas?password=hunter2"],
)
@pytest.mark.parametrize("given_as", ["option", "environment"])
def test_a_store_url_with_a_password_is_refused_without_echoing_it(
    tmp_path: Path, url: str, given_as: str
) -> None:
    """A command line is visible to every process (and a URL ends up in logs): the password goes in
    PGPASSWORD or PGPASSFILE. The refusal says so and does not repeat the password, and nothing is made."""
    options = ["--store", url] if given_as == "option" else []
    environment = {"SCONIFY_CAS_STORE": url} if given_as == "environment" else None
    result = sconify("cas", "serve", "--data-dir", str(tmp_path / "cas"), *options, env=environment)
    assert result.returncode != 0
    assert "holds a password: give it in PGPASSWORD or a password file (PGPASSFILE)" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert not (tmp_path / "cas").exists()


def test_a_cas_that_cannot_listen_exits_at_once_saying_where(tmp_path: Path) -> None:
    """A port another process holds: the CAS says which address, for which API, and exits — it does not
    linger with its worker threads, serving nothing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sconify(
            "cas", "serve", "--data-dir", str(tmp_path / "cas"),
            "--listen", "127.0.0.1:0", "--attest-listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"sconify: cannot listen on 127.0.0.1:{port} (attestation API): Address already in use"
    )


def test_serve_command_is_written_with_the_parsers_own_flags() -> None:
    """What runs a CAS elsewhere (the CAS image, the component) writes `cas serve` through the parser:
    the command parses back to exactly the options given, and a name the parser lacks is refused."""
    command = serve_command(
        data_dir="/state",
        listen="0.0.0.0:8081",
        host=["a", "b"],
        kubernetes_issuer="https://issuer",
        store=None,
        grant_identity=["ab" * 32],
    )
    assert command[:2] == ["cas", "serve"] and "--store" not in command
    parsed = build_parser().parse_args(command)
    assert (parsed.data_dir, parsed.listen, parsed.host) == (Path("/state"), ("0.0.0.0", 8081), ["a", "b"])
    assert (parsed.kubernetes_issuer, parsed.grant_identity) == ("https://issuer", ["ab" * 32])
    assert build_parser().parse_args(default_serve_command()).attest_listen == ("0.0.0.0", 18765)
    with pytest.raises(ValueError, match="cas serve has no option datadir"):
        serve_command(datadir="/state")
