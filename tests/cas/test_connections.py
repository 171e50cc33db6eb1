"""Connections that would hold the CAS: a client trickling its request is cut off at the request deadline
however steadily it sends, and one address cannot open more than its share of connections."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cas import RunningCas

DEADLINE = 2.0
PER_ADDRESS = 8
SAFETY_NET = 120.0
"""Only so that a regression fails instead of hanging: the states waited for come far sooner."""


@pytest.fixture
def strict_cas(tmp_path: Path) -> Iterator[RunningCas]:
    running = RunningCas(
        tmp_path / "cas",
        options=["--request-deadline", str(DEADLINE), "--max-connections-per-address", str(PER_ADDRESS)],
    ).start()
    yield running
    running.stop()


def connect(cas: RunningCas) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cas.ca))
    host, _, port = cas.attest_address.rpartition(":")
    return context.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)


def closed_by_server(connection: ssl.SSLSocket) -> bool:
    try:
        connection.settimeout(0.2)
        return connection.recv(1) == b""
    except TimeoutError:
        return False
    except (ssl.SSLError, ConnectionResetError, OSError):
        return True


def test_a_trickling_client_is_cut_off_at_the_deadline(strict_cas: RunningCas) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: cas\r\nX-Slow: " + b"a" * 10_000
    connection = connect(strict_cas)
    sent = 0
    started = time.monotonic()
    # One byte per step, a step every tenth of a second: steady, so an idle timeout never fires.
    while time.monotonic() - started < SAFETY_NET:
        try:
            connection.sendall(request[sent : sent + 1])
        except (ssl.SSLError, OSError):
            break
        sent += 1
        if closed_by_server(connection):
            break
    assert time.monotonic() - started < SAFETY_NET, "the CAS kept a trickling client"
    assert sent < len(request)  # cut off before the request was complete
    with strict_cas.attestation() as attestation:
        assert attestation.request("GET", "/health") == {"status": "ok"}


def test_a_keep_alive_client_gets_a_deadline_per_request(strict_cas: RunningCas) -> None:
    connection = connect(strict_cas)
    for _ in range(3):  # prompt requests on one connection are all answered
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: cas\r\n\r\n")
        answer = b""
        while b'"ok"' not in answer:
            chunk = connection.recv(4096)
            assert chunk, "the connection closed"
            answer += chunk
    connection.close()


def test_one_address_holds_a_bounded_number_of_connections(strict_cas: RunningCas) -> None:
    held = [connect(strict_cas) for _ in range(PER_ADDRESS)]
    for connection in held:  # each is accepted: it answers
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: cas\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        extra = connect(strict_cas)  # the CAS closes it before the handshake completes
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: cas\r\n\r\n")
        if not extra.recv(4096):
            raise ConnectionResetError("closed by the CAS")
    for connection in held:
        connection.close()
    # Closed connections are counted out again: a new one is served.
    deadline = time.monotonic() + SAFETY_NET
    while time.monotonic() < deadline:
        try:
            with strict_cas.attestation() as attestation:
                assert attestation.request("GET", "/health") == {"status": "ok"}
            break
        except Exception:
            time.sleep(0.05)  # polling until the CAS has seen the closes
    else:
        pytest.fail("the CAS did not count closed connections out")
    assert any(line.get("event") == "connection_refused" for line in strict_cas.log_lines())


def test_the_harness_moves_to_free_ports_when_one_is_taken(tmp_path: Path) -> None:
    """What made a start fail under load: a port picked free was taken before the CAS bound it. The CAS
    exits saying so, and the harness starts it again on other ports."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cas = RunningCas(tmp_path / "cas", attest_port=port).start()
        try:
            assert cas.attest_port != port
            assert (
                cas.log_path is not None and f"cannot listen on 127.0.0.1:{port}" in cas.log_path.read_text()
            )
        finally:
            cas.stop()
