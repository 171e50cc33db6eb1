"""Backups of a CAS: consistent, encrypted, verifiable — and a restore that never rolls back silently.

A backup is taken online (``sconify cas backup``): the rows are read under one snapshot while the CAS goes
on serving. The file::

    "SCONIFY-CAS-BACKUP 1\\n"
    header  one line of JSON: when, the audit head it ends at, the master key sealed to each recovery
            key (public values and ciphertext only), the CAS's origin signed by its CA, a random salt
    chunks  [u32 length][AES-256-GCM ciphertext] ..., of JSON lines, one row each

The chunk key is HKDF-SHA256 of the master key and the salt; chunk *i* has nonce *i*, and its associated
data is the header, *i* and whether it is the last — so chunks cannot be reordered, dropped or cut off at a
chunk boundary unnoticed. Verifying a backup restores it into a scratch SQLite store under the same master
key: every audit entry's MAC, the sealed head, the row MACs and the replay of the log must agree.

**Restoring never rolls back silently.** A backup ends at an audit entry. If the target already went past
it — or went elsewhere — the restore would set every volume back to what the backup knew, which is exactly
the rollback the CAS exists to stop: it is refused unless ``--allow-rollback`` is given, and then the
audit log says so (``store.restored`` with ``rollback_allowed``). A target that holds nothing cannot tell
whether commits were made after the backup was taken, so it too needs ``--allow-rollback``: the person
restoring is saying that they know.

**A backup names its CAS.** Its header carries the origin the CAS's CA signed (:mod:`.recovery`):
``cas recover --backup`` requires the CA the owner pins and refuses a backup whose master key that CA did not
vouch for; ``verify`` and ``restore`` do the same when given it (``--cas-ca``), and in any case refuse a
backup that does not open under the master key in hand — another CAS's — naming why.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...errors import EXIT_USAGE, SconifyError
from .anchor import Anchor
from .recovery import origin_problem
from .store import Store, recovery_copies_of

MAGIC = b"SCONIFY-CAS-BACKUP 1\n"
CHUNK_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")
_MAX_CHUNK = CHUNK_BYTES + 4096 + 16
_MAX_HEADER = 1 << 20


class BackupError(SconifyError):
    """A backup that cannot be written, read or trusted, or a restore that is refused."""

    exit_code = EXIT_USAGE


def _key(master_key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=salt, info=b"sconify-cas-backup-v1").derive(master_key))


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


def _encode(value: Any) -> Any:
    return {"$b": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def _decode(value: Any) -> Any:
    return base64.b64decode(value["$b"]) if isinstance(value, dict) else value


def write_backup(store: Store, master_key: bytes, out: Path) -> dict[str, Any]:
    """Write a backup of ``store`` to ``out`` (which must not exist); returns its header."""
    salt = os.urandom(16)
    rows = store.export_rows()
    lines: list[bytes] = []
    head: tuple[int, str] | None = None
    meta: dict[str, str] = {}
    # The snapshot is read once: the audit head and recovery copies come from the rows themselves.
    for table, row in rows:
        lines.append(json.dumps([table, [_encode(v) for v in row]], separators=(",", ":")).encode() + b"\n")
        if table == "meta":
            meta[str(row[0])] = str(row[1])
        if table == "meta" and row[0] == "audit_head":
            sealed = json.loads(row[1])
            head = (int(sealed["seq"]), str(sealed["hash"]))
    if head is None:
        raise BackupError("the store has no sealed audit head: start the CAS once before backing it up")
    header_fields = {
        "created": time.time(),
        "audit_head": {"seq": head[0], "hash": head[1]},
        "recovery": recovery_copies_of(meta),
        "origin": meta.get("origin"),
        "salt": salt.hex(),
    }
    header = json.dumps(header_fields, sort_keys=True).encode() + b"\n"
    aead = _key(master_key, salt)
    if out.exists():
        raise BackupError(f"{out}: exists; refusing to overwrite it")
    partial = out.with_name(out.name + ".partial")
    try:
        sink = partial.open("xb")
    except FileExistsError:
        raise BackupError(f"{partial}: exists (another backup being written?)") from None
    try:
        with sink:
            sink.write(MAGIC + header)
            _write_chunks(sink, aead, header, b"".join(lines))
            sink.flush()
            os.fsync(sink.fileno())
        os.link(partial, out)  # never replaces a file that appeared meanwhile
    except FileExistsError:
        raise BackupError(f"{out}: exists; refusing to overwrite it") from None
    finally:
        partial.unlink()
    return header_fields


def _write_chunks(sink: IO[bytes], aead: AESGCM, header: bytes, body: bytes) -> None:
    pieces = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)] or [b""]
    for index, piece in enumerate(pieces):
        sealed = aead.encrypt(index.to_bytes(12, "big"), piece, _aad(header, index, index == len(pieces) - 1))
        sink.write(_LENGTH.pack(len(sealed)) + sealed)


def read_header(path: Path) -> dict[str, Any]:
    """The backup's header (readable without the master key: the recovery copies are in it)."""
    with _open(path) as (header_fields, _, _):
        return header_fields


