"""The CAS image: a base image with Python, plus one layer holding the CAS and its dependencies.

``CasDeployment`` runs the open engine's CAS in a cluster; its image is made here, by the same image
code as confidential images, so no Dockerfile or Docker daemon is involved. The layer holds
``/opt/sconify/lib``: wheels of the CAS's dependencies for the base image's Python, C library and
architecture (from PyPI, cached) and this package's engine code (without the
Pulumi resources, which the CAS never imports). The entrypoint is ``python3 -m
pulumi_sconify.engine.cli`` on the base image's own interpreter; the container runs as user 10001.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..layout import CAS_DATA_DIRECTORY, CAS_LIBRARY
from ..version import __version__
from ..vocabulary import ATTESTATION_PORT, CLIENT_PORT
from . import wheels
from .layers import read_layer, write_tree_layer
from .oci import OCI_CONFIG, OCI_LAYER_GZIP, Descriptor, ImageError, Platform, manifest_json
from .reference import ImageReference
from .registry import sha256_digest
from .rootfs import RootFilesystem
from .sconify import Progress, push_image
from .transport import RegistryOptions, open_destination, open_source

USER = "10001:10001"
REQUIREMENTS = (
    "twisted[tls]>=24.3",
    "pyopenssl>=24",
    "cryptography>=43",
    "pyyaml>=6.0.1",
    "httpx>=0.27",
    "pyjwt>=2.8",
    "psycopg[binary]>=3.2",
    "pynacl>=1.5",
)
"""What the CAS and the CLI import (``pyproject.toml`` lists the same, with Pulumi's SDKs besides)."""
GLIBC_REQUIREMENTS = ("dcap-qvl>=0.7",)
"""What the CAS imports only to verify TDX quotes, and PyPI has for glibc only: a CAS on a musl base
verifies every other kind of evidence and says so if a policy asks for TDX."""
LEFT_OUT = ("__pycache__", "*.pyc", "bin")
"""Bytecode, and the runtime binaries for confidential images (``runtime/bin``): the CAS runs none of them."""
_PYTHON_FILES = re.compile(r"/usr(/local)?/(bin/python3(\.\d+)?|lib/python3\.\d+/os\.py)|/lib/ld-musl-[^/]+")


@dataclass(frozen=True)
class CasImageOptions:
    base: ImageReference
    """An image with Python 3.11 or later (``/usr/local/bin/python3`` as in ``python:3.12-slim``, or the
    distribution's ``/usr/bin/python3``)."""
    destination: ImageReference
    command: tuple[str, ...]
    """The image's default command (its ``Cmd``): ``cas serve`` and its flags, as
    ``engine.cli.cas.default_serve_command`` writes them from the CLI's own parser."""
    platform: Platform = field(default_factory=Platform)
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    base_digest: str | None = None
    """When given, the manifest digest ``base`` must still resolve to (what a preview showed)."""


def build_cas_image(options: CasImageOptions, progress: Progress = lambda _: None) -> ImageReference:
    """Build and push the CAS image; returns it pinned by digest."""
    with open_source(options.base, options.registry) as source:
        base = source.resolve(options.platform)
        if options.base_digest and base.manifest_digest != options.base_digest:
            raise ImageError(
                f"{options.base} moved: it is {base.manifest_digest} now, {options.base_digest} when checked"
            )
        progress(f"base image {base.reference}")
        with tempfile.TemporaryDirectory(prefix="sconify-cas-image-") as directory:
            scratch = Path(directory)
            rootfs = RootFilesystem(scratch / "rootfs", lambda path: bool(_PYTHON_FILES.fullmatch(path)))
            for index, layer in enumerate(base.manifest.layers):
                rootfs.apply(read_layer(source.blob(layer), layer.media_type, f"base layer {index}"))
            architecture = str(base.config.get("architecture") or options.platform.architecture)
            try:
                target = wheels.detect_target(rootfs.root, architecture, ("/usr/local", "/usr"))
                progress(
                    f"Python {target.python} ({target.libc}, {target.architecture}) at {target.executable}"
                )
                stage = scratch / "stage"
                library = stage / CAS_LIBRARY.lstrip("/")
                fetched = wheels.fetch_wheels(
                    target,
                    requirements=REQUIREMENTS + (GLIBC_REQUIREMENTS if target.libc == "glibc" else ()),
                    with_dependencies=True,
                    name="cas",
                    progress=progress,
                )
                wheels.unpack_wheels(fetched, library)
            except wheels.WheelsError as error:
                raise ImageError(f"{options.base}: {error}") from None
            _copy_engine(library)
            for path in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
                path.chmod(0o755)
            layer_file = write_tree_layer(stage, scratch / "cas-layer.tar.gz")
            diff_ids = [*(base.config.get("rootfs") or {}).get("diff_ids", []), layer_file.diff_id]
            config = _config(base.config, diff_ids, target.executable, base.reference, options.command)
            config_path = scratch / "config.json"
            config_path.write_bytes(config)
            config_descriptor = Descriptor(OCI_CONFIG, sha256_digest(config), len(config))
            new_layer = Descriptor(OCI_LAYER_GZIP, layer_file.digest, layer_file.size)
            layers: list[tuple[Descriptor, Path | None]] = [(layer, None) for layer in base.manifest.layers]
            layers.append((new_layer, layer_file.path))
            manifest = manifest_json(config_descriptor, [descriptor for descriptor, _ in layers])
            with open_destination(options.destination, options.registry) as destination:
                _, _, image = push_image(
                    destination, source, layers, (config_descriptor, config_path), manifest, scratch, progress
                )
            return image


def _copy_engine(library: Path) -> None:
    engine = Path(__file__).resolve().parents[1]
    package = library / "pulumi_sconify"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""pulumi-sconify, as the CAS image carries it."""\n')
    shutil.copytree(engine, package / "engine", ignore=shutil.ignore_patterns(*LEFT_OUT))


def _config(
    base: dict[str, Any],
    diff_ids: list[str],
    executable: str,
    base_reference: ImageReference,
    command: tuple[str, ...],
) -> bytes:
    config = json.loads(json.dumps(base))
    runtime = config.get("config") or {}
    environment = [v for v in runtime.get("Env") or [] if not v.startswith("PYTHONPATH=")]
    runtime.update(
        {
            "Env": [*environment, f"PYTHONPATH={CAS_LIBRARY}", "PYTHONDONTWRITEBYTECODE=1"],
            "Entrypoint": [executable, "-m", "pulumi_sconify.engine.cli"],
            "Cmd": list(command),
            "User": USER,
            "ExposedPorts": {f"{CLIENT_PORT}/tcp": {}, f"{ATTESTATION_PORT}/tcp": {}},
            "Volumes": {CAS_DATA_DIRECTORY: {}},
            "Labels": {
                **(runtime.get("Labels") or {}),
                "io.sconify.component": "cas",
                "io.sconify.engine-version": __version__,
                "io.sconify.base-image": base_reference.pinned
                if base_reference.digest
                else str(base_reference),
            },
        }
    )
    config["config"] = runtime
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [
        *(config.get("history") or []),
        {
            "created_by": f"sconify cas image (pulumi-sconify {__version__})",
            "comment": "the open engine's CAS",
        },
    ]
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
