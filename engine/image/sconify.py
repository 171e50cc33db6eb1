"""The sconify transform: a native image becomes a confidential image, registry to registry.

1. Resolve the native image (pinned by digest) and apply its layers, checked entry by entry, to a
   scratch root file system on disk (layers stream; memory stays flat).
2. Add the runtime and the CAS pin; protect: each ``--dir`` an encrypted region, the program, its
   libraries and the runtime an authenticated region (deterministically, from the FSPF key).
3. Rewrite every layer that holds anything below an encrypted directory, leaving it out — a whiteout
   would leave the plaintext in the lower layer's blob. Other layers are reused as they are.
4. Add one layer: ``/fspf`` (metadata and ciphertext), ``/sconify`` (runtime, pin), mount points.
5. Write a config (entrypoint = runtime, configuration id and CAS baked in, labels) and a manifest;
   push only the blobs the destination lacks.

The same native image, options and FSPF key give the same image digest.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chart.spec import Mount, MountKind
from ..fspf.attributes import ROOT_OWNED
from ..fspf.errors import UsageError
from ..fspf.metadata import Protection, Region
from ..fspf.paths import check_tree_path, is_within
from ..fspf.tree import Protected, protect_in_place
from ..layout import (
    CAS_PIN,
    CONTAINER_FILES,
    MEASUREMENT_PLAN,
    RESERVED,
    RUNTIME_ENTRYPOINT,
    SCRATCH_DIRECTORIES,
    SYSTEM_DIRECTORIES,
    VOLUME_STORAGE,
)
from ..policy.builder import DEFAULT_PATH
from ..policy.model import VOLUME_NAME_RE, VOLUME_NAME_RULE
from ..runtime import measure
from ..runtime.binary import RuntimeMissingError, runtime_binary
from ..version import __version__
from . import cache
from .layers import (
    OPAQUE_WHITEOUT,
    WHITEOUT_PREFIX,
    LayerEntry,
    LayerWriter,
    WrittenLayer,
    read_layer,
    write_tree_layer,
)
from .oci import (
    DEFAULT_ARCHITECTURE,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageError,
    Platform,
    manifest_json,
)
from .reference import ImageReference, Transport
from .registry import sha256_digest
from .rootfs import RootFilesystem, resolve_inside
from .transport import (
    ImageDestination,
    ImageSource,
    RegistryOptions,
    ResolvedImage,
    open_destination,
    open_source,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SconifyOptions:
    source: ImageReference
    destination: ImageReference
    command: str
    fspf_key: bytes = field(repr=False)
    service: str = "service"
    binary: str | None = None
    dirs: tuple[str, ...] = ()
    authenticated: tuple[str, ...] = ()
    """Paths authenticated inside what is otherwise left unprotected (the whole root is authenticated
    already)."""
    writable: tuple[str, ...] = ()
    """Paths the program writes outside its volumes and the scratch directories, left unprotected."""
    volumes: tuple[tuple[str, str], ...] = ()
    config_id: str = ""
    cas_attestation_address: str = ""
    """The CAS's attestation API (``host:port``) the runtime attests at; empty: given at run time."""
    cas_ca_certificate: bytes = b""
    """The CAS's CA certificate (PEM), pinned in the image: the runtime trusts no other."""
    heap: str = ""
    stack: str = ""
    platform: Platform = field(default_factory=Platform)
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    dry_run: bool = False


@dataclass(frozen=True)
class SconifyResult:
    image: ImageReference
    """The confidential image, pinned by digest (not pushed on a dry run)."""
    native: ImageReference
    mrenclave: str
    fspf_tag: str
    binary: str
    mounts: tuple[Mount, ...]
    blobs_uploaded: int
    blobs_present: int


