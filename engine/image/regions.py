"""Protect regions of an image's root file system *in place*, for a new image layer.

Unlike :func:`~.tree.protect_tree`, nothing is copied: authenticated files stay in the image's own
layers (only their chunk tags enter the metadata), and what is produced is only ``/fspf`` — the sealed
metadata and the ciphertext of encrypted regions — which the sconifier adds as a layer after removing
the plaintext of encrypted regions from every other layer.

Protection is **deterministic**: each file's key is derived from the FSPF key, the path and the
content's SHA-256, and the metadata's nonce from the key and the manifest (synthetic-IV style), so the
same root file system and key give byte-identical output — reproducible images. Identical files under
the same key get identical ciphertext; that is all this reveals, and only across images one owner
protects with one key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from ..fspf import chunks
from ..fspf.attributes import Attributes, read_attributes
from ..fspf.errors import UsageError
from ..fspf.keys import KEY_BYTES
from ..fspf.metadata import Entry, Manifest, Protection, Region, image_context, seal
from ..fspf.observation import RegionMap, protected_roots
from ..fspf.paths import host_path, open_regular, walk
from ..fspf.tree import Protected, normalise_regions
from ..layout import FSPF_DATA, FSPF_METADATA


def _derive(key: bytes, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"sconify-fspf-" + label + b"-v1\x00" + b"\x00".join(parts), hashlib.sha256).digest()


def _content_digest(location: Path) -> bytes:
    digest = hashlib.sha256()
    with os.fdopen(open_regular(location), "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.digest()


AttributeSource = Callable[[str, os.stat_result], Attributes]
"""The owner, group and extended attributes the image gives a path (given its ``lstat`` in the tree)."""


def protect_regions(
    root: Path,
    out: Path,
    key: bytes,
    regions: Iterable[Region],
    chunk_size: int = chunks.DEFAULT_CHUNK_SIZE,
    attributes: AttributeSource | None = None,
) -> Protected:
    """Protect the protected regions of the tree ``root``; write ``/fspf`` below ``out``.

    ``attributes`` says what owner and extended attributes each authenticated entry has in the image;
    by default, what ``root`` has on disk. (A tree extracted without privilege has neither: the
    sconifier takes them from the layers' tar headers instead.)
    """
    if attributes is None:
        attributes = lambda path, info: read_attributes(host_path(root, path), info)  # noqa: E731
    if len(key) != KEY_BYTES:
        raise UsageError(f"key: expected {KEY_BYTES} bytes")
    normalised = normalise_regions(regions)
    data_dir = host_path(out, FSPF_DATA)
    data_dir.mkdir(parents=True, exist_ok=True)
    walk_roots = protected_roots(normalised)
    entries: list[Entry] = []
    region_map = RegionMap(normalised)
    for walk_root in walk_roots:
        try:
            root_info = os.lstat(host_path(root, walk_root))
        except FileNotFoundError:
            raise UsageError(f"{walk_root}: no such file or directory in the image") from None
        paths = [(walk_root, root_info)] if walk_root != "/" else []
        if stat.S_ISDIR(root_info.st_mode):
            paths += list(walk(root, walk_root))
        for path, info in paths:
            protection = region_map.of(path).protection
            if protection is not Protection.NOT_PROTECTED:
                entry = _protect_entry(root, data_dir, key, path, info, protection, chunk_size)
                if protection is Protection.AUTHENTICATED:
                    entry = replace(entry, attributes=attributes(path, info))
                entries.append(entry)
    manifest = Manifest(kind="image", chunk_size=chunk_size, regions=normalised, entries=tuple(entries))
    sealed, tag = seal(manifest, key, image_context(), deterministic=True)
    host_path(out, FSPF_METADATA).write_bytes(sealed)
    return Protected(tag, manifest)


def _protect_entry(
    root: Path,
    data_dir: Path,
    key: bytes,
    path: str,
    info: os.stat_result,
    protection: Protection,
    chunk_size: int,
) -> Entry:
    location = host_path(root, path)
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        return Entry(path, "dir", protection, mode=mode)
    if stat.S_ISLNK(info.st_mode):
        return Entry(path, "symlink", protection, mode=0o777, target=str(location.readlink()))
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{path}: unsupported file type (only files, directories and links can be protected)"
        )
    encoded = path.encode("utf-8", "surrogateescape")
    content = _content_digest(location)
    file_key = _derive(key, b"file", encoded, content)
    with os.fdopen(open_regular(location), "rb") as source:
        if protection is Protection.AUTHENTICATED:
            tags = chunks.authenticate_file(file_key, path, source, info.st_size, chunk_size)
            return Entry(
                path,
                "file",
                protection,
                mode=mode,
                size=info.st_size,
                key=file_key,
                tags=tags,
                digest=content,
            )
        blob = _derive(key, b"blob", file_key)[:16].hex()
        with (data_dir / blob).open("xb") as sink:
            chunks.encrypt_file(file_key, path, source, sink, info.st_size, chunk_size)
    return Entry(
        path, "file", protection, mode=mode, size=info.st_size, key=file_key, blob=blob, digest=content
    )
