"""The shared test vectors of the two implementations of one format: the engine (Python) writes FSPF metadata,
chunks, volumes, the protocol's byte strings and measurements; the runtime (Go, ``runtime/``) reads and
recomputes them. Both test suites check the committed vectors in ``tests/fixtures/runtime-vectors``: the
Python side that it still writes exactly these (``tests/runtime/test_vectors.py``), the Go side that it reads
them to the same result (``runtime/internal/*/vectors_test.go``).

Every vector is deterministic (fixed keys, derived nonces) except the committed volume, whose keys and
names are random by design: it is written once and only read since.

    python -m tests.support.runtime_vectors          # write them (after a deliberate format change;
                                                     # the volume only when tests/fixtures/.../volume is gone)
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from pulumi_sconify.engine import layout, vocabulary
from pulumi_sconify.engine.fspf import chunks
from pulumi_sconify.engine.fspf.anchor import AnchorState
from pulumi_sconify.engine.fspf.attributes import Attributes
from pulumi_sconify.engine.fspf.metadata import (
    Entry,
    Manifest,
    Protection,
    Region,
    image_context,
    seal,
    volume_context,
)
from pulumi_sconify.engine.runtime import measure, protocol

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "runtime-vectors"
VOLUME_NAME = "V1"
VOLUME_STATE = VECTORS / "volume" / "anchor.json"


def _key(label: str) -> bytes:
    return hashlib.sha256(f"sconify-test-vector {label}".encode()).digest()


def layout_vector() -> dict[str, Any]:
    """The in-image paths and the vocabulary the runtime has its own copy of."""
    return {
        "RuntimeDir": layout.RUNTIME_DIR,
        "RuntimeEntrypoint": layout.RUNTIME_ENTRYPOINT,
        "MeasurementPlan": layout.MEASUREMENT_PLAN,
        "CasPin": layout.CAS_PIN,
        "VolumeStorage": layout.VOLUME_STORAGE,
        "FspfDir": layout.FSPF_DIR,
        "FspfMetadata": layout.FSPF_METADATA,
        "FspfData": layout.FSPF_DATA,
        "KubernetesToken": layout.KUBERNETES_TOKEN,
        "AttestationPort": vocabulary.ATTESTATION_PORT,
        "EvidenceKinds": [
            vocabulary.KUBERNETES,
            vocabulary.INSECURE_SOFTWARE_EVIDENCE,
            vocabulary.SEV_SNP,
            vocabulary.TDX,
            vocabulary.AZURE_CVM,
        ],
        "NoncePath": protocol.NONCE_PATH,
        "AttestPath": protocol.ATTEST_PATH,
        "VolumeStatePath": protocol.VOLUME_STATE_PATH,
        "SignatureHeader": protocol.SIGNATURE_HEADER,
    }


def protocol_vector() -> dict[str, Any]:
    bindings = []
    for index in range(3):
        nonce, runtime_key = _key(f"nonce {index}")[:16], _key(f"runtime key {index}")
        binding = protocol.evidence_binding(nonce.hex(), runtime_key)
        bindings.append(
            {
                "nonce": nonce.hex(),
                "runtime_key": runtime_key.hex(),
                "binding": binding.hex(),
                "report_data": protocol.hardware_report_data(binding).hex(),
            }
        )
    requests = [
        {"method": method, "path": path, "body": body.hex(), "credential": credential}
        for method, path, body, credential in (
            ("GET", "/v1/volumes/V1/state", b"", "credential-1"),
            ("POST", "/v1/volumes/V1/state", b'{"expected":{"generation":0,"tag":null}}', "credential-2"),
            ("POST", "/v1/volumes/data%2Fdb/state", b"\x00\xff", ""),
        )
    ]
    for request in requests:
        signing_input = protocol.request_signing_input(
            str(request["method"]),
            str(request["path"]),
            bytes.fromhex(request["body"]),
            request["credential"],
        )
        request["signing_input"] = signing_input.hex()
    addresses = [
        {"address": address, "host": host, "port": port}
        for address in (
            "cas",
            "cas:9000",
            "10.0.0.7",
            "10.0.0.7:18765",
            "fd00::7",
            "[fd00::7]",
            "[fd00::7]:9000",
        )
        for host, port in [vocabulary.cas_host_and_port(address, vocabulary.ATTESTATION_PORT)]
    ]
    return {"bindings": bindings, "requests": requests, "addresses": addresses}


_SURROGATE_PATH = b"/caf\xe9/\xff"
"""A path that is not UTF-8: Python walks it as surrogate escapes, Go as raw bytes."""


def measurement_vector() -> list[dict[str, Any]]:
    """Measurements over rows whose paths test canonical JSON: ASCII, a quote and backslash, control
    characters, DEL, characters beyond ASCII and the BMP, and bytes that are not UTF-8."""
    paths = [
        b"/usr/bin/python3",
        b'/odd/"quoted"\\back',
        b"/odd/tab\there\nnewline\x7fdel\x01",
        "/odd/caf\u00e9/\u4e2d/\U0001f600".encode(),
        _SURROGATE_PATH,
    ]
    cases = []
    for index, raw in enumerate(paths):
        path = raw.decode("utf-8", "surrogateescape")
        rows: list[list[object]] = [
            ["/sconify", "dir", 0o755, 0, ""],
            [
                path,
                "file",
                0o644 | (0o4000 if index == 1 else 0),
                1234567 * index,
                _key(f"content {index}").hex(),
            ],
            [path + "-link", "symlink", 0o777, 0, "../target"],
        ]
        cases.append(
            {
                "binary": "/usr/bin/python3",
                "heap": "64M" if index else "",
                "stack": "",
                "rows": [_hex_strings(row) for row in rows],
                "measurement": measure.measurement(
                    "/usr/bin/python3", measure.rows_from_entries(_entries(rows)), "64M" if index else "", ""
                ),
            }
        )
    # What not everyone may read counts by its metadata only: a closed directory's content is left out, an
    # unreadable file's hash is empty (the same measurement whoever the runtime runs as).
    rows = [
        ["/etc/shadow", "file", 0o640, 900, _key("shadow").hex()],
        ["/root", "dir", 0o700, 0, ""],
        ["/root/.profile", "file", 0o644, 10, _key("profile").hex()],
        ["/srv", "dir", 0o711, 0, ""],
        ["/srv/app", "file", 0o755, 10, _key("app").hex()],
    ]
    cases.append(
        {
            "binary": "/srv/app",
            "heap": "",
            "stack": "",
            "rows": [_hex_strings(row) for row in rows],
            "measurement": measure.measurement("/srv/app", measure.rows_from_entries(_entries(rows)), "", ""),
        }
    )
    return cases


def _entries(rows: list[list[object]]) -> list[Entry]:
    """Authenticated entries as the sconifier seals them, from ``[path, type, mode, size, detail]`` rows."""
    entries = []
    for path, kind, mode, size, detail in rows:
        if kind == "symlink":
            entries.append(
                Entry(str(path), "symlink", Protection.AUTHENTICATED, mode=0o777, target=str(detail))
            )
        elif kind == "dir":
            entries.append(Entry(str(path), "dir", Protection.AUTHENTICATED, mode=int(str(mode))))
        else:
            entries.append(
                Entry(
                    str(path),
                    "file",
                    Protection.AUTHENTICATED,
                    mode=int(str(mode)),
                    size=int(str(size)),
                    digest=bytes.fromhex(str(detail)),
                )
            )
    return entries


def _hex_strings(row: list[object]) -> list[object]:
    """A row with its strings as the hex of their bytes (so a path that is not UTF-8 survives JSON)."""
    return [
        value.encode("utf-8", "surrogateescape").hex() if isinstance(value, str) else value for value in row
    ]


def pattern(size: int) -> bytes:
    """The content of a vector's file of ``size`` bytes: ``(index * 7 + size) % 256`` for each byte."""
    return bytes((index * 7 + size) % 256 for index in range(size))


