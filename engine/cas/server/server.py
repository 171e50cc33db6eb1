"""The CAS's HTTP front: the client API (mutual TLS) and the attestation API (server TLS), on Twisted.

Twisted with pyOpenSSL is used because the client API must accept *self-signed* client certificates —
the identity is the certificate's key, proven by the TLS handshake, not a chain to some CA — and
Python's ``ssl`` module cannot do that (it has no verification callback). Requests are small JSON or
YAML bodies, bounded in size; connections time out when idle; logs are one JSON object per line and
never contain bodies, secrets or query strings.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from OpenSSL import SSL
from twisted.internet import reactor as _reactor, ssl, threads
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web import http, resource, server

from ...errors import EXIT_USAGE, CasError, SconifyError
from ...runtime.protocol import ATTEST_PATH, NONCE_PATH, SIGNATURE_HEADER
from ...version import __version__
from ..clients.identity import IdentityError, ServerPki, certificate_key_hash, client_identity
from ..intake.credentials import CREDENTIAL_LIFETIME, runtime_key
from ..intake.hardware import HardwareTrust
from ..intake.kubernetes import JwksSource, KubernetesIssuer
from ..state.models import Loaded, ModelMissing
from ..state.quotas import Quotas
from ..state.recovery import cas_id, fingerprint, origin_problem, seal_master_key, sign_origin
from ..state.store import Store, TamperedError
from .ratelimit import RateLimiter
from .refusals import WINDOW as REFUSAL_WINDOW
from .service import CasService, Offloaded

reactor: Any = _reactor

MAX_BODY_BYTES = 1024 * 1024 + 4096
"""The client API's largest body: a policy of 1 MiB, and framing."""
MAX_ATTESTATION_BODY_BYTES = 64 * 1024
"""The attestation API's largest body: evidence is a few KiB (an SNP report with its certificates, a TDX
quote, an Azure vTPM bundle), and this API answers anyone who reaches it."""
"""Largest request body: a session policy (1 MiB) with room for JSON framing."""
IDLE_TIMEOUT = 30
REQUEST_DEADLINE = 30.0
MAX_CONNECTIONS_PER_ADDRESS = 64
MAX_CONNECTIONS = 1024
"""Open connections to one API from all addresses together: many addresses (a botnet, or one host's
whole loopback range) could otherwise hold every descriptor the process has."""
WORKERS = 1
"""Threads that parse policies: uploaded ones, and stored ones not in memory. One: Python runs one
thread at a time, and every further parsing thread takes turns from the event loop (measured by
benchmarks/cas_stall.py: with two, a health check's p99 during an upload storm was five times that with
one)."""
RENEWAL_CHECK = 6 * 3600.0
"""How often the running CAS checks whether its server certificate is due for renewal."""
CLIENT_RATE = 100.0
ATTESTATION_RATE = 500.0
MAX_QUEUED_WORK = 16
"""Uploads being checked and stored policies being loaded, or waiting for a worker; more are answered 429
at once."""
MAX_GENERATION = 2**63 - 1
"""The largest volume generation: what the store keeps in a signed 64-bit integer (a commit a second would
take 292 billion years to reach it)."""
API_VERSION = "sconify-cas/1"
HEALTH_PATHS = frozenset({"/health", "/healthz"})
"""Probes: never rate-limited (a cluster's kubelet asks often, and must get an answer)."""
TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"
"""OpenSSL's names for the TLS 1.2 suites offered: ECDHE key exchange, AES-GCM or ChaCha20-Poly1305."""
CA_FILE = "cas-ca.pem"
"""Where the CAS writes its CA certificate for clients to pin."""


def log(event: str, **fields: Any) -> None:
    """One structured log line. Callers pass only non-secret fields."""
    record = {"time": round(time.time(), 3), "event": event, **fields}
    sys.stderr.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stderr.flush()


