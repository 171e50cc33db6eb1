"""TPM 2.0 quotes: the ``TPMS_ATTEST`` a TPM signs, and the check that it covers given PCR values.

Structures from the TCG's "TPM 2.0 Library, Part 2: Structures" (all integers big-endian): a quote is a
``TPMS_ATTEST`` of type ``TPM_ST_ATTEST_QUOTE`` whose ``extraData`` is the caller's qualifying data (here,
the attestation's binding) and whose ``TPMS_QUOTE_INFO`` names the PCRs it covers and their digest. The
signature is a ``TPMT_SIGNATURE`` by the attestation key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import SconifyError
from ..runtime.tpm import TpmReader

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_SHA256 = 0x000B
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
PCR_COUNT = 24


class TpmFormatError(SconifyError, ValueError):
    """Bytes that are not the TPM structure they should be."""


@dataclass(frozen=True)
class Quote:
    """A parsed ``TPMS_ATTEST`` of a quote; trusted only once :func:`verify_quote_signature` passed."""

    raw: bytes
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    firmware_version: int
    selection: tuple[tuple[int, tuple[int, ...]], ...]
    """``(hash algorithm, PCR indexes)`` in the order the digest covers them."""
    pcr_digest: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Quote:
        reader = TpmReader(raw, "the quote (TPMS_ATTEST)", TpmFormatError)
        if reader.u32() != TPM_GENERATED_VALUE:
            raise TpmFormatError("the quote was not made by a TPM (magic is not TPM_GENERATED_VALUE)")
        if reader.u16() != TPM_ST_ATTEST_QUOTE:
            raise TpmFormatError("the attestation is not a quote (type is not TPM_ST_ATTEST_QUOTE)")
        signer, extra = reader.sized(), reader.sized()
        clock, resets, restarts = reader.u64(), reader.u32(), reader.u32()
        reader.u8()  # clockInfo.safe
        firmware = reader.u64()
        selection = []
        for _ in range(reader.u32()):
            algorithm = reader.u16()
            bitmap = reader.take(reader.u8())
            indexes = tuple(i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8)))
            selection.append((algorithm, indexes))
        digest = reader.sized()
        reader.end()
        return cls(raw, signer, extra, clock, resets, restarts, firmware, tuple(selection), digest)


def verify_quote_signature(
    quote: bytes, signature: bytes, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
) -> None:
    """Check a ``TPMT_SIGNATURE`` over ``quote`` by ``key``; raises :class:`InvalidSignature` or
    :class:`TpmFormatError`."""
    reader = TpmReader(signature, "the quote's signature (TPMT_SIGNATURE)", TpmFormatError)
    algorithm, digest = reader.u16(), reader.u16()
    if digest != TPM_ALG_SHA256:
        raise TpmFormatError(f"the quote is signed with hash algorithm {digest:#06x}, not SHA-256")
    if algorithm in (TPM_ALG_RSASSA, TPM_ALG_RSAPSS):
        value = reader.sized()
        reader.end()
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature
        scheme: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if algorithm == TPM_ALG_RSASSA
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        )
        key.verify(value, quote, scheme, hashes.SHA256())
    elif algorithm == TPM_ALG_ECDSA:
        r, s = reader.sized(), reader.sized()
        reader.end()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        key.verify(der, quote, ec.ECDSA(hashes.SHA256()))
    else:
        raise TpmFormatError(f"unsupported signature scheme {algorithm:#06x}")


def pcr_digest(quote: Quote, pcrs: Mapping[int, bytes]) -> bytes:
    """The digest of the quoted PCRs' values, in the quote's selection order, as the TPM computes it.
    ``pcrs`` are the SHA-256 bank's values; every selected PCR must be there."""
    hasher = hashlib.sha256()
    for algorithm, indexes in quote.selection:
        if algorithm != TPM_ALG_SHA256:
            raise TpmFormatError(f"the quote covers a PCR bank other than SHA-256 ({algorithm:#06x})")
        for index in indexes:
            if index not in pcrs:
                raise TpmFormatError(f"the quote covers PCR {index}, whose value the evidence lacks")
            hasher.update(pcrs[index])
    return hasher.digest()
