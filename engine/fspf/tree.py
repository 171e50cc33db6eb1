"""Protected regions of an image tree: protect, verify, decrypt.

A tree is divided into regions by path prefix; the longest prefix wins, and ``/`` is not protected
unless a region says otherwise:

- **not-protected** files are copied as they are;
- **authenticated** files stay readable in place; their chunk tags go into the sealed metadata;
- **encrypted** files are removed from the tree: their ciphertext goes to ``/fspf/data/``, and only
  the region's (empty) directory stays, as the mount point for the plaintext at run time.

``/fspf/fs.fspf`` seals the list of regions and every protected entry (path, type, mode, size, key,
chunk tags or ciphertext name; for authenticated entries also owner, group and extended attributes).
Verification re-reads everything against it and also walks the tree, so that a file *added* to a
protected region, a file replaced by a link, or plaintext left in an encrypted region are refused as
surely as a changed byte. A caller that has just walked and hashed the
regions itself (the runtime, measuring) hands over that :class:`~.observation.Observation` instead.

One writer protects files, in two ways that differ only in where the tree goes and how keys are chosen
(:class:`FileKeys`): :func:`protect_tree` copies a tree with :class:`RandomKeys` (``sconify fspf
protect``); :func:`protect_in_place` leaves an image's files where they are and writes only ``/fspf``,
with :class:`DerivedKeys`, so that the same image and key give the same bytes (reproducible images).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ..layout import FSPF_DATA, FSPF_DIR, FSPF_METADATA
from . import chunks
from .attributes import Attributes, apply_attributes, check_attributes, read_attributes
from .errors import IntegrityError, UsageError
from .keys import KEY_BYTES, generate_key
from .metadata import (
    MAX_METADATA_BYTES,
    Entry,
    Manifest,
    Protection,
    Region,
    image_context,
    seal,
    unseal,
)
from .observation import Observation, RegionMap, protected_roots
from .paths import NotRegularFileError, check_tree_path, host_path, is_within, open_regular, walk


@dataclass(frozen=True)
class Protected:
    """The result of protecting a tree: the state's tag and what the metadata lists."""

    tag: bytes
    manifest: Manifest


class FileKeys(Protocol):
    """How a protection chooses each file's key and its ciphertext's name."""

    deterministic: bool
    """The sealed metadata's nonce, too, is derived rather than random."""

    def file_key(self, path: str, location: Path) -> tuple[bytes, bytes]:
        """The key of the file ``path`` (read at ``location``) and the content digest to seal (or ``b""``)."""
        ...

    def blob_name(self, file_key: bytes) -> str:
        """The name of an encrypted file's ciphertext in ``/fspf/data``."""
        ...


class RandomKeys:
    """A fresh random key for every file and a random name for every ciphertext: two protections of one
    tree share nothing."""

    deterministic = False

    def file_key(self, path: str, location: Path) -> tuple[bytes, bytes]:
        return generate_key(), b""

    def blob_name(self, file_key: bytes) -> str:
        return secrets.token_hex(16)


@dataclass(frozen=True)
class DerivedKeys:
    """Each file's key derived from the FSPF key, the path and the content's SHA-256, the ciphertext's name
    from the file key (synthetic-IV style): the same tree and key give byte-identical output. Identical
    files under one key get identical ciphertext; that is all this reveals, and only across images one
    owner protects with one key."""

    key: bytes = field(repr=False)
    deterministic = True

    def file_key(self, path: str, location: Path) -> tuple[bytes, bytes]:
        content = _content_digest(location)
        return self._derive(b"file", path.encode("utf-8", "surrogateescape"), content), content

    def blob_name(self, file_key: bytes) -> str:
        return self._derive(b"blob", file_key)[:16].hex()

    def _derive(self, label: bytes, *parts: bytes) -> bytes:
        message = b"sconify-fspf-" + label + b"-v1\x00" + b"\x00".join(parts)
        return hmac.new(self.key, message, hashlib.sha256).digest()