def check_paths(options: SconifyOptions) -> None:
    """The options' paths and volume names as the sconifier takes them; raises ``ImageError`` naming one."""
    for path in (*options.dirs, *options.authenticated, *options.writable, *(p for _, p in options.volumes)):
        try:
            check_tree_path(path, path)
        except UsageError:
            raise ImageError(f"{path}: expected a normalised absolute path such as /code") from None
        if path == "/" or any(
            is_within(path, reserved) or is_within(reserved, path) for reserved in RESERVED
        ):
            raise ImageError(
                f"{path}: overlaps a path the confidential image reserves ({', '.join(RESERVED)})"
            )
    for directory in options.dirs:
        for _, volume_path in options.volumes:
            if is_within(volume_path, directory) or is_within(directory, volume_path):
                raise ImageError(
                    f"{directory}: an encrypted directory cannot overlap volume path {volume_path}"
                )
    names = [name for name, _ in options.volumes]
    for name in names:
        if not VOLUME_NAME_RE.fullmatch(name):
            raise ImageError(f"--volume {name}: a volume's name is {VOLUME_NAME_RULE}")
    if len({name.lower() for name in names}) != len(names):
        raise ImageError(
            "--volume: the same volume name twice (names that differ only in case are one volume)"
        )


def _below(path: str, directories: tuple[str, ...]) -> bool:
    """Strictly below one of ``directories`` (the directory itself stays as a mount point)."""
    return any(path != directory and is_within(path, directory) for directory in directories)


def _entry_removed(path: str, directories: tuple[str, ...]) -> bool:
    parent, name = posixpath.split(path)
    if name == OPAQUE_WHITEOUT or name.startswith(WHITEOUT_PREFIX):
        target = parent if name == OPAQUE_WHITEOUT else posixpath.join(parent, name[len(WHITEOUT_PREFIX) :])
        return _below(target, directories) or (name == OPAQUE_WHITEOUT and target in directories)
    return _below(path, directories)


def _search_path(environment: list[str]) -> list[str]:
    search = DEFAULT_PATH
    for variable in environment:
        if variable.startswith("PATH="):
            search = variable[len("PATH=") :]
    return [directory for directory in search.split(":") if directory.startswith("/")]


def unprotected_paths(options: SconifyOptions) -> tuple[str, ...]:
    """What the authenticated root leaves out: the kernel's and the container runtime's mounts, the scratch
    directories, the volumes (their plaintext is a mount of its own, their ciphertext too) and what the
    options name writable. Everything else of the image — ``/usr``, ``/etc``, ``/lib``, the program, its shell
    and helpers — is authenticated: it is all the program may execute or read."""
    paths = {
        *SYSTEM_DIRECTORIES,
        *SCRATCH_DIRECTORIES,
        *CONTAINER_FILES,
        VOLUME_STORAGE,
        *(path for _, path in options.volumes),
        *options.writable,
    }
    return tuple(sorted(paths))


def _wanted(options: SconifyOptions) -> Callable[[str], bool]:
    """Which files' content the scratch root file system needs: everything protected (the whole root, but
    for what is left unprotected, unless authenticated again inside it)."""
    unprotected = unprotected_paths(options)
    return lambda path: (
        not any(is_within(path, prefix) for prefix in unprotected)
        or any(is_within(path, prefix) for prefix in options.authenticated)
    )


def _kept_blob(scratch: Path, layer: Descriptor) -> Path:
    return scratch / f"blob-{layer.digest.removeprefix('sha256:')}"


def _tee(chunks: Iterator[bytes], path: Path) -> Iterator[bytes]:
    with path.open("wb") as sink:
        for chunk in chunks:
            sink.write(chunk)
            yield chunk


def _find_binary(rootfs: RootFilesystem, program: str, environment: list[str]) -> str:
    """The program's path in the image: as given if absolute, else looked up on the image's PATH."""
    candidates = (
        [program]
        if program.startswith("/")
        else [posixpath.join(d, program) for d in _search_path(environment)]
    )
    for candidate in candidates:
        location = resolve_inside(rootfs.root, candidate, follow_last=True)
        found = "/" + location.relative_to(rootfs.root).as_posix()
        if location.is_file():
            return found
        if found in rootfs.skipped:
            raise ImageError(
                f"{program}: resolves to {found}, outside the program and library directories; "
                f"name it with --authenticated {posixpath.dirname(found)}"
            )
    raise ImageError(f"{program}: not found in the image (searched {', '.join(candidates)})")


