"""A CAS service in process with hardware trust, and a runtime that attests to it with forged evidence."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pulumi_sconify.engine.cas.intake.hardware import HardwareTrust
from pulumi_sconify.engine.cas.intake.kubernetes import JwksSource, KubernetesIssuer
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.policy import Attestation, AttestationMode, Platforms, Security
from pulumi_sconify.engine.runtime.protocol import evidence_binding
from tests.support.issuer import ISSUER
from tests.support.policies import MEASUREMENT, counter, namespace, text
from tests.support.postgres import store_location

OWNER = "0a" * 32


CONFIG_ID = "ns-1/python-session/python-service"


def hardware_session(platforms: Platforms, *, tolerate: tuple[str, ...] = (), **service_changes: Any) -> str:
    session = counter(insecure=False)
    service = dataclasses.replace(session.services[0], **service_changes)
    session = dataclasses.replace(
        session,
        services=(service,),
        security=Security(Attestation(mode=AttestationMode.HARDWARE, tolerate=tolerate, platforms=platforms)),
    )
    return text(session)


class Runtime:
    """What a runtime does: ask for a nonce, make its key, bind its evidence to both."""

    def __init__(self, cas: CasService) -> None:
        self.cas = cas
        self.key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def nonce(self) -> tuple[str, bytes]:
        offer = self.cas.nonce(CONFIG_ID)
        return offer["nonce"], evidence_binding(offer["nonce"], self.key)

    def attest(self, nonce: str, evidence: dict[str, Any]) -> dict[str, Any]:
        return self.cas.attest(CONFIG_ID, MEASUREMENT, nonce, self.key, evidence)


def make_cas(tmp_path: Path, trust: HardwareTrust, session: str) -> CasService:
    tmp_path.mkdir(parents=True, exist_ok=True)
    issuer = KubernetesIssuer(ISSUER, JwksSource(str(tmp_path / "absent.json")), "sconify-cas:test")
    service = CasService(Store(store_location(tmp_path), b"\x07" * 32), kubernetes=issuer, hardware=trust)
    service.post_session(namespace().encode(), OWNER)
    service.post_session(session.encode(), OWNER)
    return service
