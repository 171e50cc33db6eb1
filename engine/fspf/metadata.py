"""The FSPF metadata file: what a protected tree or volume state holds, sealed under one key.

Format version 2 (documented in ``docs/fspf.md``)::

    header  = "SCONIFY-FSPF" (12 bytes)  format version (u16 = 2)  kind (u8: 1 image, 2 volume)  nonce (12)
    file    = header  AES-256-GCM(key, nonce, manifest JSON, aad = header || context)  (ciphertext || tag)

The 16-byte GCM tag at the end of the file is the *tag* of the protected state: a policy names it as
``fspf_tag`` and a freshness anchor records it per volume generation. ``context`` is not stored; the
reader supplies what it expects (for a volume: its name and generation), so a state file cannot be
presented as another volume's or another generation's.

Version 2 added each entry's owner, group and extended attributes. Volume states of version 1 are still
read (their entries have no owners to check); image metadata of version 1 is refused, since it does not
seal what the image's files may do beyond their content and mode.
"""

from __future__ import annotations

import hmac
import json
import os
import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .attributes import ROOT_OWNED, Attributes
from .chunks import TAG_SIZE
from .errors import IntegrityError

MAGIC = b"SCONIFY-FSPF"
FORMAT_VERSION = 2
READABLE_VOLUME_VERSIONS = (1, 2)
KIND_IMAGE = 1
KIND_VOLUME = 2
_HEADER = struct.Struct(">12sHB12s")
MAX_METADATA_BYTES = 256 * 1024 * 1024
"""Largest metadata file read: ~1.5 million files; a bound so a planted huge file cannot exhaust memory."""

EntryType = Literal["file", "dir", "symlink"]


class Protection(StrEnum):
    """How a region's files are protected. Encrypted implies authenticated."""

    NOT_PROTECTED = "not-protected"
    AUTHENTICATED = "authenticated"
    ENCRYPTED = "encrypted"


@dataclass(frozen=True)
class Region:
    """Every path at or below ``path`` has ``protection``, unless a longer region says otherwise."""

    path: str
    protection: Protection


@dataclass(frozen=True)
class Entry:
    """One protected file, directory or symbolic link."""

    path: str
    """Absolute path inside the tree (or, for a volume, inside the volume)."""
    type: EntryType
    protection: Protection
    mode: int = 0o644
    size: int = 0
    key: bytes = field(default=b"", repr=False)
    """The file version's own AES-256 key (files only)."""
    blob: str | None = None
    """Encrypted files: name of the ciphertext file under the data folder."""
    tags: bytes = b""
    """Authenticated files: the concatenated 16-byte chunk tags."""
    target: str | None = None
    """Symbolic links: where the link points."""
    digest: bytes = field(default=b"", repr=False)
    """Volume files: SHA-256 of the plaintext, so unchanged files keep their ciphertext across commits."""
    attributes: Attributes = ROOT_OWNED
    """Authenticated entries: the owner, group and extended attributes the image gives them. (Encrypted
    files are written afresh by the runtime, as the user it runs as.)"""


@dataclass(frozen=True)
class Manifest:
    """Everything the metadata file seals."""

    kind: Literal["image", "volume"]
    chunk_size: int
    regions: tuple[Region, ...] = ()
    entries: tuple[Entry, ...] = ()
    volume: str | None = None
    generation: int | None = None

    def entry_map(self) -> dict[str, Entry]:
        return {entry.path: entry for entry in self.entries}


def image_context() -> bytes:
    return b"image"


def volume_context(volume: str, generation: int) -> bytes:
    return b"volume\x00" + volume.encode("utf-8") + b"\x00" + struct.pack(">Q", generation)


def _entry_to_json(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": entry.path,
        "type": entry.type,
        "protection": entry.protection.value,
        "mode": entry.mode,
    }
    if entry.type == "file":
        data["size"] = entry.size
        data["key"] = entry.key.hex()
    if entry.blob is not None:
        data["blob"] = entry.blob
    if entry.tags:
        data["tags"] = entry.tags.hex()
    if entry.target is not None:
        data["target"] = entry.target
    if entry.digest:
        data["digest"] = entry.digest.hex()
    if entry.protection is Protection.AUTHENTICATED:  # what stays in place is what needs owners
        data["uid"], data["gid"] = entry.attributes.uid, entry.attributes.gid
    if entry.attributes.xattrs:
        data["xattrs"] = {name: value.hex() for name, value in entry.attributes.xattrs}
    return data