def sconify(options: SconifyOptions, progress: Progress = lambda _: None) -> SconifyResult:
    """Turn the native image into a confidential one; see the module documentation."""
    check_paths(options)
    argv = shlex.split(options.command)
    if not argv:
        raise ImageError("--command: must name the program to run")
    with open_source(options.source, options.registry) as source:
        native = source.resolve(options.platform)
        progress(f"native image {native.reference}")
        key = cache.cache_key(native.manifest_digest, options.fspf_key, _settings(options))
        remembered = cache.load(key)
        if remembered is not None:
            result = _from_cache(options, native.reference, remembered, progress)
            if result is not None:
                return result
        with tempfile.TemporaryDirectory(prefix="sconify-") as scratch:
            result, remember = _sconify(options, argv, source, native, Path(scratch), progress)
        cache.store(key, remember)
        return result


def _settings(options: SconifyOptions) -> dict[str, Any]:
    """Everything besides the native image and the key that determines the confidential image."""
    return {
        "command": options.command,
        "binary": options.binary,
        "dirs": options.dirs,
        "authenticated": options.authenticated,
        "writable": options.writable,
        "volumes": options.volumes,
        "config_id": options.config_id,
        "cas": options.cas_attestation_address,
        "pin": hashlib.sha256(options.cas_ca_certificate).hexdigest(),
        "heap": options.heap,
        "stack": options.stack,
        "platform": str(options.platform),
    }


def _from_cache(
    options: SconifyOptions, native: ImageReference, remembered: cache.CachedResult, progress: Progress
) -> SconifyResult | None:
    """The remembered result, if the destination still holds every blob (then only the manifest is
    written again); ``None`` when a full run is needed."""
    mounts = _mounts(options)
    if options.dry_run:
        image = options.destination.with_digest(sha256_digest(remembered.manifest))
        return SconifyResult(
            image, native, remembered.mrenclave, remembered.fspf_tag, remembered.binary, mounts, 0, 0
        )
    with open_destination(options.destination, options.registry) as destination:
        if not all(destination.has_blob(digest) for digest in remembered.blobs):
            return None
        progress("identical to an earlier run: every blob is at the destination")
        image = destination.put_manifest(remembered.manifest, OCI_MANIFEST)
    return SconifyResult(
        image,
        native,
        remembered.mrenclave,
        remembered.fspf_tag,
        remembered.binary,
        mounts,
        0,
        len(remembered.blobs),
    )


def _sconify(
    options: SconifyOptions,
    argv: list[str],
    source: ImageSource,
    native: ResolvedImage,
    scratch: Path,
    progress: Progress,
) -> tuple[SconifyResult, cache.CachedResult]:
    """The sconifier's five steps: unpack the native image, stage the runtime, protect and measure, assemble
    the new image, publish it."""
    environment = list((native.config.get("config") or {}).get("Env") or [])
    rootfs, holds_plaintext = _unpack(options, source, native, scratch, progress)
    binary = _find_binary(rootfs, options.binary or argv[0], environment)
    stage = scratch / "layer"
    architecture = str(native.config.get("architecture") or DEFAULT_ARCHITECTURE)
    _stage_runtime(stage, rootfs, options, architecture, progress)
    protected, mrenclave = _protect_and_measure(options, rootfs, stage, binary, progress)
    layers, manifest_bytes, config = _assemble(
        options, source, native, holds_plaintext, stage, mrenclave, scratch, progress
    )
    remember = cache.CachedResult(
        manifest_bytes,
        config[1].read_bytes(),
        (*(d.digest for d, _ in layers), config[0].digest),
        mrenclave,
        protected.tag.hex(),
        binary,
    )
    image, uploaded, present = _publish(options, source, layers, config, manifest_bytes, scratch, progress)
    result = SconifyResult(
        image, native.reference, mrenclave, protected.tag.hex(), binary, _mounts(options), uploaded, present
    )
    return result, remember


