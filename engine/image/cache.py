"""Remember sconify results, so that an identical re-run costs little more than digest checks.

An entry is keyed by everything that determines the confidential image — the native manifest digest,
the options, and an identifier derived from the FSPF key (never the key) — and holds the resulting
manifest and config (public by nature: they are pushed to the registry), the measurement and the tag.
A re-run with the same key finds the entry, checks that the destination still has every blob, and only
writes the manifest again. Anything missing means a full run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..version import __version__


def cache_directory() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pulumi-sconify" / "sconify"


@dataclass(frozen=True)
class CachedResult:
    manifest: bytes
    config: bytes
    blobs: tuple[str, ...]
    """Every blob digest the manifest refers to (layers and config)."""
    mrenclave: str
    fspf_tag: str
    binary: str


def cache_key(native_digest: str, fspf_key: bytes, settings: dict[str, Any]) -> str:
    key_id = hmac.new(fspf_key, b"sconify-cache-v1", hashlib.sha256).hexdigest()
    document = {"native": native_digest, "key": key_id, "settings": settings, "engine": __version__}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def load(key: str) -> CachedResult | None:
    try:
        data = json.loads((cache_directory() / f"{key}.json").read_text())
        return CachedResult(
            data["manifest"].encode(),
            data["config"].encode(),
            tuple(data["blobs"]),
            data["mrenclave"],
            data["fspf_tag"],
            data["binary"],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no entry, or an unreadable one: a full run rewrites it


def store(key: str, result: CachedResult) -> None:
    directory = cache_directory()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = directory / f"{key}.json.tmp"
    temporary.write_text(
        json.dumps(
            {
                "manifest": result.manifest.decode(),
                "config": result.config.decode(),
                "blobs": list(result.blobs),
                "mrenclave": result.mrenclave,
                "fspf_tag": result.fspf_tag,
                "binary": result.binary,
            }
        )
    )
    temporary.replace(directory / f"{key}.json")