def _entry_from_json(data: dict[str, Any]) -> Entry:
    return Entry(
        path=str(data["path"]),
        type=data["type"],
        protection=Protection(data["protection"]),
        mode=int(data["mode"]),
        size=int(data.get("size", 0)),
        key=bytes.fromhex(data.get("key", "")),
        blob=data.get("blob"),
        tags=bytes.fromhex(data.get("tags", "")),
        target=data.get("target"),
        digest=bytes.fromhex(data.get("digest", "")),
        attributes=Attributes.of(
            int(data.get("uid", 0)),
            int(data.get("gid", 0)),
            {str(name): bytes.fromhex(value) for name, value in data.get("xattrs", {}).items()},
        ),
    )


def manifest_to_json(manifest: Manifest) -> bytes:
    data = {
        "format": FORMAT_VERSION,
        "kind": manifest.kind,
        "chunk_size": manifest.chunk_size,
        "regions": [{"path": r.path, "protection": r.protection.value} for r in manifest.regions],
        "entries": [_entry_to_json(e) for e in manifest.entries],
        "volume": manifest.volume,
        "generation": manifest.generation,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


def manifest_from_json(text: bytes) -> Manifest:
    data = json.loads(text)
    if data.get("format") not in READABLE_VOLUME_VERSIONS:
        raise ValueError("unsupported format")
    return Manifest(
        kind=data["kind"],
        chunk_size=int(data["chunk_size"]),
        regions=tuple(Region(r["path"], Protection(r["protection"])) for r in data["regions"]),
        entries=tuple(_entry_from_json(e) for e in data["entries"]),
        volume=data.get("volume"),
        generation=data.get("generation"),
    )


def _kind_code(manifest: Manifest) -> int:
    return KIND_IMAGE if manifest.kind == "image" else KIND_VOLUME


def seal(manifest: Manifest, key: bytes, context: bytes, deterministic: bool = False) -> tuple[bytes, bytes]:
    """Seal ``manifest`` under ``key``; returns ``(file contents, tag)``.

    The nonce is random, or — ``deterministic`` — derived from the key and the manifest itself
    (synthetic-IV style: a different manifest always gets a different nonce), so that the same
    content and key give the same bytes and tag (reproducible images).
    """
    plain = manifest_to_json(manifest)
    if deterministic:
        nonce = hmac.new(key, b"sconify-fspf-nonce-v1\x00" + context + b"\x00" + plain, "sha256").digest()[
            :12
        ]
    else:
        nonce = os.urandom(12)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, _kind_code(manifest), nonce)
    sealed = AESGCM(key).encrypt(nonce, plain, header + context)
    return header + sealed, sealed[-TAG_SIZE:]


def stored_tag(data: bytes, name: str) -> bytes:
    """The tag a metadata file carries (its last 16 bytes), after checking that it looks like one."""
    if len(data) < _HEADER.size + TAG_SIZE or not data.startswith(MAGIC):
        raise IntegrityError(f"Verification of {name} failed: not an FSPF metadata file")
    return data[-TAG_SIZE:]


def unseal(data: bytes, key: bytes, context: bytes, name: str, expected_tag: bytes | None = None) -> Manifest:
    """Open a metadata file; with ``expected_tag``, also require it to be exactly that state.

    ``name`` is how errors refer to the file (e.g. ``/fspf/fs.fspf``).
    """
    tag = stored_tag(data, name)
    if expected_tag is not None and not hmac.compare_digest(tag, expected_tag):
        raise IntegrityError(
            f"Verification of {name} failed: it is not the protected state the policy names (tag mismatch)"
        )
    _, version, kind, nonce = _HEADER.unpack_from(data)
    if version == 1 and kind == KIND_IMAGE:
        raise IntegrityError(
            f"Verification of {name} failed: format version 1 does not seal owners and extended "
            "attributes; protect the image again with this version"
        )
    if version not in READABLE_VOLUME_VERSIONS:
        raise IntegrityError(f"Verification of {name} failed: unsupported format version {version}")
    header = data[: _HEADER.size]
    try:
        plain = AESGCM(key).decrypt(nonce, data[_HEADER.size :], header + context)
    except InvalidTag:
        raise IntegrityError(f"Verification of {name} failed: wrong key, or the file was changed") from None
    try:
        manifest = manifest_from_json(plain)
    except (ValueError, KeyError, TypeError):
        # Authentic but unreadable: written by an incompatible version of this software.
        raise IntegrityError(f"Verification of {name} failed: metadata not understood") from None
    if _kind_code(manifest) != kind:
        raise IntegrityError(f"Verification of {name} failed: metadata kind does not match its header")
    return manifest
