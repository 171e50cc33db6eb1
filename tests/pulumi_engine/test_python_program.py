"""A Python program with the package's classes, run by the real engine: the Automation API's inline
program, whose language host is this process (Pulumi's Python language host is a module the Go proxy does
not serve, so ``pulumi up`` of a ``runtime: python`` project cannot run here; the engine, the plugin and
the state are the same). Create, import, a second run that changes nothing, destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import automation as auto

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.provider.resources import CasKeys, CasSession, CreatorIdentity
from tests.support.cas import RunningCas, identity
from tests.support.policies import FSPF_KEY, counter, namespace, text
from tests.support.pulumi.engine import Engine, connection, inline_stack


def test_a_python_program_up_import_and_destroy(engine: Engine, cas: RunningCas, tmp_path: Path) -> None:
    def sessions() -> None:
        creator = CreatorIdentity("creator")
        to_cas = connection(cas, creator)
        space = CasSession("namespace", **to_cas, policy=namespace(), delete_on_destroy=False)
        service = CasSession(
            "service",
            **to_cas,
            policy=pulumi.Output.secret(text(counter())),
            opts=pulumi.ResourceOptions(depends_on=[space]),
        )
        CasKeys("keys")
        pulumi.export("session", service.name)

    program = inline_stack(engine, tmp_path / "python", sessions)
    up = program.up()
    assert up.summary.result == "succeeded" and up.outputs["session"].value == "ns-1/python-session"
    assert up.summary.resource_changes == {"create": 5}
    exported = json.dumps(engine.export("test", program.workspace.work_dir))  # not --show-secrets
    assert FSPF_KEY not in exported and "PRIVATE KEY" not in exported
    again = program.preview()
    assert again.change_summary == {"same": 5}
    destroyed = program.destroy()
    # The kept namespace is a warning in the engine's output, under its resource (not the plugin's stderr).
    (kept,) = [b for b in destroyed.stdout.split("\n\n") if "sconify:index:CasSession (namespace):" in b]
    assert "warning: session ns-1 is retained in the CAS (delete_on_destroy is false)" in kept


def test_an_existing_session_is_taken_over_by_adoption_not_by_import(
    engine: Engine, cas: RunningCas, tmp_path: Path
) -> None:
    """A session made outside Pulumi. The engine imports with the id alone (read in Pulumi's ImportStep),
    which cannot reach a CAS: the import is refused in one line that says what to do, and nothing is
    changed; with ``adopt`` the program takes the session over, and the next run changes nothing."""
    owner: ClientIdentity = identity(tmp_path, "owner")
    with cas.client(owner) as client:
        client.post_session(namespace())
        before = client.post_session(text(counter()))
    given = cas.connection(owner)

    def as_owner() -> dict[str, Any]:  # Outputs belong to the program's own run (its event loop)
        return {**given, "identity_key": pulumi.Output.secret(given["identity_key"])}

    def imported() -> None:
        CasSession(
            "service",
            **as_owner(),
            policy=pulumi.Output.secret(text(counter())),
            opts=pulumi.ResourceOptions(import_="ns-1/python-session"),
        )

    with pytest.raises(auto.CommandError) as refused:
        inline_stack(engine, tmp_path / "import", imported).up()
    output = str(refused.value)
    assert "CasSession cannot be imported by id" in output and "adopt: true" in output
    assert "Traceback" not in output and 'File "' not in output and "Unexpected <class" not in output
    with cas.client(owner) as client:
        assert client.read_session("ns-1/python-session")[1] == before

    def adopted() -> None:
        CasSession("service", **as_owner(), policy=pulumi.Output.secret(text(counter())), adopt=True)

    program = inline_stack(engine, tmp_path / "adopt", adopted)
    assert program.up().summary.resource_changes == {"create": 1, "same": 1}  # the stack is the one above
    assert program.preview().change_summary == {"same": 2}
