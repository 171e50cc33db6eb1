"""What the CAS does, independent of HTTP: sessions, access control, attestation, volume freshness.

Every decision that changes state runs inside one store transaction (``BEGIN IMMEDIATE``), so
concurrent requests are serialised where it matters: of N updates naming the same predecessor,
exactly one succeeds. Refusals never say more than the caller may know: a session the caller may not
read is "not found", exactly like one that does not exist.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ...errors import CasError, EvidenceRefusedError
from ...policy import (
    ANY,
    CREATOR,
    NONE,
    PolicyError,
    SecretKind,
    Service,
    Session,
    parse_session,
    session_hash,
)
from ...policy.parse import MAX_NAME_DEPTH, NAME_RE, PLACEHOLDER_RE
from ...runtime.protocol import evidence_binding
from ..clients.identity import IdentityError, certificate_key_hash
from ..intake.credentials import CREDENTIAL_LIFETIME, Credential, CredentialAuthority, CredentialError
from ..intake.evidence import EvidencePolicy, InsecureSoftwareEvidence, KubernetesEvidence
from ..intake.hardware import HardwareTrust, hardware_verifiers
from ..intake.kubernetes import KubernetesIssuer
from ..intake.nonces import NonceError, NonceIssuer
from ..state import secret_values
from ..state.models import (
    MODEL_CACHE_BYTES,
    VIEW_CACHE_BYTES,
    Loaded,
    ModelCache,
    ModelKey,
    ModelMissing,
    encode_view,
    load_model,
)
from ..state.quotas import Quotas
from ..state.store import ActiveSession, Store
from .refusals import RefusalLog

NOT_FOUND = "session not found (or not readable with this identity)"
NOT_PERMITTED = "not permitted with this identity"


def allowed(entries: tuple[str, ...], client: str, creator: str) -> bool:
    """Whether the client (its key hash) is granted by an access list."""
    for entry in entries:
        if entry == ANY:
            return True
        if entry == NONE:
            return False
        if entry == CREATOR:
            if client == creator:
                return True
        elif entry.startswith("-----BEGIN"):
            try:
                if certificate_key_hash(entry) == client:
                    return True
            except IdentityError:
                continue
        elif entry == client:
            return True
    return False


MAX_CONFIG_ID = (MAX_NAME_DEPTH + 1) * 129
"""The longest configuration id: a session name of up to 16 names, a slash, a service name."""


def check_config_id(config_id: str) -> None:
    """Refuse (400) a configuration id that cannot name a service, before it costs a lookup or an audit
    entry: ``<session>/<service>``, each name 1 to 128 of the policy's name characters."""
    parts = config_id.split("/") if len(config_id) <= MAX_CONFIG_ID else []
    if not 2 <= len(parts) <= MAX_NAME_DEPTH + 1 or not all(
        NAME_RE.fullmatch(part) and part not in {".", ".."} for part in parts
    ):
        raise CasError(
            400, "config_id: expected <session>/<service>, names of 1 to 128 letters, digits, _ - . ~"
        )


class PreparedSession(NamedTuple):
    """A posted policy, parsed and validated, not yet stored."""

    session: Session
    digest: str
    text: str
    view: bytes
    """Its view (:mod:`.models`), stored with it."""


@dataclass(frozen=True)
class Offloaded:
    """An answer computed in two steps: ``work`` off the event loop (it must touch no state but the
    store's reads), then ``then`` with its result on the event loop."""

    work: Callable[[], Any]
    then: Callable[[Any], Any]


class Grant(NamedTuple):
    """An attestation whose evidence verified, waiting for its policy's whole model."""

    config_id: str
    session: str
    service: str
    session_hash: str
    evidence: str
    measurement: str
    runtime_key: bytes


