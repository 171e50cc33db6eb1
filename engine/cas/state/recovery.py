"""Recovery keys: the CAS's master key, sealed to keys its owner holds.

Every volume key and generated secret is encrypted under the master key; lose it (a deleted data
directory, a lost Kubernetes Secret) and every service's data is unreadable for ever, though the data is
there. So a CAS started with ``--recovery-key PUBLIC.pem`` seals its master key to each such public key and
keeps the sealed copies in its store (and so in every backup). Whoever holds a matching private key — kept
offline by the owner, or as a Pulumi secret — can run ``sconify cas recover`` and start a new CAS on the
same state.

Sealing is ECIES on X25519: an ephemeral key agreement with the recipient's public key, HKDF-SHA256 over the
shared secret and both public keys, AES-256-GCM over the master key with the recipient's fingerprint as
associated data. The store holds only public values and ciphertext; without a recovery private key a sealed
copy tells nothing.

**Which master key is the CAS's.** Sealing needs only the recovery *public* key, so anyone can seal a key of
their own to it: an attacker who runs a CAS sealed to the owner's public key, creates the owner's session
names and writes a backup would otherwise have ``cas recover`` hand the owner the attacker's master key (and
a database administrator could swap the store's sealed copy for such a one). So the CAS's CA — the identity
every client pins — signs the CAS's *origin*: the id of its master key (:func:`cas_id`, a one-way name of
it). The store and every backup carry that statement, and ``cas recover`` requires the CA certificate the
owner pins (``--cas-ca``): a master key the pinned CA did not vouch for is refused, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...errors import EXIT_USAGE, SconifyError
from ..clients.identity import certificate_key_hash, write_private

_INFO = b"sconify-cas-recovery-v1"
PRIVATE_FILE = "recovery-key.pem"
PUBLIC_FILE = "recovery-key.pub.pem"
_ORIGIN = b"sconify-cas-origin-v1\x00"


class RecoveryError(SconifyError):
    """A recovery key that cannot be read, or a sealed master key that it does not open."""

    exit_code = EXIT_USAGE


def fingerprint(public: X25519PublicKey) -> str:
    """The SHA-256 of the raw public key (hex): names a recovery key in the store and in messages."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class RecoveryKeyFiles:
    private: Path
    public: Path
    fingerprint: str


@dataclass(frozen=True)
class RecoveryKeyPair:
    private_pem: bytes
    """PKCS#8 PEM, unencrypted: whoever holds it can open the sealed master key."""
    public_pem: bytes
    """SubjectPublicKeyInfo PEM: what ``serve --recovery-key`` takes."""
    fingerprint: str


def new_recovery_key() -> RecoveryKeyPair:
    """A new X25519 recovery key, as PEM (``create_recovery_key`` writes one to files; the components keep
    one as a Pulumi secret)."""
    key = X25519PrivateKey.generate()
    return RecoveryKeyPair(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        fingerprint(key.public_key()),
    )


def create_recovery_key(directory: Path) -> RecoveryKeyFiles:
    """A new recovery key: the private key (mode 600; keep it offline) and its public key."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / PRIVATE_FILE, directory / PUBLIC_FILE
    if private.exists() or public.exists():
        raise RecoveryError(f"{directory}: already holds a recovery key; refusing to overwrite it")
    pair = new_recovery_key()
    write_private(private, pair.private_pem)
    public.write_bytes(pair.public_pem)
    return RecoveryKeyFiles(private, public, pair.fingerprint)


def load_public_key(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise RecoveryError(f"{path}: not a readable PEM public key ({type(error).__name__})") from None
    if not isinstance(key, X25519PublicKey):
        raise RecoveryError(f"{path}: a recovery key must be X25519 (sconify cas recovery-key create)")
    return key


def load_private_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise RecoveryError(f"{path}: not a readable PEM private key ({type(error).__name__})") from None
    if not isinstance(key, X25519PrivateKey):
        raise RecoveryError(f"{path}: a recovery key must be X25519 (sconify cas recovery-key create)")
    return key


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO + ephemeral + recipient).derive(shared)


def seal_master_key(master_key: bytes, recipient: X25519PublicKey) -> str:
    """The master key sealed to ``recipient`` (a JSON text: public values and ciphertext only)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _wrapping_key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    nonce = os.urandom(12)
    name = fingerprint(recipient)
    sealed = AESGCM(key).encrypt(nonce, master_key, name.encode())
    return json.dumps(
        {"recipient": name, "ephemeral": ephemeral_raw.hex(), "nonce": nonce.hex(), "sealed": sealed.hex()},
        sort_keys=True,
    )


def open_master_key(sealed_text: str, private: X25519PrivateKey) -> bytes:
    """The master key from a sealed copy made for ``private``'s public key."""
    try:
        sealed = json.loads(sealed_text)
        ephemeral_raw = bytes.fromhex(sealed["ephemeral"])
        recipient = private.public_key()
        recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key = _wrapping_key(
            private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw)), ephemeral_raw, recipient_raw
        )
        master = AESGCM(key).decrypt(
            bytes.fromhex(sealed["nonce"]), bytes.fromhex(sealed["sealed"]), fingerprint(recipient).encode()
        )
    except (ValueError, KeyError, TypeError, InvalidTag):
        raise RecoveryError("the sealed master key does not open with this recovery key") from None
    if len(master) != 32:
        raise RecoveryError("the sealed master key is not a master key")
    return master


def cas_id(master_key: bytes) -> str:
    """A public name of a master key (SHA-256 under a domain of its own): which key, and nothing of it."""
    return hashlib.sha256(b"sconify-cas-id-v1\x00" + master_key).hexdigest()


def sign_origin(master_key: bytes, ca_key_pem: bytes, ca_certificate_pem: bytes) -> str:
    """The CA's statement that this master key is its CAS's (a JSON text, public)."""
    key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise RecoveryError("the CAS's CA key must be an elliptic-curve key")
    identity = cas_id(master_key)
    signature = key.sign(_ORIGIN + identity.encode(), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {"cas_id": identity, "ca": certificate_key_hash(ca_certificate_pem), "signature": signature.hex()},
        sort_keys=True,
    )


def origin_problem(statement: str | None, master_key: bytes, pinned_ca_pem: bytes) -> str | None:
    """Why ``master_key`` is not the one the pinned CA vouched for in ``statement``, or None."""
    if statement is None:
        return "it carries no origin signed by the CAS's CA (written before origins were; see docs/cas.md)"
    try:
        fields = json.loads(statement)
        identity, signature = str(fields["cas_id"]), bytes.fromhex(fields["signature"])
        ca = x509.load_pem_x509_certificate(pinned_ca_pem)
    except (ValueError, KeyError, TypeError):
        return "its origin statement, or the pinned CA certificate, cannot be read"
    public = ca.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "the pinned CA certificate is not a CAS's CA (an elliptic-curve key)"
    try:
        public.verify(signature, _ORIGIN + identity.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "its origin is not signed by the pinned CA: it was written by another CAS"
    if identity != cas_id(master_key):
        return (
            "the master key it yields is not the one the pinned CA vouched for: its sealed copy was "
            "replaced, or it comes from another CAS"
        )
    return None