def chunk_vector() -> list[dict[str, Any]]:
    """Files encrypted and authenticated in chunks: empty, one partial chunk, exactly one, several."""
    cases = []
    for size, chunk_size in ((0, 16), (5, 16), (16, 16), (100, 16), (140000, chunks.DEFAULT_CHUNK_SIZE)):
        key, path = _key(f"file {size}"), f"/code/file-{size}"
        plain = pattern(size)
        sealed = io.BytesIO()
        chunks.encrypt_file(key, path, io.BytesIO(plain), sealed, size, chunk_size)
        tags = chunks.authenticate_file(key, path, io.BytesIO(plain), size, chunk_size)
        cases.append(
            {
                "key": key.hex(),
                "path": path,
                "size": size,
                "chunk_size": chunk_size,
                "ciphertext_sha256": hashlib.sha256(sealed.getvalue()).hexdigest(),
                "tags": tags.hex(),
            }
        )
    return cases


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "type": entry.type,
        "protection": entry.protection.value,
        "mode": entry.mode,
        "size": entry.size,
        "key": entry.key.hex(),
        "blob": entry.blob or "",
        "tags": entry.tags.hex(),
        "target": entry.target or "",
        "digest": entry.digest.hex(),
        "uid": entry.attributes.uid,
        "gid": entry.attributes.gid,
        "xattrs": {name: value.hex() for name, value in entry.attributes.xattrs},
    }