def _content_digest(location: Path) -> bytes:
    digest = hashlib.sha256()
    with os.fdopen(open_regular(location), "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.digest()


def normalise_regions(regions: Iterable[Region]) -> tuple[Region, ...]:
    """Check region paths, refuse conflicts, add the not-protected root; sorted by path."""
    by_path: dict[str, Region] = {}
    for region in regions:
        check_tree_path(region.path, f"region {region.path!r}")
        if is_within(region.path, FSPF_DIR):
            raise UsageError(f"region {region.path}: {FSPF_DIR} holds the protection metadata itself")
        previous = by_path.get(region.path)
        if previous is not None and previous.protection != region.protection:
            raise UsageError(
                f"region {region.path}: given as both {previous.protection} and {region.protection}"
            )
        by_path[region.path] = region
    by_path.setdefault("/", Region("/", Protection.NOT_PROTECTED))
    return tuple(sorted(by_path.values(), key=lambda r: r.path))


def _is_mount_point(path: str, regions: tuple[Region, ...]) -> bool:
    """A directory that must exist in the protected tree: a region root or an ancestor of one."""
    return any(is_within(region.path, path) for region in regions)


# -- protect ----------------------------------------------------------------------------------------


def protect_tree(
    source: Path,
    out: Path,
    key: bytes,
    regions: Iterable[Region],
    chunk_size: int = chunks.DEFAULT_CHUNK_SIZE,
) -> Protected:
    """Protect the tree ``source`` into ``out`` (which must not exist or be empty).

    Returns the tag that, with ``key``, identifies exactly this protected state.
    """
    if len(key) != KEY_BYTES:
        raise UsageError(f"key: expected {KEY_BYTES} bytes")
    if not source.is_dir():
        raise UsageError(f"{source}: not a directory")
    if host_path(source, FSPF_DIR).exists():
        raise UsageError(
            f"{source}: already contains {FSPF_DIR} (protect the original tree, not a protected one)"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: exists and is not an empty directory")
    if out.resolve().is_relative_to(source.resolve()):
        raise UsageError(f"{out}: must not be inside the source tree")
    normalised = normalise_regions(regions)

    out.mkdir(parents=True, exist_ok=True)
    data_dir = host_path(out, FSPF_DATA)
    data_dir.mkdir(parents=True)
    entries: list[Entry] = []
    directory_modes: list[tuple[Path, int]] = []
    region_map = RegionMap(normalised)
    for path, info in walk(source):
        protection = region_map.of(path).protection
        origin = host_path(source, path)
        target = host_path(out, path)
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            if protection is not Protection.ENCRYPTED or _is_mount_point(path, normalised):
                target.mkdir()
                directory_modes.append((target, mode))
            if protection is Protection.AUTHENTICATED:
                attributes = _copy_attributes(origin, target, path, info)
                entries.append(Entry(path, "dir", protection, mode=mode, attributes=attributes))
            elif protection is Protection.ENCRYPTED:
                entries.append(Entry(path, "dir", protection, mode=mode))
        elif stat.S_ISLNK(info.st_mode):
            link = str(origin.readlink())
            if protection is not Protection.ENCRYPTED:
                target.symlink_to(link)
            if protection is Protection.AUTHENTICATED:
                attributes = _copy_attributes(origin, target, path, info)
                entries.append(
                    Entry(path, "symlink", protection, mode=0o777, target=link, attributes=attributes)
                )
            elif protection is Protection.ENCRYPTED:
                entries.append(Entry(path, "symlink", protection, mode=0o777, target=link))
        elif stat.S_ISREG(info.st_mode):
            entries.extend(_copy_file(origin, target, data_dir, path, info, protection, chunk_size))
        else:
            raise UsageError(
                f"{path}: unsupported file type (only files, directories and links can be protected)"
            )
    for directory, mode in reversed(directory_modes):  # children first: a read-only parent is set last
        directory.chmod(mode)

    manifest = Manifest(kind="image", chunk_size=chunk_size, regions=normalised, entries=tuple(entries))
    sealed, tag = seal(manifest, key, image_context())
    _write_durably(host_path(out, FSPF_METADATA), sealed)
    return Protected(tag, manifest)


def _copy_file(
    origin: Path,
    target: Path,
    data_dir: Path,
    path: str,
    info: os.stat_result,
    protection: Protection,
    chunk_size: int,
) -> list[Entry]:
    if protection is Protection.NOT_PROTECTED:
        shutil.copy2(origin, target, follow_symlinks=False)
        return []
    copy_to = target if protection is Protection.AUTHENTICATED else None
    entry = _protect_file(RandomKeys(), origin, data_dir, path, info, protection, chunk_size, copy_to)
    if protection is Protection.AUTHENTICATED:
        entry = replace(entry, attributes=_copy_attributes(origin, target, path, info))
        shutil.copystat(origin, target, follow_symlinks=False)  # the mode after the owner: see there
    return [entry]


def _protect_file(
    keys: FileKeys,
    location: Path,
    data_dir: Path,
    path: str,
    info: os.stat_result,
    protection: Protection,
    chunk_size: int,
    copy_to: Path | None = None,
) -> Entry:
    """The entry of one regular file: authenticated (its chunk tags; copied to ``copy_to`` on the way if
    given) or encrypted (its ciphertext written to ``data_dir``)."""
    mode = stat.S_IMODE(info.st_mode)
    file_key, digest = keys.file_key(path, location)
    with os.fdopen(open_regular(location), "rb") as source:
        if protection is Protection.AUTHENTICATED:
            with copy_to.open("xb") if copy_to else contextlib.nullcontext() as sink:
                tags = chunks.authenticate_file(file_key, path, source, info.st_size, chunk_size, sink)
            return Entry(
                path,
                "file",
                protection,
                mode=mode,
                size=info.st_size,
                key=file_key,
                tags=tags,
                digest=digest,
            )
        blob = keys.blob_name(file_key)
        with (data_dir / blob).open("xb") as sink:
            chunks.encrypt_file(file_key, path, source, sink, info.st_size, chunk_size)
    return Entry(
        path, "file", protection, mode=mode, size=info.st_size, key=file_key, blob=blob, digest=digest
    )


def _copy_attributes(origin: Path, target: Path, path: str, info: os.stat_result) -> Attributes:
    """Give ``target`` the owner and extended attributes of ``origin``; returns them, to be sealed."""
    attributes = read_attributes(origin, info)
    try:
        apply_attributes(target, attributes, is_link=stat.S_ISLNK(info.st_mode))
    except PermissionError:
        raise UsageError(
            f"{path}: cannot give the protected copy its owner {attributes.uid}:{attributes.gid} and "
            "extended attributes; protect the tree as root (or as the owner of every file in it)"
        ) from None
    return attributes


def _write_durably(location: Path, data: bytes) -> None:
    with location.open("xb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


# -- protect in place --------------------------------------------------------------------------------


AttributeSource = Callable[[str, os.stat_result], Attributes]
"""The owner, group and extended attributes the image gives a path (given its ``lstat`` in the tree)."""


def protect_in_place(
    root: Path,
    out: Path,
    key: bytes,
    regions: Iterable[Region],
    chunk_size: int = chunks.DEFAULT_CHUNK_SIZE,
    attributes: AttributeSource | None = None,
) -> Protected:
    """Protect the protected regions of the tree ``root`` where they are; write only ``/fspf`` below ``out``
    (:class:`DerivedKeys`: the same tree and key give the same bytes).

    Nothing is copied: authenticated files stay in the image's own layers (only their chunk tags enter
    the metadata); the sconifier adds ``/fspf`` as a layer after removing the plaintext of encrypted
    regions from every other layer.

    ``attributes`` says what owner and extended attributes each authenticated entry has in the image;
    by default, what ``root`` has on disk. (A tree extracted without privilege has neither: the
    sconifier takes them from the layers' tar headers instead.)
    """
    if attributes is None:
        attributes = lambda path, info: read_attributes(host_path(root, path), info)  # noqa: E731
    if len(key) != KEY_BYTES:
        raise UsageError(f"key: expected {KEY_BYTES} bytes")
    normalised = normalise_regions(regions)
    keys = DerivedKeys(key)
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
                entry = _protect_entry(keys, root, data_dir, path, info, protection, chunk_size)
                if protection is Protection.AUTHENTICATED:
                    entry = replace(entry, attributes=attributes(path, info))
                entries.append(entry)
    manifest = Manifest(kind="image", chunk_size=chunk_size, regions=normalised, entries=tuple(entries))
    sealed, tag = seal(manifest, key, image_context(), deterministic=keys.deterministic)
    host_path(out, FSPF_METADATA).write_bytes(sealed)
    return Protected(tag, manifest)


def _protect_entry(
    keys: FileKeys,
    root: Path,
    data_dir: Path,
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
    return _protect_file(keys, location, data_dir, path, info, protection, chunk_size)


# -- verify and decrypt -----------------------------------------------------------------------------


def read_metadata(tree: Path) -> bytes:
    location = host_path(tree, FSPF_METADATA)
    try:
        with os.fdopen(open_regular(location), "rb") as stream:
            data = stream.read(MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise IntegrityError(f"Verification of {FSPF_METADATA} failed: the file is missing") from None
    except NotRegularFileError as error:
        raise IntegrityError(f"Verification of {FSPF_METADATA} failed: {error.strerror}") from None
    except OSError:
        raise IntegrityError(f"Verification of {FSPF_METADATA} failed: not a readable file") from None
    if len(data) > MAX_METADATA_BYTES:
        raise IntegrityError(
            f"Verification of {FSPF_METADATA} failed: larger than {MAX_METADATA_BYTES} bytes"
        )
    return data


def open_metadata(tree: Path, key: bytes, tag: bytes) -> Manifest:
    """Read and unseal ``/fspf/fs.fspf``, requiring exactly the state ``tag`` names."""
    return unseal(read_metadata(tree), key, image_context(), FSPF_METADATA, expected_tag=tag)


def verify_tree(tree: Path, key: bytes, tag: bytes, observation: Observation | None = None) -> Manifest:
    """Verify every protected entry of ``tree``; raise :class:`IntegrityError` at the first failure.

    ``observation`` is what the caller saw of ``tree`` a moment ago (the runtime, while measuring). When
    it covers exactly the sealed regions, the protected regions are not walked again, and an
    authenticated file whose sealed metadata carries its digest is checked against the observed digest
    instead of being read a second time for its chunk tags.
    """
    return _verified(tree, key, tag, observation, encrypted_files=True)


def _verified(
    tree: Path, key: bytes, tag: bytes, observation: Observation | None, encrypted_files: bool
) -> Manifest:
    """The metadata, after checking the layout and every entry (encrypted files only if asked: decryption
    verifies them as it goes, so checking them first would decrypt them twice)."""
    manifest = open_metadata(tree, key, tag)
    if observation is not None and observation.regions != manifest.regions:
        observation = None  # it saw other regions than the sealed ones: look again
    _check_layout(tree, manifest, observation)
    for entry in manifest.entries:
        if encrypted_files or entry.protection is not Protection.ENCRYPTED or entry.type != "file":
            _verify_entry(tree, manifest, entry, sink_root=None, observation=observation)
    return manifest


def decrypt_tree(
    tree: Path,
    destination: Path,
    key: bytes,
    tag: bytes,
    before_writing: Callable[[Path], None] | None = None,
    observation: Observation | None = None,
) -> Manifest:
    """Verify ``tree`` and write the plaintext of its encrypted regions below ``destination``.

    ``destination`` plays the role of ``/``: ``/code/app.py`` is written to ``destination/code/app.py``.
    ``before_writing`` is called with each encrypted region's directory before anything is written (the
    runtime refuses there unless it is memory-backed). ``observation`` as for :func:`verify_tree`. On
    failure, nothing this call wrote is left behind.
    """
    manifest = _verified(tree, key, tag, observation, encrypted_files=False)
    if before_writing is not None:
        for region in manifest.regions:
            if region.protection is Protection.ENCRYPTED:
                before_writing(host_path(destination, region.path))
    destination.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        for entry in manifest.entries:  # in walk order: a directory comes before what it holds
            if entry.protection is Protection.ENCRYPTED:
                _make_directories(destination, entry.path.rsplit("/", 1)[0] or "/", created)
                _verify_entry(tree, manifest, entry, sink_root=destination, created=created)
        for entry in reversed(manifest.entries):
            if entry.protection is Protection.ENCRYPTED and entry.type == "dir":
                host_path(destination, entry.path).chmod(entry.mode)
    except BaseException:
        for location in reversed(created):
            if location.is_dir() and not location.is_symlink():
                shutil.rmtree(location, ignore_errors=True)
            else:
                location.unlink(missing_ok=True)
        raise
    return manifest


def _make_directories(root: Path, path: str, created: list[Path]) -> None:
    location = root
    for part in path.strip("/").split("/") if path != "/" else []:
        location = location / part
        if location.is_symlink():
            raise IntegrityError(f"decrypting {path}: {location} is a symbolic link in the destination")
        if not location.exists():
            location.mkdir(mode=0o700)
            created.append(location)


def _layout_paths(
    tree: Path, manifest: Manifest, observation: Observation | None
) -> Iterator[tuple[str, os.stat_result]]:
    """The paths verification must account for: /fspf and every protected region, nothing else.

    A container's root holds /proc, /sys and more that no protection covers; only protected regions
    (and /fspf) are walked, each once from its outermost protected root — or taken from
    ``observation``, which walked exactly these roots.
    """
    roots = {FSPF_DIR, *protected_roots(manifest.regions)}
    if observation is not None:
        yield from observation.stats.items()
        roots = {FSPF_DIR}
    for root in sorted(roots):
        try:
            info = os.lstat(host_path(tree, root))
        except FileNotFoundError:
            continue
        if root != "/":
            yield root, info
        if stat.S_ISDIR(info.st_mode):
            yield from walk(tree, root)


def _check_layout(tree: Path, manifest: Manifest, observation: Observation | None) -> None:
    """Everything present in a protected region must be listed, with the listed type."""
    entries = manifest.entry_map()
    blobs = {entry.blob for entry in manifest.entries if entry.blob is not None}
    region_map = RegionMap(manifest.regions)
    for path, info in _layout_paths(tree, manifest, observation):
        if is_within(path, FSPF_DIR):
            _check_fspf_entry(path, info, blobs)
            continue
        region = region_map.of(path)
        if region.protection is Protection.NOT_PROTECTED:
            continue
        if region.protection is Protection.ENCRYPTED:
            if stat.S_ISDIR(info.st_mode) and _is_mount_point(path, manifest.regions):
                continue
            raise IntegrityError(
                f"Verification of {path} failed: unexpected entry in encrypted region {region.path}"
            )
        entry = entries.get(path)
        if entry is None:
            raise IntegrityError(
                f"Verification of {path} failed: unexpected entry in authenticated region {region.path}"
            )
        if _type_of(info) != entry.type:
            raise IntegrityError(
                f"Verification of {path} failed: expected a {entry.type}, found a {_type_of(info)}"
            )


def _check_fspf_entry(path: str, info: os.stat_result, blobs: set[str]) -> None:
    if path in {FSPF_DIR, FSPF_DATA} and stat.S_ISDIR(info.st_mode):
        return
    if path == FSPF_METADATA and stat.S_ISREG(info.st_mode):
        return
    name = path.rsplit("/", 1)[-1]
    if path == f"{FSPF_DATA}/{name}" and name in blobs and stat.S_ISREG(info.st_mode):
        return
    raise IntegrityError(f"Verification of {path} failed: unexpected entry in {FSPF_DIR}")


def _type_of(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    if stat.S_ISREG(info.st_mode):
        return "file"
    return "special file"


def _verify_entry(
    tree: Path,
    manifest: Manifest,
    entry: Entry,
    sink_root: Path | None,
    created: list[Path] | None = None,
    observation: Observation | None = None,
) -> None:
    if entry.protection is Protection.AUTHENTICATED:
        _verify_authenticated(tree, manifest, entry, observation)
    elif entry.type == "file":
        assert entry.blob is not None
        blob = host_path(tree, FSPF_DATA) / entry.blob
        try:
            source = os.fdopen(open_regular(blob), "rb")
        except OSError:
            raise IntegrityError(
                f"Verification of file {entry.path} failed: its encrypted content is missing"
            ) from None
        with source:
            if sink_root is None:
                chunks.decrypt_file(entry.key, entry.path, source, None, entry.size, manifest.chunk_size)
                return
            target = host_path(sink_root, entry.path)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            assert created is not None
            created.append(target)
            with os.fdopen(fd, "wb") as sink:
                chunks.decrypt_file(entry.key, entry.path, source, sink, entry.size, manifest.chunk_size)
            target.chmod(entry.mode)
    elif sink_root is not None:
        assert created is not None
        target = host_path(sink_root, entry.path)
        if entry.type == "dir":
            _make_directories(sink_root, entry.path, created)
        else:
            assert entry.target is not None
            target.symlink_to(entry.target)
            created.append(target)


def _verify_authenticated(
    tree: Path, manifest: Manifest, entry: Entry, observation: Observation | None
) -> None:
    if observation is not None:
        info = observation.stats.get(entry.path)
        link = observation.links.get(entry.path)
    else:
        try:
            info = os.lstat(host_path(tree, entry.path))
        except FileNotFoundError:
            info = None
        link = str(host_path(tree, entry.path).readlink()) if info and stat.S_ISLNK(info.st_mode) else None
    if info is None:
        raise IntegrityError(f"Verification of {entry.path} failed: the {entry.type} is missing")
    if _type_of(info) != entry.type:
        raise IntegrityError(
            f"Verification of {entry.path} failed: expected a {entry.type}, found a {_type_of(info)}"
        )
    location = host_path(tree, entry.path)
    check_attributes(entry.path, entry.type, entry.attributes, read_attributes(location, info))
    if entry.type == "symlink":
        if link != entry.target:
            raise IntegrityError(f"Verification of {entry.path} failed: the link points elsewhere")
        return
    if stat.S_IMODE(info.st_mode) != entry.mode:
        raise IntegrityError(f"Verification of {entry.path} failed: its permissions changed")
    if entry.type == "dir":
        return
    known = observation.digests.get(entry.path) if observation is not None and entry.digest else None
    if known is not None:
        if info.st_size != entry.size or not hmac.compare_digest(known, entry.digest):
            raise IntegrityError(
                f"Verification of file {entry.path} failed: its content is not the protected one"
            )
        return
    with os.fdopen(open_regular(host_path(tree, entry.path)), "rb") as source:
        chunks.verify_authenticated_file(
            entry.key, entry.path, source, entry.size, manifest.chunk_size, entry.tags
        )