class _TlsContext(ssl.ContextFactory):
    """TLS 1.2+ with the CAS's server certificate; optionally requiring any client certificate."""

    def __init__(self, certificate: Path, key: Path, require_client_certificate: bool) -> None:
        self._files = (certificate, key, require_client_certificate)
        self._context = self._make(certificate, key, require_client_certificate)

    def reload(self) -> None:
        """Take the certificate and key files again (after renewal): new connections get them."""
        self._context = self._make(*self._files)

    @staticmethod
    def _make(certificate: Path, key: Path, require_client_certificate: bool) -> SSL.Context:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        # TLS 1.2 with forward secrecy and AEAD only (TLS 1.3's suites are all of that kind already).
        context.set_cipher_list(TLS12_CIPHERS)
        context.use_certificate_chain_file(str(certificate))
        context.use_privatekey_file(str(key))
        context.check_privatekey()
        if require_client_certificate:
            # Any certificate: the handshake proves possession of its key, and the key is the identity.
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        return context

    def getContext(self) -> SSL.Context:  # noqa: N802 - Twisted's interface
        return self._context


class _BoundedRequest(server.Request):
    """A request whose body is dropped, not buffered, beyond ``MAX_BODY_BYTES``."""

    too_large = False
    _received = 0

    @property
    def max_body(self) -> int:
        return int(getattr(getattr(self.channel, "site", None), "max_body", MAX_BODY_BYTES))

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's interface
        if length is not None and length > self.max_body:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's interface
        self._received += len(data)
        if self._received > self.max_body:
            self.too_large = True
            return
        super().handleContentChunk(data)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may take of the CAS (docs/cas.md, "Limits")."""

    request_deadline: float = REQUEST_DEADLINE
    """Seconds a connection has to deliver each whole request (headers and body), counted from its
    start or the previous request's end: a client that trickles bytes is cut off, however steadily."""
    per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    """Open connections from one IP address; more are closed as they arrive."""
    total: int = MAX_CONNECTIONS
    """Open connections to one API from all addresses together; more are closed as they arrive."""
    client_rate: float = CLIENT_RATE
    """Requests per second one identity may make of the client API (bursts of twice that); 0: no limit."""
    attestation_rate: float = ATTESTATION_RATE
    """Requests per second one address may make of the attestation API (bursts of twice that); 0: none."""


