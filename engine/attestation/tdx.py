"""Intel TDX quotes (versions 4 and 5), verified with Intel's collateral by ``dcap-qvl``.

``dcap-qvl`` (Phala's DCAP quote verification library, Rust with Python bindings) checks the quote's
signature, the PCK certificate chain to Intel's root, the collateral's signatures and freshness, the
revocation lists and the TCB level. This module gives it the collateral from an operator's cache, turns
its errors into named checks, and applies the policy: MRTD, RTMRs, report data, debug, TCB status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import EvidenceRefusedError
from ..policy.model import TdxReference
from ..vocabulary import TDX
from .verdict import Checks, Verdict

PLATFORM = TDX
SUPPORTED_VERSIONS = frozenset({4, 5})
_TD_ATTRIBUTES_DEBUG = 1 << 0

TCB_STATUS_WEAKNESSES: Mapping[str, frozenset[str]] = {
    "UpToDate": frozenset(),
    "SWHardeningNeeded": frozenset({"software-hardening-needed"}),
    "ConfigurationNeeded": frozenset({"insecure-configuration"}),
    "ConfigurationAndSWHardeningNeeded": frozenset({"insecure-configuration", "software-hardening-needed"}),
    "OutOfDate": frozenset({"outdated-tcb"}),
    "OutOfDateConfigurationNeeded": frozenset({"outdated-tcb", "insecure-configuration"}),
    "TDRelaunchAdvised": frozenset({"outdated-tcb"}),
    "TDRelaunchAdvisedConfigurationNeeded": frozenset({"outdated-tcb", "insecure-configuration"}),
}
"""What each TCB status Intel's collateral can give says, as weaknesses a policy may tolerate.
``Revoked`` is not here: a revoked platform is refused whatever the policy says."""

# dcap-qvl reports every refusal as a ValueError with a message; these say which check it was.
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("Revoked", "revocation"),
    ("revoked", "revocation"),
    ("Expired", "freshness"),
    ("expired", "freshness"),
    ("in the future", "freshness"),
    ("NotValidYet", "freshness"),
    ("TCB level", "tcb"),
    ("TDX TCB", "tcb"),
    ("ignature is invalid", "signature"),
    ("InvalidSignature", "signature"),
    ("hash mismatch", "signature"),
    ("UnknownIssuer", "chain"),
    ("InvalidCrlSignature", "chain"),
    ("root CA", "chain"),
    ("certificate chain", "chain"),
    ("PCK cert", "chain"),
    ("Debug mode", "debug"),
    ("Unsupported", "format"),
    ("Unknown QE vendor", "format"),
    ("mismatch", "qe-identity"),
)


def _dcap_qvl() -> Any:
    """dcap-qvl, imported when a TDX quote is first verified: PyPI has it for glibc only, and a CAS on a
    musl image verifies every other kind of evidence without it."""
    try:
        import dcap_qvl  # noqa: PLC0415 - optional on musl, see above
    except ImportError:
        raise EvidenceRefusedError(
            "this CAS cannot verify TDX quotes: dcap-qvl is not installed (it needs a glibc image)", "format"
        ) from None
    return dcap_qvl


@cache
def intel_root() -> x509.Certificate:
    """Intel's SGX and TDX root CA, pinned in this package."""
    pem = resources.files(__package__).joinpath("anchors", "intel-sgx-root-ca.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem)


def signed_body(response: str, key: str) -> str:
    """The exact JSON text of ``key`` in a PCS response (``{"tcbInfo": {...}, "signature": "..."}``):
    the signature is over those bytes, so they are cut out, never re-serialised."""
    document = json.loads(response)
    if not isinstance(document, dict) or key not in document or "signature" not in document:
        raise ValueError(f"not a PCS response with {key} and signature")
    start = response.index(f'"{key}"') + len(key) + 2
    start = response.index(":", start) + 1
    while response[start].isspace():
        start += 1
    _, end = json.JSONDecoder().raw_decode(response, start)
    return response[start:end]


@dataclass(frozen=True)
class Collateral:
    """Intel's collateral for one quote: TCB info for its FMSPC, the TD quoting enclave's identity and the
    revocation lists, each with the issuer chain Intel's service sends in a response header."""

    tcb_info_response: str
    tcb_info_issuer_chain: str
    qe_identity_response: str
    qe_identity_issuer_chain: str
    pck_crl: bytes
    pck_crl_issuer_chain: str
    root_ca_crl: bytes

    @classmethod
    def from_directory(cls, directory: Path, fmspc: str, ca: str) -> Collateral:
        """The collateral cache an operator fills from Intel's PCS or a PCCS (docs/attestation.md):
        ``tcbinfo-<fmspc>.json``, ``qeidentity.json``, ``pckcrl-<ca>.der``, ``rootcrl.der`` and the three
        ``*-issuer-chain.pem``."""

        def read(name: str) -> bytes:
            path = directory / name
            try:
                return path.read_bytes()
            except OSError as error:
                raise FileNotFoundError(f"the collateral cache has no {name} ({error.strerror})") from None

        return cls(
            tcb_info_response=read(f"tcbinfo-{fmspc.lower()}.json").decode(),
            tcb_info_issuer_chain=read("tcbinfo-issuer-chain.pem").decode(),
            qe_identity_response=read("qeidentity.json").decode(),
            qe_identity_issuer_chain=read("qeidentity-issuer-chain.pem").decode(),
            pck_crl=read(f"pckcrl-{ca.lower()}.der"),
            pck_crl_issuer_chain=read("pckcrl-issuer-chain.pem").decode(),
            root_ca_crl=read("rootcrl.der"),
        )

    def for_dcap_qvl(self) -> Any:
        dcap_qvl = _dcap_qvl()

        tcb_info = json.loads(self.tcb_info_response)
        qe_identity = json.loads(self.qe_identity_response)
        return dcap_qvl.QuoteCollateralV3(
            pck_crl_issuer_chain=self.pck_crl_issuer_chain,
            root_ca_crl=self.root_ca_crl,
            pck_crl=self.pck_crl,
            tcb_info_issuer_chain=self.tcb_info_issuer_chain,
            tcb_info=signed_body(self.tcb_info_response, "tcbInfo"),
            tcb_info_signature=bytes.fromhex(tcb_info["signature"]),
            qe_identity_issuer_chain=self.qe_identity_issuer_chain,
            qe_identity=signed_body(self.qe_identity_response, "enclaveIdentity"),
            qe_identity_signature=bytes.fromhex(qe_identity["signature"]),
        )


@dataclass(frozen=True)
class QuoteFacts:
    """What a quote says, parsed and not yet trusted."""

    version: int
    fmspc: str
    ca: str
    mrtd: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    td_attributes: bytes
    xfam: bytes
    mr_seam: bytes
    mr_config_id: bytes
    mr_owner: bytes
    tee_tcb_svn: bytes


def parse_quote(raw: bytes) -> QuoteFacts:
    """The facts of a TDX quote; refuses SGX quotes and versions other than 4 and 5."""
    checks = Checks(PLATFORM)
    try:
        quote = _dcap_qvl().parse_quote(raw)
    except ValueError as error:
        raise checks.refuse("format", f"not a quote ({error})") from None
    except BaseException as error:
        raise _panic(error, checks) from None
    if not quote.is_tdx():
        raise checks.refuse("format", f"a {quote.quote_type()} quote, not a TDX quote")
    if quote.header.version not in SUPPORTED_VERSIONS:
        raise checks.refuse("format", f"quote version {quote.header.version} (supported: 4, 5)")
    report = quote.report
    try:
        fmspc, ca = quote.fmspc(), quote.ca()
    except ValueError as error:
        raise checks.refuse("chain", f"the quote carries no PCK certificate chain ({error})") from None
    return QuoteFacts(
        version=quote.header.version,
        fmspc=fmspc,
        ca=ca,
        mrtd=report.mr_td,
        rtmrs=(report.rt_mr0, report.rt_mr1, report.rt_mr2, report.rt_mr3),
        report_data=report.report_data,
        td_attributes=report.td_attributes,
        xfam=report.xfam,
        mr_seam=report.mr_seam,
        mr_config_id=report.mr_config_id,
        mr_owner=report.mr_owner,
        tee_tcb_svn=report.tee_tcb_svn,
    )


def _panic(error: BaseException, checks: Checks) -> BaseException:
    """A Rust panic in dcap-qvl arrives as pyo3's ``PanicException``, a ``BaseException``: for one quote
    it is a refusal of that quote, not the end of the CAS. Anything else (KeyboardInterrupt) goes on."""
    if type(error).__name__ == "PanicException":
        return checks.refuse("quote", "the quote verifier failed on this quote")
    return error


def _refusal_check(message: str) -> str:
    for fragment, check in _REFUSALS:
        if fragment in message:
            return check
    return "quote"


def verify_quote(
    raw: bytes,
    collateral: Collateral,
    *,
    now: datetime,
    reference: TdxReference | None = None,
    report_data: bytes | None = None,
    root: x509.Certificate | None = None,
) -> Verdict:
    """Verify a TDX quote against Intel's collateral at ``now``; raises
    :class:`~..errors.EvidenceRefusedError` naming the check that refused it.

    The policy's checks (MRTD, RTMRs, report data) run on the parsed quote *before* ``dcap-qvl`` checks
    its signatures: a mismatch is refused either way, and it is the first thing a user pinning values
    needs to see. ``root`` replaces Intel's pinned root only in tests that build their own chain."""
    dcap_qvl = _dcap_qvl()
    checks = Checks(PLATFORM)
    facts = parse_quote(raw)
    checks.passed_check("format")
    if reference is None:
        checks.skip("measurement")
    else:
        if facts.mrtd.hex() not in reference.mrtd:
            raise checks.refuse("measurement", f"MRTD {facts.mrtd.hex()} is not one the policy allows")
        for index, expected in reference.rtmrs:
            if facts.rtmrs[index].hex() != expected:
                raise checks.refuse(
                    "measurement", f"RTMR{index} is {facts.rtmrs[index].hex()}, not {expected}"
                )
        checks.passed_check("measurement")
    if report_data is None:
        checks.skip("report-data")
    elif facts.report_data != report_data:
        raise checks.refuse("report-data", "the report data is not this attestation's binding")
    else:
        checks.passed_check("report-data")

    root_der = (root or intel_root()).public_bytes(serialization.Encoding.DER)
    try:
        verified = dcap_qvl.verify_with_root_ca(
            raw, collateral.for_dcap_qvl(), root_der, int(now.timestamp())
        )
    except (ValueError, KeyError) as error:
        # dcap-qvl's messages span lines ("...\n\nCaused by:\n    CertRevoked"): one line for a log.
        message = " ".join(str(error).removeprefix("Verification failed: ").split()).replace(
            " Caused by: ", ": "
        )
        raise checks.refuse(_refusal_check(message), message) from None
    except BaseException as error:
        raise _panic(error, checks) from None
    status = verified.status
    if status not in TCB_STATUS_WEAKNESSES:
        raise checks.refuse("tcb", f"the platform's TCB status is {status}")
    for name in ("signature", "chain", "collateral", "revocation", "tcb"):
        checks.passed_check(name)

    weaknesses = set(TCB_STATUS_WEAKNESSES[status])
    if int.from_bytes(facts.td_attributes, "little") & _TD_ATTRIBUTES_DEBUG:
        weaknesses.add("debug-mode")
    return checks.verdict(_claims(facts, status), frozenset(weaknesses), frozenset(verified.advisory_ids))


def _claims(facts: QuoteFacts, status: str) -> dict[str, Any]:
    return {
        "version": facts.version,
        "fmspc": facts.fmspc,
        "mrtd": facts.mrtd.hex(),
        "rtmrs": [rtmr.hex() for rtmr in facts.rtmrs],
        "report_data": facts.report_data.hex(),
        "td_attributes": facts.td_attributes.hex(),
        "debug": bool(int.from_bytes(facts.td_attributes, "little") & _TD_ATTRIBUTES_DEBUG),
        "xfam": facts.xfam.hex(),
        "mr_seam": facts.mr_seam.hex(),
        "mr_config_id": facts.mr_config_id.hex(),
        "mr_owner": facts.mr_owner.hex(),
        "tee_tcb_svn": facts.tee_tcb_svn.hex(),
        "tcb_status": status,
    }