class CasService:
    """The CAS's behaviour over a :class:`~.store.Store`."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        credential_lifetime: float = CREDENTIAL_LIFETIME,
        kubernetes: KubernetesIssuer | None = None,
        hardware: HardwareTrust | None = None,
        quotas: Quotas | None = None,
        parse_in_line: bool = True,
    ) -> None:
        """``parse_in_line=False`` (what the server runs): a model not in memory is never parsed by the
        caller; :class:`~.models.ModelMissing` is raised instead (or an :class:`Offloaded` returned), for
        the server to load it in its worker pool. In line is for callers without an event loop."""
        self._store = store
        self._parse_in_line = parse_in_line
        self._quotas = quotas or Quotas()
        self._clock = clock
        self._credential_lifetime = credential_lifetime
        self._credentials = CredentialAuthority(store.derived_key("volume credentials"))
        self._nonces = NonceIssuer(store.derived_key("attestation nonces"), store, clock)
        self.evidence = EvidencePolicy(
            [
                *hardware_verifiers(hardware or HardwareTrust(clock=clock)),
                KubernetesEvidence(kubernetes),
                InsecureSoftwareEvidence(),
            ]
        )
        self.views = ModelCache(VIEW_CACHE_BYTES)
        """Each version's view, by version: what access checks and attestation decisions read."""
        self.models = ModelCache(MODEL_CACHE_BYTES)
        """Whole parsed versions: read only for runtimes that attested, and for public values."""
        self.refusals = RefusalLog(self._audit_refusals)
        """Refused attestations, audited the first of each kind at once and the rest counted: call its
        ``flush`` every minute and ``flush(force=True)`` at shutdown."""

    # -- sessions ---------------------------------------------------------------------------------

    def _view(self, name: str, digest: str) -> Session:
        """The view of a stored version (:mod:`.models`)."""
        return self._model(ModelKey(name, digest, whole=False))

    def _whole(self, name: str, digest: str) -> Session:
        """A stored version's whole model."""
        return self._model(ModelKey(name, digest, whole=True))

    def _model(self, key: ModelKey) -> Session:
        cache = self.models if key.whole else self.views
        found = cache.get(key.name, key.digest)
        if found is not None:
            return found
        if not self._parse_in_line:
            raise ModelMissing(key)
        return self.install(self.load(key))

    def load(self, key: ModelKey) -> Loaded:
        """Read and parse a stored version's model: the costly step, for the worker pool."""
        version = self._store.version(key.name, key.digest)
        if version is None:
            raise CasError(404, "no version of this session has that hash")
        view = None if key.whole else self._store.version_view(key.name, key.digest)
        return load_model(key, version.text, view)

    def install(self, loaded: Loaded) -> Session:
        """Keep a loaded model (on the event loop); a view derived for an old version is stored."""
        key = loaded.key
        (self.models if key.whole else self.views).put(key.name, key.digest, loaded.session, loaded.size)
        if loaded.view_text is not None and not self._parse_in_line:  # (in line: maybe in a transaction)
            with self._store.transaction(durable=False):
                self._store.put_view(key.name, key.digest, loaded.view_text)
        return loaded.session

    def post_session(self, body: bytes, client: str) -> str:
        """Create or update a session; returns its hash. Raises :class:`CasError`."""
        return self.commit_session(self.prepare_session(body), client)

    def prepare_session(self, body: bytes) -> PreparedSession:
        """Parse, validate and hash a posted policy: the costly part of an upload, which touches no state
        of this CAS, so the server runs it off its event loop. Raises :class:`CasError`."""
        try:
            session = parse_session(body)
        except PolicyError as error:
            raise CasError(400, "invalid session policy", problems=[str(p) for p in error.problems]) from None
        problems = self.evidence.admission_problems(session)
        if problems:
            raise CasError(
                400,
                "the policy asks for what this CAS cannot enforce",
                problems=[f"{path}: {problem}" for path, problem in problems],
            )
        return PreparedSession(session, session_hash(session), body.decode("utf-8"), encode_view(session))

    def commit_session(self, prepared: PreparedSession, client: str) -> str:
        """Store a prepared session for ``client``, if it may; returns its hash. Raises :class:`CasError`."""
        session, digest, body_text, view = prepared
        store = self._store
        with store.transaction():
            active = store.active(session.name)
            if active is None:
                self._check_create(session, client)
                if session.predecessor is not None:
                    raise CasError(409, "the session does not exist, so it cannot have a predecessor")
                creator = client
                event = "session.created"
            else:
                current = self._view(active.name, active.hash)
                if not allowed(current.access_policy.update, client, active.creator):
                    raise CasError(403, NOT_PERMITTED)
                if session.predecessor != active.hash:
                    raise CasError(
                        409,
                        "stale or missing predecessor: an update must name the hash of the "
                        "active version as predecessor",
                    )
                creator = active.creator
                event = "session.updated"
            prune = self._must_make_room(creator, active, len(body_text.encode("utf-8")))
            lineage = secrets.token_hex(16) if active is None else active.lineage
            store.put_version(
                session.name, digest, session.predecessor, body_text, creator, view, lineage, event
            )
            pruned = store.drop_versions(session.name, keep=digest) if prune else 0
            self._secret_values(session, generate_missing=True)
            store.audit(
                event,
                session=session.name,
                hash=digest,
                client=client,
                **({"pruned": pruned} if pruned else {}),
            )
        return digest

    def _must_make_room(self, creator: str, active: ActiveSession | None, size: int) -> bool:
        """Check the quotas (:mod:`.quotas`) for ``size`` more bytes of ``creator``'s; True when the
        session's earlier versions must go to make room (an update that does not grow it is never refused
        for room). Raises :class:`CasError` (403)."""
        quotas = self._quotas
        if active is None:
            problem = quotas.new_session_problem(self._store, creator)
            if problem is not None:
                raise CasError(403, problem)
        problem = quotas.room_problem(self._store, creator, size)
        if problem is None:
            return False
        current = self._store.version(active.name, active.hash) if active is not None else None
        if current is None or size > len(current.text.encode("utf-8")):
            raise CasError(403, problem)
        return True

    def _check_create(self, session: Session, client: str) -> None:
        namespace = session.namespace
        if namespace is None:
            return  # any authenticated client may create a top-level session (a namespace)
        parent = self._store.active(namespace)
        if parent is None:
            raise CasError(403, f"not permitted to create sessions in namespace {namespace}")
        policy = self._view(parent.name, parent.hash).access_policy
        if not allowed(policy.effective_create_sessions, client, parent.creator):
            raise CasError(403, f"not permitted to create sessions in namespace {namespace}")

    def _secret_values(self, session: Session, generate_missing: bool) -> dict[str, bytes]:
        """Every secret's value: given in the policy, or generated once and kept across updates."""
        values: dict[str, bytes] = {}
        for secret in secret_values.generation_order(session.secrets):
            if secret.value is not None:
                values[secret.name] = (
                    secret.value.encode()
                    if secret.kind is not SecretKind.BINARY
                    else bytes.fromhex(secret.value)
                )
                continue
            stored = self._store.secret(session.name, secret.name)
            if stored is not None and stored[0] == secret.kind.value:
                values[secret.name] = stored[1]
            elif generate_missing:
                values[secret.name] = secret_values.generate(secret, values)
                self._store.put_secret(session.name, secret.name, secret.kind.value, values[secret.name])
        return values

    def read_session(self, name: str, client: str, digest: str | None = None) -> tuple[str, str]:
        """The active version (or version ``digest``) as ``(yaml, hash)``."""
        active = self._store.active(name)
        if active is None or not allowed(
            self._view(name, active.hash).access_policy.read, client, active.creator
        ):
            raise CasError(404, NOT_FOUND)
        version = self._store.version(name, digest or active.hash)
        if version is None:
            raise CasError(404, "no version of this session has that hash")
        return version.text, version.hash

    def delete_session(self, name: str, client: str, digest: str | None) -> None:
        """Our extension: remove a session, its versions, generated secrets and volume keys."""
        store = self._store
        with store.transaction():
            active = store.active(name)
            if active is None or not allowed(
                self._view(name, active.hash).access_policy.read, client, active.creator
            ):
                raise CasError(404, NOT_FOUND)
            if not allowed(self._view(name, active.hash).access_policy.update, client, active.creator):
                raise CasError(403, NOT_PERMITTED)
            if digest != active.hash:
                raise CasError(409, "a delete must name the hash of the active version (?hash=...)")
            if store.has_children(name):
                raise CasError(409, "the namespace still holds sessions; delete them first")
            store.delete_session(name)
            self.views.forget(name)
            self.models.forget(name)
            store.audit("session.deleted", session=name, hash=digest, client=client)

    def public_values(self, name: str, client: str) -> dict[str, str]:
        """The public part of every secret marked ``export_public``."""
        active = self._store.active(name)
        if active is None or not allowed(
            self._view(name, active.hash).access_policy.read, client, active.creator
        ):
            raise CasError(404, NOT_FOUND)
        session = self._whole(name, active.hash)
        values = self._secret_values(session, generate_missing=False)
        return {
            s.name: secret_values.public_value(s, values[s.name])
            for s in session.secrets
            if s.export_public and s.name in values
        }

    # -- attestation ------------------------------------------------------------------------------

    def nonce(self, config_id: str) -> dict[str, Any]:
        """A single-use nonce for one attestation of ``config_id``, and the evidence kinds the service's
        policy accepts. An id that names no service gets the same answer, with the kinds a policy made for
        this CAS accepts by default: this endpoint answers anyone, and must not tell which ids exist."""
        check_config_id(config_id)
        target = self._named_service(config_id)
        accepts = (
            self.evidence.accepted_kinds(target[0], target[1]) if target else self.evidence.default_kinds()
        )
        return {
            "nonce": self._nonces.issue(config_id),
            "expires_in": self._nonces.lifetime,
            "accepts": accepts,
        }

    def attest(
        self, config_id: str, measurement: str, nonce: str, runtime_key: bytes, evidence: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check a runtime against its policy; on success return its configuration and a credential
        bound to ``runtime_key``. Parses in line what it must (see :meth:`begin_attestation`)."""
        result = self.begin_attestation(config_id, measurement, nonce, runtime_key, evidence)
        if isinstance(result, Offloaded):
            granted: dict[str, Any] = result.then(result.work())
            return granted
        return result

    def begin_attestation(
        self, config_id: str, measurement: str, nonce: str, runtime_key: bytes, evidence: Mapping[str, Any]
    ) -> dict[str, Any] | Offloaded:
        """:meth:`attest` as the server runs it: where the policy's whole model is not in memory, the work
        that loads it and grants, for the worker pool (the evidence has verified by then)."""
        check_config_id(config_id)
        # Looked up once, before the nonce is spent (ModelMissing here is asked again, nonce intact).
        target = self._named_service(config_id)
        kind = evidence.get("kind")
        # Only a kind this CAS knows reaches an error message or the audit log: the rest is the caller's
        # text, of any length.
        kind = kind if isinstance(kind, str) and kind in self.evidence.verifiers else "unknown"
        try:
            try:
                self._nonces.redeem(nonce, config_id)
            except NonceError as error:
                raise CasError(401, f"nonce: {error}; ask for a new one") from None
            if target is None:
                raise CasError(403, "unknown configuration id")
            return self._attest(target, config_id, measurement.lower(), nonce, runtime_key, kind, evidence)
        except CasError as refusal:
            # A configuration id that names no service is the caller's (bounded) text: the audit log keeps
            # its digest, so refusals cannot write what an outsider chooses.
            named = config_id if target is not None else None
            identified = (
                {"config_id": config_id}
                if named is not None
                else {"config_id_sha256": hashlib.sha256(config_id.encode()).hexdigest()}
            )
            self.refusals.refused(
                (named, kind, refusal.message), {**identified, "evidence": kind, "reason": refusal.message}
            )
            raise

    def _audit_refusals(self, entries: list[dict[str, Any]]) -> None:
        with self._store.transaction(durable=False):
            for details in entries:
                self._store.audit("attestation.refused", **details)

    def audit_rate_limited(self, api: str, client: str, refused: int, seconds: float) -> None:
        """One audit entry for a client's refused requests over a stretch of time (not one per request)."""
        with self._store.transaction(durable=False):
            self._store.audit(
                "rate_limited", api=api, client=client[:64], refused=refused, seconds=round(seconds)
            )

    def _named_service(self, config_id: str) -> tuple[Session, Service, str] | None:
        """:meth:`_service`, or None where the id names no service."""
        try:
            return self._service(config_id)
        except CasError:
            return None

    def _service(self, config_id: str) -> tuple[Session, Service, str]:
        session_name, _, service_name = config_id.rpartition("/")
        active = self._store.active(session_name) if session_name else None
        if active is None:
            raise CasError(403, "unknown configuration id")
        session = self._view(active.name, active.hash)
        try:
            return session, session.service(service_name), active.hash
        except KeyError:
            raise CasError(403, "unknown configuration id") from None

    def _attest(
        self,
        target: tuple[Session, Service, str],
        config_id: str,
        measurement: str,
        nonce: str,
        runtime_key: bytes,
        kind: str,
        evidence: Mapping[str, Any],
    ) -> dict[str, Any] | Offloaded:
        view, service, session_digest = target
        if measurement not in service.measurements:
            raise CasError(403, "measurement not permitted by the policy")
        try:
            self.evidence.evaluate(kind, evidence, view, service, evidence_binding(nonce, runtime_key))
        except EvidenceRefusedError as refusal:
            raise CasError(403, str(refusal)) from None
        grant = Grant(config_id, view.name, service.name, session_digest, kind, measurement, runtime_key)
        try:
            return self._grant(grant, self._whole(view.name, session_digest))
        except ModelMissing as missing:  # only a runtime whose evidence verified gets this far
            key = missing.key
            return Offloaded(lambda: self.load(key), lambda loaded: self._grant(grant, self.install(loaded)))

    def _grant(self, grant: Grant, session: Session) -> dict[str, Any]:
        """The configuration and a credential for a runtime whose evidence verified against the version
        ``grant.session_hash`` — still the active one (it may have changed while its model was loaded)."""
        active = self._store.active(grant.session)
        if active is None or active.hash != grant.session_hash:
            raise CasError(409, "the session's policy changed during this attestation: attest again")
        service = session.service(grant.service)
        # Secrets and volume keys made on first use must be on disk before anyone receives them; once
        # they exist, a grant only appends to the audit log, which need not wait for the disk.
        values = self._secret_values(session, generate_missing=False)
        first_use = len(values) < len(session.secrets) or self._volume_missing(session, service)
        with self._store.transaction(durable=first_use):
            if first_use:
                values = self._secret_values(session, generate_missing=True)
            volumes = self._service_volumes(session, service)
            self._store.audit(
                "attestation.granted",
                config_id=grant.config_id,
                session_hash=grant.session_hash,
                evidence=grant.evidence,
                measurement=grant.measurement,
            )
        credential = self._credentials.issue(
            Credential(
                session.name,
                service.name,
                frozenset(v["name"] for v in volumes),
                grant.runtime_key,
                self._clock() + self._credential_lifetime,
                active.lineage,
            )
        )
        return {
            "session": session.name,
            "session_hash": grant.session_hash,
            "service": service.name,
            "evidence": grant.evidence,
            "credential": credential,
            "credential_expires_in": self._credential_lifetime,
            "configuration": self._configuration(session, service, values, volumes),
        }

    def _volume_missing(self, session: Session, service: Service) -> bool:
        mounts = session.image(service.image_name).volumes if service.image_name else ()
        return any(self._store.volume(session.name, mount.name) is None for mount in mounts)

    def _service_volumes(self, session: Session, service: Service) -> list[dict[str, Any]]:
        """Each volume the service's image mounts, with its key (made on first use) and latest state."""
        if service.image_name is None:
            return []
        declared = {volume.name: volume for volume in session.volumes}
        result = []
        for mount in session.image(service.image_name).volumes:
            state = self._store.volume(session.name, mount.name)
            if state is None:
                policy_key = declared[mount.name].fspf_key
                key = bytes.fromhex(policy_key) if policy_key else secrets.token_bytes(32)
                self._store.create_volume(session.name, mount.name, key)
                self._store.audit("volume.created", session=session.name, volume=mount.name)
                state = self._store.volume(session.name, mount.name)
                assert state is not None
            result.append(
                {
                    "name": mount.name,
                    "path": mount.path,
                    "update_policy": declared[mount.name].update_policy.value,
                    "key": state.key.hex(),
                    "generation": state.generation,
                    "tag": state.tag.hex() if state.tag is not None else None,
                }
            )
        return result

    def _configuration(
        self, session: Session, service: Service, values: dict[str, bytes], volumes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        secrets_by_name = {s.name: s for s in session.secrets}

        def resolve(text: str) -> str:
            def replace(match: Any) -> str:
                name = match.group(1)
                form = match.group(0)[len("$$SCONE::") + len(name) :].removesuffix("$$").lstrip(":") or None
                return secret_values.render(secrets_by_name[name], values[name], form, values)

            return PLACEHOLDER_RE.sub(replace, text)

        if isinstance(service.command, str):
            command = [resolve(argument) for argument in shlex.split(service.command)]
        else:
            command = [resolve(argument) for argument in service.command or ()]
        image = session.image(service.image_name) if service.image_name else None
        return {
            "command": command,
            "environment": {name: resolve(value) for name, value in service.environment.items()},
            "pwd": service.pwd or "/",
            "fspf": (
                {"path": service.fspf_path, "key": service.fspf_key, "tag": service.fspf_tag}
                if service.fspf_key
                else None
            ),
            "volumes": volumes,
            "injection_files": [
                {"path": f.path, "content": resolve(f.content)}
                for f in (image.injection_files if image else ())
            ],
        }

    # -- volume freshness -------------------------------------------------------------------------

    def authorize(self, token: str, signature: str, method: str, path: str, body: bytes) -> Credential:
        """The credential of a volume request, checked with the request's signature (401 otherwise)."""
        try:
            return self._credentials.check(token, signature, method, path, body, self._clock())
        except CredentialError as error:
            raise CasError(401, str(error)) from None
        except (ValueError, KeyError, TypeError):
            raise CasError(401, "not a credential of this CAS: attest first") from None

    def _covers(self, credential: Credential, volume: str) -> None:
        """Refuse a volume the credential does not cover, or of another session than the one it was
        issued for (deleted, or deleted and made again under the same name)."""
        if volume not in credential.volumes:
            raise CasError(403, "this credential does not cover that volume")
        active = self._store.active(credential.session)
        if active is None:
            raise CasError(404, "the credential's session no longer exists")
        if active.lineage != credential.lineage:
            raise CasError(
                403,
                "the credential was issued for an earlier session of this name (deleted since): attest again",
            )

    def volume_state(self, credential: Credential, volume: str) -> dict[str, Any]:
        self._covers(credential, volume)
        state = self._store.volume(credential.session, volume)
        if state is None:
            raise CasError(404, "the volume does not exist (attest to create it)")
        return {
            "volume": volume,
            "generation": state.generation,
            "tag": state.tag.hex() if state.tag else None,
        }

    def swap_volume(
        self, credential: Credential, volume: str, expected: tuple[int, bytes | None], new: tuple[int, bytes]
    ) -> None:
        """Compare-and-swap a volume's committed (generation, tag); 409 if another state is current."""
        self._covers(credential, volume)
        if new[0] != expected[0] + 1:
            raise CasError(409, "the new generation must follow the expected one")
        with self._store.transaction():
            if not self._store.swap_volume(credential.session, volume, expected, new):
                raise CasError(409, "the volume's committed state is not the expected one")
            self._store.audit(
                "volume.swapped",
                session=credential.session,
                service=credential.service,
                volume=volume,
                generation=new[0],
                tag=new[1].hex(),
            )
