"""CreatorIdentity and CasSession through Pulumi's dynamic-provider host, against a real CAS."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pulumi.output import Unknown

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.errors import DriftError
from pulumi_sconify.engine.policy import parse_session, render_session
from pulumi_sconify.provider.resources.identity import CreatorIdentityProvider
from pulumi_sconify.provider.resources.session import CasSessionProvider
from tests.support.cas import RunningCas
from tests.support.policies import FSPF_KEY, counter, namespace, text, with_pwd
from tests.support.pulumi.logic_host import DIFF_NONE, DIFF_SOME, UNKNOWN, LogicHost, strip


def test_creator_identity_lifecycle() -> None:
    with LogicHost(CreatorIdentityProvider(), "CreatorIdentity") as host:
        inputs, failures = host.check({}, {"common_name": "ci"})
        assert failures == []
        created = host.create(inputs)
        assert created.id == created.outs["key_hash"] and len(created.id) == 64
        assert created.outs["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
        assert host.diff(created.id, strip(created.outs), {**strip(inputs)}).changes == DIFF_NONE
        renamed = host.diff(created.id, strip(created.outs), {**strip(inputs), "common_name": "other"})
        assert renamed.changes == DIFF_SOME and list(renamed.replaces) == ["common_name"]
        read_id, read_outs, _ = host.read(created.id, strip(created.outs))
        assert read_id == created.id and read_outs["key_hash"] == created.id
        host.delete(created.id, strip(created.outs))


@pytest.fixture
def connection(cas: RunningCas, owner: ClientIdentity) -> dict[str, Any]:
    with cas.client(owner) as client:
        client.post_session(namespace())
    return dict(cas.connection(owner))


def test_cas_session_lifecycle(cas: RunningCas, owner: ClientIdentity, connection: dict[str, Any]) -> None:
    with LogicHost(CasSessionProvider(), "CasSession") as host:
        inputs, failures = host.check({}, {**connection, "policy": text(counter())})
        assert failures == []
        created = host.create(inputs)
        assert created.id == "ns-1/python-session"
        with cas.client(owner) as client:
            assert client.read_session(created.id)[1] == created.outs["hash"]

        state = strip(created.outs)
        same_meaning = render_session(counter()).replace("access_policy:", "# reformatted\naccess_policy:")
        assert host.diff(created.id, state, {**strip(inputs), "policy": same_meaning}).changes == DIFF_NONE
        changed_inputs = {**strip(inputs), "policy": text(with_pwd(counter(), "/code"))}
        diff = host.diff(created.id, state, changed_inputs)
        assert diff.changes == DIFF_SOME and list(diff.replaces) == []  # an update in place
        updated = host.update(created.id, state, changed_inputs)
        with cas.client(owner) as client:
            stored, digest = client.read_session(created.id)
        assert digest == updated["hash"]
        assert parse_session(stored).predecessor == created.outs["hash"]

        # Someone changes the session behind Pulumi's back: refresh shows it, update refuses it.
        with cas.client(owner) as client:
            client.post_session(text(with_pwd(counter(predecessor=updated["hash"]), "/elsewhere")))
        _, refreshed, refreshed_inputs = host.read(created.id, strip(updated))
        assert refreshed["hash"] != updated["hash"]
        assert parse_session(refreshed_inputs["policy"]).services[0].pwd == "/elsewhere"
        again = {**strip(inputs), "policy": text(with_pwd(counter(), "/third"))}
        with pytest.raises(DriftError, match="changed outside Pulumi"):
            host.update(created.id, strip(updated), again)
        adopted = host.update(created.id, strip(updated), {**again, "adopt": True})
        assert adopted["hash"] != refreshed["hash"]

        host.delete(created.id, strip(adopted))
        gone_id, _, _ = host.read(created.id, strip(adopted))
        assert gone_id == ""


def test_check_failures_and_unknowns(connection: dict[str, Any]) -> None:
    with LogicHost(CasSessionProvider(), "CasSession") as host:
        broken = text(counter()).replace(f"fspf_key: {FSPF_KEY}", "fspf_key: nothex")
        _, failures = host.check({}, {**connection, "policy": broken})
        assert ("policy", "services[0].fspf_key: expected 64 hex characters") in failures
        assert all("nothex" not in reason for _, reason in failures)
        _, missing = host.check({}, {"policy": text(counter())})
        assert ("cas_client_address", "cas_client_address is required") in missing
        preview_inputs, preview_failures = host.check({}, {**connection, "policy": UNKNOWN})
        assert preview_failures == [] and isinstance(preview_inputs["policy"], Unknown)
        _, with_predecessor = host.check({}, {**connection, "policy": text(counter(predecessor="ab" * 32))})
        assert with_predecessor and with_predecessor[0][0] == "policy"
        # A structured policy (a mapping, as a Pulumi program may build it) is validated and kept as YAML.
        structured = yaml.safe_load(text(counter()))
        structured_inputs, structured_failures = host.check({}, {**connection, "policy": structured})
        assert structured_failures == [] and parse_session(structured_inputs["policy"]) == counter()
        structured["version"] = 0.3
        _, bad_structure = host.check({}, {**connection, "policy": structured})
        assert bad_structure == [("policy", 'version: must be a quoted string: version: "0.3"')]
        state = {
            **connection,
            "policy": text(counter()),
            "adopt": False,
            "delete_on_destroy": True,
            "provider_version": "1",
            "name": "ns-1/python-session",
            "hash": "0" * 64,
        }
        unknown_diff = host.diff("ns-1/python-session", state, {**connection, "policy": UNKNOWN})
        assert unknown_diff.changes == DIFF_SOME


def test_existing_session_needs_adopt(
    cas: RunningCas, owner: ClientIdentity, connection: dict[str, Any]
) -> None:
    with cas.client(owner) as client:
        existing = client.post_session(text(counter()))
    with LogicHost(CasSessionProvider(), "CasSession") as host:
        inputs, _ = host.check({}, {**connection, "policy": text(counter())})
        with pytest.raises(DriftError, match="already exists in the CAS; set adopt=True"):
            host.create(inputs)
        # The same policy: adopted as it is, no new version.
        same = host.create({**inputs, "adopt": True})
        assert same.id == "ns-1/python-session" and same.outs["hash"] == existing
        # Another policy: the existing version becomes its predecessor.
        changed, _ = host.check({}, {**connection, "policy": text(with_pwd(counter(), "/srv"))})
        updated = host.create({**changed, "adopt": True})
        assert updated.outs["hash"] != existing
    with cas.client(owner) as client:
        text_now, digest = client.read_session("ns-1/python-session")
    assert digest == updated.outs["hash"] and f"predecessor: {existing}" in text_now
