"""Just enough of a TPM 2.0 client to collect an Azure confidential VM's evidence: read an NV index (the
HCL report), read PCRs, and quote them with the vTPM's attestation key.

Commands are marshalled as the TCG's "TPM 2.0 Library, Part 3: Commands" defines them (big-endian,
a 10-byte header, handles, an authorisation area with the empty password session where the command
needs one) and sent to the kernel's resource manager (``/dev/tpmrm0``), one command and one response at
a time. This module ships into images: standard library only, no TSS.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from typing import Protocol

from ..errors import SconifyError

TPM_ST_NO_SESSIONS = 0x8001
TPM_ST_SESSIONS = 0x8002
TPM_CC_NV_READ = 0x0000014E
TPM_CC_QUOTE = 0x00000158
TPM_CC_NV_READ_PUBLIC = 0x00000169
TPM_CC_PCR_READ = 0x0000017E
TPM_RS_PW = 0x40000009
TPM_RH_OWNER = 0x40000001
TPM_ALG_SHA256 = 0x000B
TPM_ALG_NULL = 0x0010
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
TPMA_NV_OWNERREAD = 1 << 17
TPMA_NV_AUTHREAD = 1 << 18
NV_CHUNK = 1024
"""What one NV_Read asks for: every TPM's TPM_PT_NV_BUFFER_MAX is at least this."""
MAX_RESPONSE = 8192
RETRY_CODES = frozenset({0x908, 0x90A, 0x922})
"""TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_RETRY: the TPM did not start the command; send it again."""
MAX_RETRIES = 100
PCR_COUNT = 24
DEVICE = "/dev/tpmrm0"


class TpmError(SconifyError):
    """The TPM refused a command (with its response code) or could not be reached."""


class Transport(Protocol):
    def exchange(self, command: bytes) -> bytes: ...

    def close(self) -> None: ...


class DeviceTransport:
    """The kernel's TPM device: a write is one command, a read its whole response."""

    def __init__(self, path: str = DEVICE) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR)
        except OSError as error:
            raise TpmError(f"cannot open {path}: {error.strerror}") from None

    def exchange(self, command: bytes) -> bytes:
        os.write(self.fd, command)
        return os.read(self.fd, MAX_RESPONSE)

    def close(self) -> None:
        os.close(self.fd)


