"""A Pulumi YAML program with the package's resources, run by the real engine and the real YAML language
host against a real CAS: preview, up, a second up that changes nothing, a reviewable diff, refresh, the
state's secrets, destroy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pulumi_sconify.engine.errors import CasError
from tests.support.cas import RunningCas, identity
from tests.support.policies import FSPF_KEY, counter, text, with_pwd
from tests.support.pulumi.engine import Engine, sessions_program

STACK = "test"


@pytest.fixture
def program(tmp_path: Path, engine: Engine, cas: RunningCas) -> Path:
    """The program copied where no path leads back into this checkout, its stack configured."""
    return sessions_program(engine, cas, tmp_path / "program", STACK)


def test_up_refresh_and_destroy_under_the_real_engine(
    engine: Engine, program: Path, cas: RunningCas, tmp_path: Path
) -> None:
    preview = engine.preview(program)
    assert preview["changeSummary"] == {"create": 5}  # the stack and its four resources
    planned = {step["urn"].rsplit("::", 1)[1] for step in preview["steps"]}
    assert planned == {"sconify-sessions-test", "creator", "keys", "namespace", "service"}

    engine.run("up", "--yes", cwd=program)
    outputs = json.loads(engine.run("stack", "output", "--json", cwd=program).stdout)
    assert outputs["session"] == "ns-1/python-session"
    exported = json.dumps(engine.export(STACK, program))
    assert FSPF_KEY not in exported and "PRIVATE KEY" not in exported

    # Nothing changed: a second up from the state alone changes nothing.
    engine.run("preview", "--expect-no-changes", cwd=program)

    # A changed policy is an update, not a replacement.
    engine.run(
        "config", "set", "--secret", "servicePolicy", cwd=program, stdin=text(with_pwd(counter(), "/w"))
    )
    changed = engine.preview(program)
    assert changed["changeSummary"] == {"same": 4, "update": 1}
    (update,) = [step for step in changed["steps"] if step["op"] == "update"]
    assert update["urn"].endswith("::service") and update["diffReasons"] == ["policy"]
    engine.run("up", "--yes", cwd=program)
    updated = json.loads(engine.run("stack", "output", "--json", cwd=program).stdout)
    assert updated["hash"] != outputs["hash"]

    engine.run("refresh", "--yes", "--expect-no-changes", cwd=program)
    engine.run("destroy", "--yes", cwd=program)
    assert engine.export(STACK, program)["deployment"].get("resources") in (None, [])


def test_a_wrong_ca_is_named_in_one_line_and_nothing_is_made(
    engine: Engine, program: Path, cas: RunningCas, tmp_path: Path
) -> None:
    """The CA of someone else (a self-signed certificate): the engine's output names TLS verification,
    not an unreachable host, on one line, with no Python trace; the CAS holds no session."""
    stranger = identity(tmp_path, "stranger")
    engine.run("config", "set", "casCa", cwd=program, stdin=stranger.certificate.read_text())
    failed = engine.run("up", "--yes", cwd=program, check=False)
    assert failed.returncode != 0
    diagnostics = failed.stdout.split("Diagnostics:", 1)[1].split("\n\n")
    (namespace_error,) = [block for block in diagnostics if "CasSession (namespace):" in block]
    _heading, line = namespace_error.strip().splitlines()  # the error is one line under its resource
    assert line.strip().startswith(f"error: CAS at {cas.address} not trusted: TLS verification failed")
    assert "Traceback" not in failed.stdout and 'File "' not in failed.stdout
    assert "Unexpected <class" not in failed.stdout
    owner = identity(tmp_path, "owner")
    with cas.client(owner) as client, pytest.raises(CasError) as missing:
        client.read_session("ns-1")
    assert missing.value.status == 404


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def test_a_state_with_the_snake_case_names_of_earlier_versions_is_renamed_not_replaced(
    engine: Engine, program: Path, cas: RunningCas
) -> None:
    """Versions before 0.2 wrote snake_case property names into the state (``identity_key``). The state of
    such a stack, imported into the engine: the next `up` rewrites each resource under the camelCase names
    (an update that changes nothing else — other resources, in any language, read the outputs by the new
    names); nothing is replaced, no key is made anew, the sessions in the CAS stay as they are."""
    engine.run("up", "--yes", cwd=program)
    before = engine.export(STACK, program)
    exported = json.loads(json.dumps(before))
    for resource in exported["deployment"]["resources"]:
        if resource["type"].startswith("sconify:index:"):
            for part in ("inputs", "outputs", "propertyDependencies"):
                resource[part] = {snake_case(key): value for key, value in resource.get(part, {}).items()}
            resource["additionalSecretOutputs"] = [
                snake_case(name) for name in resource.get("additionalSecretOutputs", [])
            ]
    earlier = program / "earlier-state.json"
    earlier.write_text(json.dumps(exported))
    assert '"identity_key"' in earlier.read_text() and '"identityKey"' not in earlier.read_text()
    engine.run("stack", "import", "--file", str(earlier), cwd=program)

    planned = engine.preview(program)
    assert set(planned["changeSummary"]) <= {"update", "same"}, planned["changeSummary"]
    engine.run("up", "--yes", cwd=program)
    after = engine.export(STACK, program)
    rewritten = json.dumps(after)
    assert '"identityKey"' in rewritten and '"identity_key"' not in rewritten
    assert "PRIVATE KEY" not in rewritten
    outputs = {r["urn"]: r.get("outputs", {}) for r in after["deployment"]["resources"]}
    for resource in before["deployment"]["resources"]:  # the same keys, hashes and ids as before
        if resource["type"].startswith("sconify:index:"):
            for name in ("keyHash", "caCertificatePem", "hash", "name"):
                assert outputs[resource["urn"]].get(name) == resource["outputs"].get(name)
    engine.run("preview", "--expect-no-changes", cwd=program)
