"""``CasSession``: a session policy in a CAS, with predecessor chaining and drift detection."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pulumi

from ...engine.cas.clients.client import CasClient
from ...engine.cas.clients.identity import ClientIdentity, IdentityError, certificate_key_hash
from ...engine.cas.clients.upload import active_version, upload
from ...engine.errors import CasError, DriftError
from ...engine.policy import (
    PolicyError,
    Session,
    parse_session,
    render_session,
    session_from_data,
    session_hash,
)
from .base import (
    PROVIDER_VERSION,
    Changes,
    CheckFailure,
    CheckResult,
    CreateResult,
    ReadResult,
    ReportsProgress,
    ResourceLogic,
    UpdateResult,
    changed,
    inputs_of,
    is_unknown,
    private_files,
    required,
    whole_numbers,
)
from .sdk import SconifyResource, take_renamed
from .spec import ANY, BOOLEAN, PROVIDER_VERSION_PROPERTY, STRING, Property, ResourceSpec, map_of, one_of

SPEC = ResourceSpec(
    "CasSession",
    "A session policy in a CAS. Updates name the active version as predecessor; a version made outside "
    "Pulumi stops an update (unless `adopt`), and `pulumi refresh` shows such drift. Policies are compared "
    "by meaning: formatting, comments and key order do not count.",
    # 0.2 called both CAS endpoints `cas` (the attestation API here, the client API in CasSession).
    renamed={"cas": "cas_client_address", "cas_ca": "cas_ca_certificate"},
    inputs={
        "cas_client_address": Property(
            STRING,
            "The CAS's client API, `host:port`: owners upload sessions there. Another CAS holds another "
            "session.",
            replaces=True,
            required=True,
        ),
        "cas_ca_certificate": Property(
            STRING, "The CAS's CA certificate (PEM) the provider pins.", required=True
        ),
        "identity_certificate": Property(
            STRING, "The client certificate (PEM) the provider uploads with.", required=True
        ),
        "identity_key": Property(STRING, "The client's private key (PEM).", secret=True, required=True),
        "policy": Property(
            one_of(STRING, map_of(ANY)),
            "The policy: YAML text, or a mapping (validated, then kept as canonical YAML), without "
            "`predecessor`. A new session name replaces the resource.",
            secret=True,
            required=True,
        ),
        "adopt": Property(
            BOOLEAN, "Take a session that exists, or was changed outside Pulumi, as the predecessor."
        ),
        "delete_on_destroy": Property(BOOLEAN, "`false` keeps the session in the CAS on `pulumi destroy`."),
        "provider_version": PROVIDER_VERSION_PROPERTY,
    },
    outputs={
        "name": Property(STRING, "The session name (`namespace/session`), also the id."),
        "hash": Property(STRING, "The session hash the CAS reported for the version Pulumi last wrote."),
    },
    taking_over="declare it with `adopt: true`: the first `up` takes the CAS's active version as the "
    "predecessor of the program's policy",
)
_REQUIRED = [name for name, prop in SPEC.inputs.items() if prop.required]


def _session(props: dict[str, Any]) -> Session:
    return parse_session(str(props["policy"]))


def _meaning(policy: Any) -> str | None:
    """What a policy text means, for comparisons: its hash without a predecessor (formatting, comments and
    key order do not count)."""
    if not isinstance(policy, str) or is_unknown(policy):
        return None
    try:
        return session_hash(dataclasses.replace(parse_session(policy), predecessor=None))
    except PolicyError:
        return None


@contextmanager
def _client(props: dict[str, Any]) -> Iterator[CasClient]:
    with private_files(
        ca=str(props["cas_ca_certificate"]),
        certificate=str(props["identity_certificate"]),
        key=str(props["identity_key"]),
    ) as files:
        identity = ClientIdentity(
            files["certificate"], files["key"], certificate_key_hash(props["identity_certificate"])
        )
        with CasClient(str(props["cas_client_address"]), files["ca"], identity) as client:
            yield client


class CasSessionProvider(ReportsProgress, ResourceLogic):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {
            "adopt": False,
            "delete_on_destroy": True,
            "provider_version": PROVIDER_VERSION,
            **inputs_of(news),
        }
        failures = required(news, _REQUIRED)
        if isinstance(news.get("policy"), dict):  # a structured policy: validated and kept as YAML
            try:
                news["policy"] = render_session(session_from_data(whole_numbers(news["policy"])))
            except PolicyError as error:
                return CheckResult(news, [CheckFailure("policy", str(p)) for p in error.problems])
        policy = news.get("policy")
        if isinstance(policy, str) and not is_unknown(policy) and policy:
            try:
                session = parse_session(policy)
            except PolicyError as error:
                failures += [CheckFailure("policy", str(problem)) for problem in error.problems]
            else:
                if session.predecessor is not None:
                    failures.append(
                        CheckFailure("policy", "predecessor: leave it out; the provider chains versions")
                    )
        certificate = news.get("identity_certificate")
        if isinstance(certificate, str) and certificate and not is_unknown(certificate):
            try:
                certificate_key_hash(certificate)
            except IdentityError:
                failures.append(CheckFailure("identity_certificate", "not a PEM certificate"))
        return CheckResult(news, failures)

    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes:
        replaces = changed(olds, news, ["cas_client_address", "provider_version"])
        old_name = _name(olds.get("policy"))
        new_name = _name(news.get("policy"))
        if old_name and new_name and old_name != new_name:
            replaces.append("policy")  # another name is another session
        updates = changed(
            olds,
            news,
            ["cas_ca_certificate", "identity_certificate", "identity_key", "adopt", "delete_on_destroy"],
        )
        if _meaning(olds.get("policy")) != _meaning(news.get("policy")) and "policy" not in replaces:
            updates.append("policy")
        return Changes(updates=updates, replaces=replaces)

    def create(self, props: dict[str, Any]) -> CreateResult:
        session = _session(props)
        with _client(props) as client:
            existing = active_version(client, session.name)
            if existing is not None:
                text, active = existing
                if not props.get("adopt"):
                    raise DriftError(
                        f"session {session.name} already exists in the CAS; set adopt=True to "
                        "manage it from Pulumi (its current version becomes the predecessor)"
                    )
                current = render_session(dataclasses.replace(parse_session(text), predecessor=None))
                if _meaning(current) == _meaning(props.get("policy")):
                    # Already what we would upload (a namespace another service made): adopt it as it is.
                    return CreateResult(
                        id=session.name, outs={**inputs_of(props), "name": session.name, "hash": active}
                    )
            _, digest = upload(client, session, existing[1] if existing else None)
        return CreateResult(id=session.name, outs={**inputs_of(props), "name": session.name, "hash": digest})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        session = _session(news)
        with _client(news) as client:
            _, active = client.read_session(session.name)
            if active != olds.get("hash") and not news.get("adopt"):
                raise DriftError(
                    f"session {session.name} was changed outside Pulumi: the CAS holds version "
                    f"{active[:16]}, Pulumi last wrote {str(olds.get('hash'))[:16]}. Run `pulumi refresh` "
                    "to see the change, or set adopt=True to make the current version the predecessor."
                )
            _, digest = upload(client, session, active)
        return UpdateResult(outs={**inputs_of(news), "name": session.name, "hash": digest})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as client:
            try:
                text, digest = client.read_session(id_)
            except CasError as error:
                if error.status == 404:
                    return ReadResult(id="", outs={})  # gone (or no longer readable): the engine drops it
                raise
        current = render_session(dataclasses.replace(parse_session(text), predecessor=None))
        outs = {**inputs_of(props), "name": id_, "hash": digest}
        inputs: dict[str, Any] = {
            key: props[key]
            for key in (
                "cas_client_address",
                "cas_ca_certificate",
                "identity_certificate",
                "identity_key",
                "adopt",
                "delete_on_destroy",
                "provider_version",
            )
            if key in props
        }
        if _meaning(props.get("policy")) != _meaning(current):
            outs["policy"] = (
                current  # drift: what the CAS holds now, so the next preview shows the difference
            )
        inputs["policy"] = outs["policy"]
        return ReadResult(id=id_, outs=outs, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if not props.get("delete_on_destroy", True):
            self.warning(f"session {id_} is retained in the CAS (delete_on_destroy is false)")
            return
        with _client(props) as client:
            try:
                _, active = client.read_session(id_)
                client.delete_session(id_, active)
            except CasError as error:
                if error.status == 404:
                    return  # already gone
                if error.status == 405:
                    # A CAS without the delete extension (SCONE's): sessions cannot be deleted there.
                    self.warning(f"the CAS cannot delete sessions; {id_} is retained")
                    return
                raise


def _name(policy: Any) -> str | None:
    if not isinstance(policy, str) or is_unknown(policy):
        return None
    try:
        return parse_session(policy).name
    except PolicyError:
        return None


class CasSession(SconifyResource):
    """A session policy uploaded to a CAS. Updates name the active version as predecessor; a version made
    outside Pulumi stops an update (unless ``adopt``); ``pulumi refresh`` shows such drift."""

    name: pulumi.Output[str]
    """The session name (``namespace/session``)."""
    hash: pulumi.Output[str]
    """The session hash the CAS reported for the version Pulumi last wrote."""
    policy: pulumi.Output[str]
    """The policy text. Secret: a sconified session holds the image's FSPF key."""

    def __init__(
        self,
        resource_name: str,
        *,
        identity_certificate: pulumi.Input[str],
        identity_key: pulumi.Input[str],
        policy: pulumi.Input[str] | pulumi.Input[dict[str, Any]],
        cas_client_address: pulumi.Input[str] | None = None,
        cas_ca_certificate: pulumi.Input[str] | None = None,
        adopt: pulumi.Input[bool] = False,
        delete_on_destroy: pulumi.Input[bool] = True,
        opts: pulumi.ResourceOptions | None = None,
        **renamed: pulumi.Input[str],
    ) -> None:
        """``cas_client_address`` and ``cas_ca_certificate`` are required; ``renamed``: ``cas`` and
        ``cas_ca``, their names in 0.2, accepted with a deprecation warning."""
        inputs: dict[str, Any] = {
            "cas_client_address": cas_client_address,
            "cas_ca_certificate": cas_ca_certificate,
            "identity_certificate": identity_certificate,
            "identity_key": pulumi.Output.secret(identity_key),
            "policy": pulumi.Output.secret(policy),
            "adopt": adopt,
            "delete_on_destroy": delete_on_destroy,
            "provider_version": PROVIDER_VERSION,
            "name": None,
            "hash": None,
        }
        take_renamed(SPEC, inputs, renamed)
        for name in ("cas_client_address", "cas_ca_certificate"):
            if inputs[name] is None:
                raise TypeError(f"CasSession() missing required keyword argument {name!r}")
        super().__init__(SPEC, resource_name, inputs, opts)