class SocketTransport:
    """A TPM simulator's command socket (swtpm's ``--server``): the same bytes over a stream."""

    def __init__(self, host: str, port: int) -> None:
        try:
            self.socket = socket.create_connection((host, port))
        except OSError as error:
            raise TpmError(f"cannot reach the TPM at {host}:{port}: {error.strerror}") from None

    def exchange(self, command: bytes) -> bytes:
        self.socket.sendall(command)
        header = self._receive(10)
        (size,) = struct.unpack_from(">I", header, 2)
        if not 10 <= size <= MAX_RESPONSE:
            raise TpmError(f"the TPM answered with a size of {size}")
        return header + self._receive(size - 10)

    def _receive(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.socket.recv(count - len(data))
            if not chunk:
                raise TpmError("the TPM closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.socket.close()


def _sized(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _pcr_selection(indexes: Iterable[int]) -> bytes:
    bitmap = bytearray(3)
    for index in indexes:
        bitmap[index // 8] |= 1 << (index % 8)
    return struct.pack(">IHB", 1, TPM_ALG_SHA256, 3) + bytes(bitmap)


_PASSWORD_SESSION = struct.pack(">IHBH", TPM_RS_PW, 0, 0, 0)
"""The empty password: what the vTPM's HCL index and attestation key are used with."""


class TpmReader:
    """Reads TPM structures (big-endian integers, ``TPM2B_*`` sized buffers) off ``data``; ``error`` is
    raised for bytes that end early or run on."""

    def __init__(self, data: bytes, what: str, error: type[Exception] = TpmError) -> None:
        self.data, self.offset, self.what, self.error = data, 0, what, error

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise self.error(f"{self.what} ends early")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def sized(self) -> bytes:
        """A ``TPM2B_*``: a 16-bit size and that many bytes."""
        return self.take(self.u16())

    def end(self) -> None:
        if self.offset != len(self.data):
            raise self.error(f"{self.what} has {len(self.data) - self.offset} bytes too many")


class Tpm:
    """A TPM reached through ``transport``."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def _command(
        self, code: int, handles: Iterable[int], parameters: bytes, *, authorised: bool
    ) -> TpmReader:
        body = b"".join(struct.pack(">I", handle) for handle in handles)
        if authorised:
            body += struct.pack(">I", len(_PASSWORD_SESSION)) + _PASSWORD_SESSION
        body += parameters
        tag = TPM_ST_SESSIONS if authorised else TPM_ST_NO_SESSIONS
        command = struct.pack(">HII", tag, 10 + len(body), code) + body
        for _ in range(MAX_RETRIES):
            response = TpmReader(self.transport.exchange(command), "the TPM's response")
            _, size, status = struct.unpack(">HII", response.take(10))
            if status not in RETRY_CODES:
                break
        if status != 0:
            raise TpmError(f"the TPM refused command {code:#x} with response code {status:#x}")
        if size != len(response.data):
            raise TpmError("the TPM's response is not the size it says")
        if authorised:
            response.u32()  # parameterSize: the authorisation area follows the parameters
        return response

    def nv_read(self, index: int) -> bytes:
        """The whole content of NV index ``index``."""
        public = self._command(TPM_CC_NV_READ_PUBLIC, [index], b"", authorised=False)
        nv_public = TpmReader(public.sized(), "the NV index's public area")
        nv_public.u32()  # nvIndex
        nv_public.u16()  # nameAlg
        attributes = nv_public.u32()
        nv_public.sized()  # authPolicy
        size = nv_public.u16()
        # Read with the index's own (empty) authorisation when it allows that, else the owner's.
        authority = index if attributes & TPMA_NV_AUTHREAD else TPM_RH_OWNER
        data = b""
        while len(data) < size:
            count = min(NV_CHUNK, size - len(data))
            response = self._command(
                TPM_CC_NV_READ, [authority, index], struct.pack(">HH", count, len(data)), authorised=True
            )
            data += response.sized()
        return data

    def pcr_read(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The SHA-256 bank's values of ``indexes`` (the TPM answers at most eight per command)."""
        wanted = sorted(set(indexes))
        values: dict[int, bytes] = {}
        while wanted:
            response = self._command(TPM_CC_PCR_READ, [], _pcr_selection(wanted), authorised=False)
            response.u32()  # pcrUpdateCounter
            returned: list[int] = []
            for _ in range(response.u32()):
                response.u16()
                bitmap = response.take(response.u8())
                returned += [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8))]
            digests = [response.sized() for _ in range(response.u32())]
            if not returned or len(digests) != len(returned):
                raise TpmError("the TPM returned no PCR values for the selection")
            values.update(zip(returned, digests, strict=True))
            wanted = [index for index in wanted if index not in values]
        return values

    def quote(self, key: int, qualifying_data: bytes, indexes: Iterable[int]) -> tuple[bytes, bytes]:
        """A quote by ``key`` over ``indexes`` (SHA-256 bank) with ``qualifying_data``: the signed
        ``TPMS_ATTEST`` and its ``TPMT_SIGNATURE``, as bytes."""
        parameters = _sized(qualifying_data) + struct.pack(">H", TPM_ALG_NULL) + _pcr_selection(indexes)
        response = self._command(TPM_CC_QUOTE, [key], parameters, authorised=True)
        attest = response.sized()
        start = response.offset
        algorithm = response.u16()
        if algorithm == TPM_ALG_NULL:
            raise TpmError("the attestation key has no signing scheme")
        response.u16()  # hash
        if algorithm in (TPM_ALG_RSASSA, TPM_ALG_RSAPSS):
            response.sized()
        elif algorithm == TPM_ALG_ECDSA:
            response.sized()
            response.sized()
        else:
            raise TpmError(f"the attestation key signs with scheme {algorithm:#x}")
        return attest, response.data[start : response.offset]