def _unpack(
    options: SconifyOptions,
    source: ImageSource,
    native: ResolvedImage,
    scratch: Path,
    progress: Progress,
) -> tuple[RootFilesystem, list[bool]]:
    """Step 1: the native image's root file system (what the sconifier needs of it), and for each layer
    whether it holds plaintext of an encrypted directory (that layer is rewritten without it)."""
    manifest = native.manifest
    rootfs = RootFilesystem(scratch / "rootfs", _wanted(options))
    holds_plaintext: list[bool] = []
    for index, layer in enumerate(manifest.layers):
        progress(f"reading layer {index + 1}/{len(manifest.layers)} ({layer.size} bytes)")
        removed = False

        def entries(index: int = index, layer: Descriptor = layer) -> Iterator[LayerEntry]:
            nonlocal removed
            # Keep the compressed blob on the way: the destination may need it, and then it is not
            # downloaded twice.
            for entry in read_layer(
                _tee(source.blob(layer), _kept_blob(scratch, layer)), layer.media_type, f"layer {index}"
            ):
                removed = removed or _entry_removed(entry.path, options.dirs)
                yield entry

        rootfs.apply(entries())
        holds_plaintext.append(removed)
    rootfs.finish()
    for directory in options.dirs:
        if not rootfs.is_dir(directory):
            raise ImageError(f"--dir {directory}: not a directory in the image")
    return rootfs, holds_plaintext


def _protect_and_measure(
    options: SconifyOptions, rootfs: RootFilesystem, stage: Path, binary: str, progress: Progress
) -> tuple[Protected, str]:
    """Step 3: the regions protected (``/fspf`` written into ``stage``) and the measurement of what they
    authenticate."""
    unprotected = unprotected_paths(options)
    regions = [Region("/", Protection.AUTHENTICATED)]
    regions += [Region(directory, Protection.ENCRYPTED) for directory in options.dirs]
    for path in unprotected:
        # A link in the image (Debian's /var/run -> /run) stays authenticated: where it points is the image's.
        info = rootfs.lstat(path)
        if info is None or not stat.S_ISLNK(info.st_mode):
            regions.append(Region(path, Protection.NOT_PROTECTED))
    regions += [Region(path, Protection.AUTHENTICATED) for path in options.authenticated]
    if any(is_within(binary, path) for path in unprotected):
        regions.append(Region(binary, Protection.AUTHENTICATED))  # the program is measured wherever it is
    # What the runtime measures, written before protection so that it is itself authenticated (and so
    # part of the measurement): it cannot read the FSPF metadata before the CAS gives it the key.
    plan = measure.plan_json(binary, regions, options.heap, options.stack)
    for base in (stage, rootfs.root):
        (base / MEASUREMENT_PLAN.lstrip("/")).write_bytes(plan)
    for location in stage.rglob("*"):  # the layer it becomes gives all it holds to root
        rootfs.replace_attributes("/" + location.relative_to(stage).as_posix(), ROOT_OWNED)
    progress("protecting regions")
    protected = protect_in_place(rootfs.root, stage, options.fspf_key, regions, attributes=rootfs.attributes)
    rows = measure.rows_from_entries(
        e for e in protected.manifest.entries if e.protection is Protection.AUTHENTICATED
    )
    return protected, measure.measurement(binary, rows, options.heap, options.stack)


Layers = list[tuple[Descriptor, Path | None]]
"""The new image's layers, each with its file when it is new (``None``: the native image's, as it was)."""