class _DeadlineChannel(http.HTTPChannel):
    """An HTTP connection that must deliver each request whole within the site's deadline (Twisted's
    idle timeout restarts with every byte, so a slow client would stay for ever)."""

    _deadline: Any = None

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's interface
        super().connectionMade()
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        deadline = getattr(getattr(self, "site", None), "limits", ConnectionLimits()).request_deadline
        self._deadline = reactor.callLater(deadline, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport is not None:
            self.transport.abortConnection()

    def allContentReceived(self) -> None:  # noqa: N802 - Twisted's interface
        super().allContentReceived()
        self._arm()  # the next request on this connection gets a deadline of its own

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 - Twisted's interface
        self._disarm()
        site = getattr(self, "site", None)
        if isinstance(site, _Site):
            site.forget(self)
        super().connectionLost(reason)


class _Site(server.Site):
    requestFactory = _BoundedRequest  # noqa: N815 - Twisted's attribute
    # HTTP/1.1 only (Twisted's default wraps channels for HTTP/2, which neither API speaks).
    protocol = _DeadlineChannel  # type: ignore[assignment]
    max_body = MAX_BODY_BYTES
    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[str, int] = {}
        self._address_of: dict[int, str] = {}

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted's interface
        host = str(getattr(addr, "host", ""))
        if self._open.get(host, 0) >= self.limits.per_address:
            log("connection_refused", reason="too many connections from one address")
            return None  # Twisted closes the connection
        if len(self._address_of) >= self.limits.total:
            log("connection_refused", reason="too many connections")
            return None
        channel = super().buildProtocol(addr)
        if channel is not None:
            self._open[host] = self._open.get(host, 0) + 1
            self._address_of[id(channel)] = host
        return channel

    def forget(self, channel: Any) -> None:
        host = self._address_of.pop(id(channel), None)
        if host is not None:
            self._open[host] -= 1
            if not self._open[host]:
                del self._open[host]

    def log(self, request: http.Request) -> None:  # our own structured log instead of Twisted's
        return None


class ListenError(SconifyError):
    """An address the CAS cannot listen on (taken by another process, or not this machine's)."""

    exit_code = EXIT_USAGE


class WorkerPool:
    """The threads that parse and validate uploaded policies, so that a large upload never holds up
    health checks and attestations; and how much work waits for them."""

    def __init__(self, size: int = WORKERS) -> None:
        self.threads = ThreadPool(minthreads=1, maxthreads=size, name="cas-workers")
        self.pending = 0

    def start(self) -> None:
        self.threads.start()

    def stop(self) -> None:
        self.threads.stop()


Answer = tuple[int, Any] | Offloaded


def _audit_refusals(service: CasService, api: str) -> Callable[[str, int, float], None]:
    def report(client: str, refused: int, seconds: float) -> None:
        service.audit_rate_limited(api, client, refused, seconds)

    return report


def _error_answer(error: BaseException, api: str) -> tuple[int, Any]:
    if isinstance(error, CasError):
        return error.status, {"error": error.message, **error.extra}
    if isinstance(error, TamperedError):
        # The operator must learn what was edited; a client learns only that the CAS cannot answer.
        log("state_tampered", api=api, reason=str(error))
        return 500, {"error": "internal error: the CAS's state does not verify"}
    # A bug must not leak details; it is logged by type only.
    log("internal_error", api=api, type=type(error).__name__)
    return 500, {"error": "internal error"}


def openapi_document() -> bytes:
    return resources.files("pulumi_sconify.engine.cas.server").joinpath("openapi.json").read_bytes()


class _Api(resource.Resource):
    """Routes one API's requests to the service; errors become JSON with the right status."""

    isLeaf = True  # noqa: N815 - Twisted's attribute

    def __init__(self, service: CasService, name: str) -> None:
        super().__init__()
        self.service = service
        self.name = name

    def render(self, request: server.Request) -> bytes | int:
        started = time.perf_counter()
        method = request.method.decode("ascii", "replace")
        path = unquote(request.path.decode("utf-8", "replace"))
        client: str | None = None
        try:
            if getattr(request, "too_large", False):
                raise CasError(413, f"request body larger than {getattr(request, 'max_body', 0)} bytes")
            client = self.client(request)
            if path not in HEALTH_PATHS and self.limiter is not None:
                who = client or str(getattr(request.getClientAddress(), "host", ""))
                if not self.limiter.allow(who):
                    raise CasError(429, "too many requests: slow down")
            known_client = client
            answer = self._answer(lambda: self.route(request, method, path, known_client))
        except Exception as error:
            answer = _error_answer(error, self.name)
        context = (method, path, client, started)
        if isinstance(answer, Offloaded):
            request.notifyFinish().addErrback(lambda _: setattr(request, "gone", True))
            self._offload(request, answer, context)
            return server.NOT_DONE_YET
        return self._respond(request, answer, context)

    def _answer(self, step: Callable[[], Answer]) -> Answer:
        """``step``'s answer; where it needs a stored policy's model that is not in memory, the work that
        loads it in the pool, then ``step`` again (its state changes all come after its models)."""
        try:
            return step()
        except ModelMissing as missing:
            key = missing.key

        def again(loaded: Loaded) -> Answer:
            self.service.install(loaded)
            return self._answer(step)

        return Offloaded(lambda: self.service.load(key), again)

    def _offload(self, request: server.Request, work: Offloaded, context: tuple[Any, ...]) -> None:
        """Run ``work`` in the worker pool, so the event loop keeps answering, then its continuation on
        the loop (which may offload again); refuse (429) when the pool's queue is full rather than let
        waiting work pile up in memory."""

        def finish(answer: Answer) -> None:
            if isinstance(answer, Offloaded):
                self._offload(request, answer, context)
            elif not getattr(request, "gone", False):
                request.write(self._respond(request, answer, context))
                request.finish()

        pool = self.workers
        if pool is None:  # no pool (a test's server): in line
            try:
                finish(self._answer(lambda: work.then(work.work())))
            except Exception as error:
                finish(_error_answer(error, self.name))
            return
        if pool.pending >= MAX_QUEUED_WORK:
            finish((429, {"error": "busy: too much work is waiting for the CAS's workers; retry"}))
            return
        pool.pending += 1

        def run_then(prepared: Any) -> Answer:
            try:
                return self._answer(lambda: work.then(prepared))
            except Exception as error:
                return _error_answer(error, self.name)

        def settle(result: Any) -> Any:
            pool.pending -= 1
            return result

        deferred = threads.deferToThreadPool(reactor, pool.threads, work.work)
        deferred.addBoth(settle)
        deferred.addCallbacks(run_then, lambda failure: _error_answer(failure.value, self.name))
        deferred.addCallback(finish)

    def _respond(self, request: server.Request, answer: tuple[int, Any], context: tuple[Any, ...]) -> bytes:
        method, path, client, started = context
        status, body = answer
        request.setResponseCode(status)
        if status == 401:
            request.setHeader(b"www-authenticate", b"Bearer")
        if status == 429:
            request.setHeader(b"retry-after", b"1")
        request.setHeader(b"content-type", b"application/json")
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.setHeader(b"cache-control", b"no-store")
        log(
            "request",
            api=self.name,
            method=method,
            path=path,
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            client=client[:16] if client else None,
        )
        return payload

    workers: WorkerPool | None = None
    limiter: RateLimiter | None = None

    def client(self, request: server.Request) -> str | None:
        return None

    def route(self, request: server.Request, method: str, path: str, client: str | None) -> Answer:
        if method == "GET" and path in HEALTH_PATHS:
            return 200, {"status": "ok"}
        if method == "GET" and path == "/v1/version":
            return 200, {"version": __version__, "api": API_VERSION}
        if method == "GET" and path == "/v1/openapi.json":
            return 200, openapi_document()
        raise CasError(404, "no such endpoint")


def _body(request: server.Request) -> bytes:
    """The whole body, however often asked (a request is routed again once a model it needs is loaded)."""
    if request.content is None:
        return b""
    request.content.seek(0)
    return bytes(request.content.read())


def _json_body(request: server.Request) -> dict[str, Any]:
    return _json_object(_body(request))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise CasError(400, "the body must be a JSON object") from None
    except RecursionError:  # nesting deeper than the parser follows: a refusal, not a server error
        raise CasError(400, "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise CasError(400, "the body must be a JSON object")
    return data


def _query(request: server.Request, name: str) -> str | None:
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


class ClientApi(_Api):
    """Port 8081: sessions, public values. Every request carries a client certificate."""

    def client(self, request: server.Request) -> str | None:
        certificate = request.transport.getPeerCertificate() if request.transport else None
        if certificate is None:
            raise CasError(401, "a client certificate is required")
        try:
            return client_identity(certificate.to_cryptography(), datetime.now(UTC))
        except IdentityError as refusal:
            raise CasError(401, str(refusal)) from None

    def route(self, request: server.Request, method: str, path: str, client: str | None) -> Answer:
        assert client is not None
        if method == "POST" and path in {"/v1/sessions", "/session"}:
            body = _body(request)
            return Offloaded(
                lambda: self.service.prepare_session(body),
                lambda prepared: (201, {"hash": self.service.commit_session(prepared, client)}),
            )
        if path.startswith("/v1/sessions/") and len(path) > len("/v1/sessions/"):
            name = path[len("/v1/sessions/") :]
            if method == "GET":
                text, digest = self.service.read_session(name, client, _query(request, "hash"))
                return 200, {"session": text, "hash": digest}
            if method == "DELETE":
                self.service.delete_session(name, client, _query(request, "hash"))
                return 200, {"deleted": name}
            raise CasError(405, "method not allowed here")
        if method == "GET" and path.startswith("/v1/values/session="):
            name = path[len("/v1/values/session=") :]
            return 200, {"session": name, "values": self.service.public_values(name, client)}
        return super().route(request, method, path, client)


class AttestationApi(_Api):
    """Port 18765: attestation, and volume freshness for attested runtimes."""

    def route(self, request: server.Request, method: str, path: str, client: str | None) -> Answer:
        if method == "POST" and path == NONCE_PATH:
            config_id = _json_body(request).get("config_id")
            if not isinstance(config_id, str):
                raise CasError(400, "expected config_id (string)")
            return 200, self.service.nonce(config_id)
        if method == "POST" and path == ATTEST_PATH:
            document = _json_body(request)
            config_id, measurement, nonce, evidence = (
                document.get("config_id"),
                document.get("measurement"),
                document.get("nonce"),
                document.get("evidence"),
            )
            if (
                not isinstance(config_id, str)
                or not isinstance(measurement, str)
                or not isinstance(nonce, str)
                or not isinstance(evidence, dict)
            ):
                raise CasError(
                    400,
                    "expected config_id, measurement, nonce and runtime_key (strings) and evidence (object)",
                )
            try:
                key = runtime_key(document.get("runtime_key"))
            except ValueError as error:
                raise CasError(400, str(error)) from None
            granted = self.service.begin_attestation(config_id, measurement, nonce, key, evidence)
            if isinstance(granted, Offloaded):
                return Offloaded(granted.work, lambda loaded: (200, granted.then(loaded)))
            return 200, granted
        if path.startswith("/v1/volumes/") and path.endswith("/state"):
            volume = path[len("/v1/volumes/") : -len("/state")]
            if method not in ("GET", "POST"):
                raise CasError(405, "method not allowed here")
            body = _body(request)
            # The signature covers the path as sent (still quoted), exactly as the runtime signed it.
            signed_path = request.path.decode("ascii", "replace")
            credential = self.service.authorize(
                self.bearer(request), self.signature(request), method, signed_path, body
            )
            if method == "GET":
                return 200, self.service.volume_state(credential, volume)
            expected, new = _swap_body(_json_object(body))
            self.service.swap_volume(credential, volume, expected, new)
            return 200, {"volume": volume, "generation": new[0], "tag": new[1].hex()}
        return super().route(request, method, path, client)

    @staticmethod
    def bearer(request: server.Request) -> str:
        header = (request.getHeader(b"authorization") or b"").decode("ascii", "replace")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise CasError(401, "a bearer credential from attestation is required")
        return token.strip()

    @staticmethod
    def signature(request: server.Request) -> str:
        value = request.getHeader(SIGNATURE_HEADER.encode())
        if not value:
            raise CasError(401, f"a {SIGNATURE_HEADER} by the credential's runtime key is required")
        return value.decode("ascii", "replace").strip()


def _state(value: Any, what: str, tag_required: bool) -> tuple[int, bytes | None]:
    if not isinstance(value, dict):
        raise CasError(400, f"{what} must be an object with generation and tag")
    generation, tag = value.get("generation"), value.get("tag")
    if isinstance(generation, float) and generation.is_integer():
        generation = int(generation)
    if (
        isinstance(generation, bool)
        or not isinstance(generation, int)
        or not 0 <= generation <= MAX_GENERATION
    ):
        raise CasError(400, f"{what}.generation must be a whole number from 0 to {MAX_GENERATION}")
    if tag is None and not tag_required:
        return generation, None
    try:
        raw = bytes.fromhex(tag) if isinstance(tag, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise CasError(400, f"{what}.tag must be 32 hex characters")
    return generation, raw


def _swap_body(body: dict[str, Any]) -> tuple[tuple[int, bytes | None], tuple[int, bytes]]:
    expected = _state(body.get("expected"), "expected", tag_required=False)
    generation, tag = _state(body.get("new"), "new", tag_required=True)
    assert tag is not None
    return expected, (generation, tag)


def listen(
    service: CasService,
    certificate: Path,
    key: Path,
    client_address: tuple[str, int],
    attest_address: tuple[str, int],
    limits: ConnectionLimits | None = None,
    workers: WorkerPool | None = None,
    limiters: list[RateLimiter] | None = None,
    contexts: list[_TlsContext] | None = None,
) -> list[Any]:
    """Open both ports on the reactor; returns the listening ports (and keeps each API's rate limiter in
    ``limiters``, for their last report at shutdown)."""
    ports = []
    limiters = [] if limiters is None else limiters
    for api, address, mutual, max_body in (
        (ClientApi(service, "client"), client_address, True, MAX_BODY_BYTES),
        (AttestationApi(service, "attestation"), attest_address, False, MAX_ATTESTATION_BODY_BYTES),
    ):
        # Both APIs take JSON or YAML bodies, never forms: Twisted's parsing of every Content-Type for form
        # fields (through the email package) cost a seventh of the CAS's time under attestation load.
        site = _Site(api, timeout=IDLE_TIMEOUT, parsePOSTFormSubmission=False)
        site.displayTracebacks = False
        site.max_body = max_body
        api.workers = workers
        site.limits = limits or ConnectionLimits()
        rate = site.limits.client_rate if mutual else site.limits.attestation_rate
        api.limiter = RateLimiter(rate, 2 * rate, _audit_refusals(service, api.name))
        limiters.append(api.limiter)
        tls = _TlsContext(certificate, key, mutual)
        if contexts is not None:
            contexts.append(tls)
        try:
            ports.append(reactor.listenSSL(address[1], site, tls, interface=address[0]))
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            raise ListenError(
                f"cannot listen on {address[0]}:{address[1]} ({api.name} API): {reason}"
            ) from None
        log("listening", api=api.name, address=f"{address[0]}:{ports[-1].getHost().port}")
    return ports


def _sign_origin(store: Store, master_key: bytes, pki: ServerPki) -> None:
    """Have the CA sign that this store's master key is its CAS's, unless it already has (recovery.py)."""
    ca_pem = pki.ca_certificate.read_bytes()
    if origin_problem(store.origin(), master_key, ca_pem) is None:
        return
    statement = sign_origin(master_key, pki.ca_key.read_bytes(), ca_pem)
    with store.transaction():
        store.set_origin(statement, {"cas_id": cas_id(master_key), "ca": certificate_key_hash(ca_pem)})
    log("origin_signed", cas_id=cas_id(master_key))


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What a CAS is run with (``cas serve`` makes it from its flags)."""

    data_dir: Path
    """Its state: keys, TLS files, and the SQLite database unless :attr:`database` names another."""
    client_address: tuple[str, int]
    """Where the client API (mutual TLS: sessions) listens."""
    attest_address: tuple[str, int]
    """Where the attestation API (server TLS: runtimes) listens."""
    hosts: list[str] = field(default_factory=list)
    """Other DNS names or IPs the server certificate must be valid for."""
    master_key_file: Path | None = None
    """The 64-hex master key; default: ``$SCONIFY_CAS_MASTER_KEY``, else ``data_dir/master.key``."""
    ca_directory: Path | None = None
    """A CA made elsewhere (``ca.pem``, ``ca-key.pem``): the server certificate is issued by it, so clients
    pinned that CA before this CAS first started."""
    credential_lifetime: float = CREDENTIAL_LIFETIME
    kubernetes: tuple[str, JwksSource] | None = None
    """The issuer whose service-account tokens this CAS accepts as evidence, and where its key set is read."""
    hardware: HardwareTrust | None = None
    limits: ConnectionLimits | None = None
    quotas: Quotas | None = None
    anchor: Path | str | None = None
    """A second store where the audit head is kept (``state/anchor.py``)."""
    database: Path | str | None = None
    """The database: a SQLite file, or a ``postgresql://`` URL that replicas share."""
    recovery_keys: Sequence[X25519PublicKey] = ()
    """The master key is sealed to each (and only these are kept; none given: the store's are left)."""


def serve(config: ServeConfig) -> None:
    """Run a CAS until SIGTERM or SIGINT: make or reuse its state, serve both APIs."""
    from ..clients.identity import cas_audience, ensure_server_pki  # noqa: PLC0415 - keep imports light for clients
    from ..state.store import load_master_key  # noqa: PLC0415

    data_dir, hosts, ca_directory = config.data_dir, config.hosts, config.ca_directory
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    master_key = load_master_key(data_dir, config.master_key_file)
    pki = ensure_server_pki(data_dir / "tls", hosts, ca_directory)
    (data_dir / CA_FILE).write_bytes(pki.ca_certificate.read_bytes())
    store = Store(
        config.database if config.database is not None else data_dir / "cas.db", master_key, config.anchor
    )
    store.next_nonce_epoch()  # nonces issued before this start are void (see nonces.py)
    _sign_origin(store, master_key, pki)
    if config.recovery_keys:
        with store.transaction():
            present = store.recovery_copies()
            store.set_recovery_copies(
                {
                    name: present.get(name) or seal_master_key(master_key, key)
                    for name, key in ((fingerprint(key), key) for key in config.recovery_keys)
                }
            )
    issuer = None
    if config.kubernetes is not None:
        audience = cas_audience(pki.ca_certificate.read_bytes())
        issuer = KubernetesIssuer(config.kubernetes[0], config.kubernetes[1], audience, log=log)
        issuer.start()
        log("kubernetes_issuer", issuer=issuer.issuer, audience=audience)
    if config.hardware is not None:
        log(
            "hardware_evidence",
            snp_vcek_dir=str(config.hardware.vcek_directory or ""),
            tdx_collateral=str(config.hardware.tdx_collateral or ""),
        )
    service = CasService(
        store,
        credential_lifetime=config.credential_lifetime,
        kubernetes=issuer,
        hardware=config.hardware,
        quotas=config.quotas,
        parse_in_line=False,
    )
    workers = WorkerPool()
    workers.start()
    limiters: list[RateLimiter] = []
    contexts: list[_TlsContext] = []
    try:
        ports = listen(
            service,
            pki.certificate,
            pki.key,
            config.client_address,
            config.attest_address,
            config.limits,
            workers,
            limiters,
            contexts,
        )
    except BaseException:
        # The worker threads would keep the process alive after the error: a CAS that cannot serve exits.
        workers.stop()
        store.close()
        raise

    def renew() -> None:
        before = pki.certificate.read_bytes()
        try:
            ensure_server_pki(data_dir / "tls", hosts, ca_directory)
        except (IdentityError, OSError) as error:  # keep serving with the current one; say so
            log("server_certificate_renewal_failed", reason=str(error))
            return
        if pki.certificate.read_bytes() != before:
            for context in contexts:
                context.reload()
            log("server_certificate_renewed")

    renewal = LoopingCall(renew)
    renewal.clock = reactor
    renewal.start(RENEWAL_CHECK, now=False)
    refusal_counts = LoopingCall(service.refusals.flush)
    refusal_counts.clock = reactor
    refusal_counts.start(REFUSAL_WINDOW, now=False)

    def stop_listening() -> Any:
        from twisted.internet.defer import gatherResults  # noqa: PLC0415

        log("stopping")
        return gatherResults([port.stopListening() for port in ports])

    def close() -> None:
        for limiter in limiters:
            limiter.flush()
        service.refusals.flush(force=True)
        workers.stop()  # waits for a policy being checked; its commit never runs, the reactor is gone
        store.close()
        log("stopped")

    reactor.addSystemEventTrigger("before", "shutdown", stop_listening)
    reactor.addSystemEventTrigger("after", "shutdown", close)
    log("started", version=__version__, data_dir=str(data_dir), ca=str(data_dir / CA_FILE))
    reactor.run()