class _open:  # noqa: N801 - a context manager used like a function
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[dict[str, Any], bytes, IO[bytes]]:
        try:
            self.stream = self.path.open("rb")
        except OSError as error:
            raise BackupError(f"{self.path}: cannot read ({error.strerror})") from None
        if self.stream.read(len(MAGIC)) != MAGIC:
            self.stream.close()
            raise BackupError(f"{self.path}: not a CAS backup")
        header = self.stream.readline(_MAX_HEADER)
        try:
            fields = json.loads(header)
            int(fields["audit_head"]["seq"]), bytes.fromhex(fields["salt"])
        except (ValueError, KeyError, TypeError):
            self.stream.close()
            raise BackupError(f"{self.path}: its header is damaged") from None
        return fields, header, self.stream

    def __exit__(self, *_: object) -> None:
        self.stream.close()


def read_rows(path: Path, master_key: bytes) -> tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]:
    """The header and every row, after checking each chunk (order, completeness, integrity)."""
    with _open(path) as (fields, header, stream):
        aead = _key(master_key, bytes.fromhex(fields["salt"]))
        body = b"".join(_chunks(path, stream, aead, header))
    try:
        rows = [
            (str(t), tuple(_decode(v) for v in r))
            for t, r in (json.loads(line) for line in body.splitlines())
        ]
    except (ValueError, TypeError):
        raise BackupError(f"{path}: its rows are not understood") from None
    return fields, rows


def _chunks(path: Path, stream: IO[bytes], aead: AESGCM, header: bytes) -> Iterator[bytes]:
    index = 0
    while True:
        prefix = stream.read(_LENGTH.size)
        if len(prefix) < _LENGTH.size:
            raise BackupError(f"{path}: cut off (its last chunk is missing)")
        (length,) = _LENGTH.unpack(prefix)
        sealed = stream.read(length) if length <= _MAX_CHUNK else b""
        if len(sealed) != length:
            raise BackupError(f"{path}: cut off or damaged at chunk {index}")
        nonce = index.to_bytes(12, "big")
        for last in (False, True):
            try:
                plain = aead.decrypt(nonce, sealed, _aad(header, index, last))
            except InvalidTag:
                continue
            yield plain
            if last:
                if stream.read(1):
                    raise BackupError(f"{path}: data after its last chunk")
                return
            break
        else:
            raise BackupError(
                f"{path}: chunk {index} does not verify: a backup of another CAS (another master key), "
                "or the file was changed"
            )
        index += 1


def check_origin(path: Path, fields: dict[str, Any], master_key: bytes, pinned_ca: bytes | None) -> None:
    """Refuse a backup whose origin the pinned CA did not sign for ``master_key`` (no pin: nothing to
    check)."""
    if pinned_ca is None:
        return
    problem = origin_problem(fields.get("origin"), master_key, pinned_ca)
    if problem is not None:
        raise BackupError(f"{path}: not a backup of the CAS whose CA you pinned: {problem}")


def verify_backup(path: Path, master_key: bytes, pinned_ca: bytes | None = None) -> dict[str, Any]:
    """Check a backup completely: restore it into a scratch store and verify that as a CAS would at start."""
    check_origin(path, read_header(path), master_key, pinned_ca)
    fields, rows = read_rows(path, master_key)
    with (
        tempfile.TemporaryDirectory(prefix="sconify-backup-verify-") as scratch,
        Store(Path(scratch) / "cas.db", master_key) as store,
    ):
        store.replace_rows(rows, {"verification": True})
    return fields


def restore_backup(
    path: Path,
    master_key: bytes,
    store: Store,
    allow_rollback: bool,
    pinned_ca: bytes | None = None,
    anchor: Path | str | None = None,
) -> dict[str, Any]:
    """Replace ``store``'s state with the backup's, unless that would roll it back without permission;
    ``anchor`` (anchor.py), the store's, is set to the restored head. Returns what was recorded in the audit
    log."""
    check_origin(path, read_header(path), master_key, pinned_ca)
    fields, rows = read_rows(path, master_key)
    seq, digest = int(fields["audit_head"]["seq"]), str(fields["audit_head"]["hash"])
    target_seq, target_hash = store.audit_head()
    if target_seq == seq and target_hash == digest:
        raise BackupError(f"the store is already at this backup's state (audit entry {seq}); nothing to do")
    # Forward: the backup went on past everything the store holds (its log contains the store's head).
    forward = store.holds_state() and any(
        table == "audit" and row[0] == target_seq and row[5] == target_hash for table, row in rows
    )
    if not forward and not allow_rollback:
        if not store.holds_state():
            raise BackupError(
                "the store is empty, so nothing tells whether commits were made after this backup "
                f"(it ends at audit entry {seq}); restoring it sets every volume back to what it knew. "
                "If you know it is the latest, say so with --allow-rollback"
            )
        if store.audit_hash_at(seq) == digest:
            raise BackupError(
                f"the store went on past this backup (audit entry {target_seq}, the backup ends at {seq}): "
                "restoring it would roll back every volume committed since. Refused; --allow-rollback "
                "does it anyway, and the audit log will say so"
            )
        raise BackupError(
            f"the store's history is not this backup's (the backup ends at audit entry {seq}, which the "
            "store does not have): refused; --allow-rollback replaces it, and the audit log will say so"
        )
    record = {
        "backup_seq": seq,
        "backup_created": fields["created"],
        "replaced_seq": target_seq,
        "rollback_allowed": not forward,
    }
    store.replace_rows(rows, record)
    if anchor is not None:  # the operator allowed going back (recorded above): the anchor goes with it
        witness = Anchor(anchor, store.derived_key("anchor"))
        try:
            witness.reset(*store.audit_head())
        finally:
            witness.close()
    store.next_nonce_epoch()
    return record