def _assemble(
    options: SconifyOptions,
    source: ImageSource,
    native: ResolvedImage,
    holds_plaintext: list[bool],
    stage: Path,
    mrenclave: str,
    scratch: Path,
    progress: Progress,
) -> tuple[Layers, bytes, tuple[Descriptor, Path]]:
    """Step 4: the new image — the native layers (rewritten where they held plaintext), the sconifier's
    layer, the config and the manifest."""
    manifest, config = native.manifest, native.config
    layers: Layers = []
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(manifest.layers):
        raise ImageError("image config: rootfs.diff_ids does not list every layer")
    for index, layer in enumerate(manifest.layers):
        if not holds_plaintext[index]:
            layers.append((layer, None))
            continue
        progress(f"rewriting layer {index + 1} without the plaintext of {', '.join(options.dirs)}")
        written = _rewrite(source, layer, index, options.dirs, scratch / f"rewritten-{index}.tar.gz")
        layers.append((Descriptor(OCI_LAYER_GZIP, written.digest, written.size), written.path))
        diff_ids[index] = written.diff_id
    added = write_tree_layer(stage, scratch / "sconify-layer.tar.gz")
    layers.append((Descriptor(OCI_LAYER_GZIP, added.digest, added.size), added.path))
    diff_ids.append(added.diff_id)

    new_config = _config(config, diff_ids, options, native.reference, mrenclave)
    config_path = scratch / "config.json"
    config_path.write_bytes(new_config)
    config_descriptor = Descriptor(OCI_CONFIG, sha256_digest(new_config), len(new_config))
    manifest_bytes = manifest_json(config_descriptor, [descriptor for descriptor, _ in layers])
    return layers, manifest_bytes, (config_descriptor, config_path)


def _publish(
    options: SconifyOptions,
    source: ImageSource,
    layers: Layers,
    config: tuple[Descriptor, Path],
    manifest_bytes: bytes,
    scratch: Path,
    progress: Progress,
) -> tuple[ImageReference, int, int]:
    """Step 5: the image pushed to its destination (nothing, in a dry run): its reference by digest, and the
    blobs uploaded and already present."""
    if options.dry_run:
        return options.destination.with_digest(sha256_digest(manifest_bytes)), 0, 0
    with open_destination(options.destination, options.registry) as destination:
        uploaded, present, image = push_image(
            destination, source, layers, config, manifest_bytes, scratch, progress
        )
    return image, uploaded, present


