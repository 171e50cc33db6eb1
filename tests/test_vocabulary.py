"""The CAS address rule the runtime, the clients and the CLI share."""

from __future__ import annotations

import pytest

from pulumi_sconify.engine.cas.clients.client import base_url
from pulumi_sconify.engine.vocabulary import ATTESTATION_PORT, CLIENT_PORT, cas_host_and_port


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("cas.sconify.svc", ("cas.sconify.svc", ATTESTATION_PORT)),
        ("cas.sconify.svc:9000", ("cas.sconify.svc", 9000)),
        ("10.0.0.7", ("10.0.0.7", ATTESTATION_PORT)),
        ("fd00::7", ("fd00::7", ATTESTATION_PORT)),  # its colons are the address's, not a port's
        ("[fd00::7]", ("fd00::7", ATTESTATION_PORT)),
        ("[fd00::7]:9000", ("fd00::7", 9000)),
    ],
)
def test_an_address_without_a_port_takes_the_apis(address: str, expected: tuple[str, int]) -> None:
    assert cas_host_and_port(address, ATTESTATION_PORT) == expected


def test_the_clients_reach_the_same_host_and_port() -> None:
    assert base_url("cas.sconify.svc", CLIENT_PORT) == f"https://cas.sconify.svc:{CLIENT_PORT}"
    assert base_url("cas.sconify.svc:9000", CLIENT_PORT) == "https://cas.sconify.svc:9000"
    # An IPv6 host is bracketed in a URL, or its last group would read as the port.
    assert base_url("fd00::7", CLIENT_PORT) == f"https://[fd00::7]:{CLIENT_PORT}"
    assert base_url("[fd00::7]:9000", CLIENT_PORT) == "https://[fd00::7]:9000"


@pytest.mark.parametrize("address", ["[fd00::7", "[fd00::7]9000"])
def test_a_malformed_bracketed_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"expected \[IPv6\] or \[IPv6\]:PORT"):
        cas_host_and_port(address, CLIENT_PORT)