def metadata_vector() -> list[dict[str, Any]]:
    """Sealed metadata of an image and of a volume state (derived nonces), with what they hold."""
    key = _key("metadata")
    image = Manifest(
        kind="image",
        chunk_size=chunks.DEFAULT_CHUNK_SIZE,
        regions=(
            Region("/", Protection.NOT_PROTECTED),
            Region("/code", Protection.ENCRYPTED),
            Region("/usr", Protection.AUTHENTICATED),
        ),
        entries=(
            Entry("/code", "dir", Protection.ENCRYPTED, mode=0o755),
            Entry(
                "/code/app.py",
                "file",
                Protection.ENCRYPTED,
                mode=0o644,
                size=10,
                key=_key("app"),
                blob="ab12",
            ),
            Entry(
                "/usr/bin/ping",
                "file",
                Protection.AUTHENTICATED,
                mode=0o4755,
                size=3,
                key=_key("ping"),
                tags=_key("tags")[:16],
                digest=_key("digest"),
                attributes=Attributes.of(0, 1000, {"security.capability": b"\x01\x02", "user.note": b"x"}),
            ),
            Entry("/usr/lib64", "symlink", Protection.AUTHENTICATED, mode=0o777, target="lib"),
        ),
    )
    volume = Manifest(
        kind="volume",
        chunk_size=chunks.DEFAULT_CHUNK_SIZE,
        entries=(
            Entry(
                "/num",
                "file",
                Protection.ENCRYPTED,
                mode=0o600,
                size=2,
                key=_key("num"),
                blob="cd34",
                digest=_key("d"),
            ),
        ),
        volume="V1",
        generation=7,
    )
    cases = []
    for manifest, context in ((image, image_context()), (volume, volume_context("V1", 7))):
        sealed, tag = seal(manifest, key, context, deterministic=True)
        cases.append(
            {
                "key": key.hex(),
                "context": context.hex(),
                "sealed": sealed.hex(),
                "tag": tag.hex(),
                "kind": manifest.kind,
                "volume": manifest.volume or "",
                "generation": manifest.generation or 0,
                "regions": [[r.path, r.protection.value] for r in manifest.regions],
                "entries": [_entry_json(e) for e in manifest.entries],
            }
        )
    return cases


def write_volume(directory: Path) -> AnchorState:
    """A volume committed by the engine: a file, a directory, a link, an empty file (random keys)."""
    from pulumi_sconify.engine.fspf import InMemoryAnchor, Volume

    anchor = InMemoryAnchor()
    storage, workdir = directory / "storage", directory / "plain"
    storage.mkdir(parents=True)
    workdir.mkdir()
    volume = Volume.open(
        storage, workdir, name=VOLUME_NAME, key=_key("volume"), anchor=anchor, mount_path="/V1"
    )
    for (path, content), mode in volume_files().items():
        location = workdir / path.lstrip("/")
        if content == "dir":
            location.mkdir(mode)
        elif content.startswith("->"):
            location.symlink_to(content[2:])
        else:
            location.write_bytes(pattern(int(content)))
            location.chmod(mode)
    volume.commit()
    state = anchor.current(VOLUME_NAME)
    assert state is not None
    return state


def volume_files() -> dict[tuple[str, str], int]:
    """(path, content: the size of its :func:`pattern`, ``dir`` or ``->target``) to mode."""
    return {
        ("/num", "2"): 0o600,
        ("/data", "dir"): 0o755,
        ("/data/big", "150000"): 0o640,
        ("/data/empty", "0"): 0o644,
        ("/data/link", "->../num"): 0o777,
    }


def deterministic() -> dict[str, Any]:
    """Every vector that the engine must still write byte for byte."""
    return {
        "layout.json": layout_vector(),
        "protocol.json": protocol_vector(),
        "measurement.json": measurement_vector(),
        "chunks.json": chunk_vector(),
        "metadata.json": metadata_vector(),
    }


def render(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


def main() -> int:
    for name, value in deterministic().items():
        (VECTORS / name).write_text(render(value))
    if VOLUME_STATE.exists():
        return 0  # the committed volume is written once (its keys are random) and only read since
    state = write_volume(VECTORS / "volume")
    shutil.rmtree(VECTORS / "volume" / "plain")
    files = [
        {"path": path, "content": content, "mode": mode} for (path, content), mode in volume_files().items()
    ]
    VOLUME_STATE.write_text(
        render(
            {
                "name": VOLUME_NAME,
                "key": _key("volume").hex(),
                "generation": state.generation,
                "tag": state.tag.hex(),
                "files": files,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