def _stage_runtime(
    stage: Path, rootfs: RootFilesystem, options: SconifyOptions, architecture: str, progress: Progress
) -> None:
    """Write what the new layer adds (besides /fspf) to ``stage`` and into the root file system: the runtime
    binary for the image's architecture as its entrypoint, the CAS pin, the volumes' mount points."""
    try:
        runtime = runtime_binary(architecture)
    except RuntimeMissingError as error:
        raise ImageError(str(error)) from None
    progress(f"runtime for {architecture} ({runtime.stat().st_size} bytes)")
    files = {RUNTIME_ENTRYPOINT: (runtime.read_bytes(), 0o755)}
    if options.cas_ca_certificate:
        files[CAS_PIN] = (options.cas_ca_certificate, 0o644)
    directories = [f"{VOLUME_STORAGE}/{name}" for name, _ in options.volumes]
    directories += [path for _, path in options.volumes if rootfs.lstat(path) is None]
    directories += [path for path in options.writable if not _present(rootfs, path)]
    # Mount points the container runtime would otherwise make at start, inside the authenticated root.
    # (A container file's directory, not the file: the runtime makes or mounts the file there.)
    container_directories = {posixpath.dirname(path) for path in CONTAINER_FILES}
    mount_points = (*SYSTEM_DIRECTORIES, *SCRATCH_DIRECTORIES, *sorted(container_directories))
    made = [path for path in mount_points if not _present(rootfs, path)]
    directories += made
    for base in (stage, rootfs.root):
        for path, (content, mode) in files.items():
            location = base / path.lstrip("/")
            location.parent.mkdir(parents=True, exist_ok=True)
            location.write_bytes(content)
            location.chmod(mode)
        for path in directories:
            (base / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for location in [stage, *[p for p in stage.rglob("*") if p.is_dir()]]:
        location.chmod(0o755)
    for path in made:
        if path.endswith("tmp"):  # /tmp and /var/tmp: anyone may write, only the owner may remove
            for base in (stage, rootfs.root):
                (base / path.lstrip("/")).chmod(0o1777)


def _present(rootfs: RootFilesystem, path: str) -> bool:
    """``path`` is in the image, itself or through a link on its way (Debian's ``/var/run``)."""
    return rootfs.lstat(path) is not None or resolve_inside(rootfs.root, path, follow_last=True).exists()


def _rewrite(
    source: ImageSource, layer: Descriptor, index: int, directories: tuple[str, ...], path: Path
) -> WrittenLayer:
    with LayerWriter(path) as writer:
        for entry in read_layer(source.blob(layer), layer.media_type, f"layer {index}"):
            if _entry_removed(entry.path, directories):
                continue
            member = entry.member
            if member.islnk() and _below("/" + member.linkname.lstrip("/"), directories):
                raise ImageError(
                    f"layer {index}: {entry.path} is a hard link into encrypted directory "
                    f"{member.linkname}; it would keep the plaintext reachable"
                )
            writer.add(member, entry.content)
        return writer.finish()


def _mounts(options: SconifyOptions) -> tuple[Mount, ...]:
    return mounts_for(options.volumes, options.dirs)


def mounts_for(volumes: Sequence[tuple[str, str]], dirs: Sequence[str]) -> tuple[Mount, ...]:
    """How an image sconified with ``volumes`` (name, path) and encrypted ``dirs`` must be run: it follows
    from those inputs alone, so a deployment can be declared before the image is built."""
    mounts = []
    for name, path in volumes:
        mounts.append(Mount(f"{VOLUME_STORAGE}/{name}", MountKind.CIPHERTEXT_VOLUME, name))
        mounts.append(Mount(path, MountKind.TMPFS, name))
    mounts += [Mount(directory, MountKind.TMPFS) for directory in dirs]
    return tuple(mounts)


def _config(
    native: dict[str, Any],
    diff_ids: list[str],
    options: SconifyOptions,
    native_reference: ImageReference,
    mrenclave: str,
) -> bytes:
    config = json.loads(json.dumps(native))  # a deep copy
    runtime = config.setdefault("config", {}) or {}
    config["config"] = runtime
    environment = [
        v for v in runtime.get("Env") or [] if not v.startswith(("SCONE_CONFIG_ID=", "SCONE_CAS_"))
    ]
    environment.append(f"SCONE_CONFIG_ID={options.config_id}")
    if options.cas_attestation_address:
        environment.append(f"SCONE_CAS_ADDR={options.cas_attestation_address}")
    if options.cas_ca_certificate:
        environment.append(f"SCONE_CAS_CA={CAS_PIN}")
    runtime["Env"] = environment
    runtime["Entrypoint"] = [RUNTIME_ENTRYPOINT]
    runtime["Cmd"] = None
    labels = dict(runtime.get("Labels") or {})
    labels.update(
        {
            "io.sconify.engine": "open",
            "io.sconify.engine-version": __version__,
            "io.sconify.native-image": native_reference.pinned
            if native_reference.transport is Transport.DOCKER
            else native_reference.digest or "",
            "io.sconify.mrenclave": mrenclave,
        }
    )
    runtime["Labels"] = labels
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    history = list(config.get("history") or [])
    history.append(
        {
            "created_by": f"sconify image (pulumi-sconify {__version__})",
            "comment": "confidential image: encrypted regions, runtime, /fspf",
        }
    )
    config["history"] = history
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def push_image(
    destination: ImageDestination,
    source: ImageSource,
    layers: Layers,
    config: tuple[Descriptor, Path],
    manifest: bytes,
    scratch: Path,
    progress: Progress,
) -> tuple[int, int, ImageReference]:
    """Upload what ``destination`` lacks — new layers from their files, unchanged ones (``None``) copied
    from ``source`` — then the manifest. Returns (uploaded, present, image)."""
    uploaded = present = 0
    for descriptor, local in [*layers, config]:
        if destination.has_blob(descriptor.digest):
            present += 1
            continue
        blob = local or scratch / f"blob-{descriptor.digest.removeprefix('sha256:')}"
        if local is None and not blob.exists():  # kept while reading, unless it was never read
            progress(f"copying blob {descriptor.digest[:19]} ({descriptor.size} bytes)")
            with blob.open("wb") as sink:
                for chunk in source.blob(descriptor):
                    sink.write(chunk)
        else:
            progress(f"uploading blob {descriptor.digest[:19]} ({descriptor.size} bytes)")
        destination.put_blob(descriptor, blob)
        if local is None:
            blob.unlink()
        uploaded += 1
    image = destination.put_manifest(manifest, OCI_MANIFEST)
    return uploaded, present, image
