"""Programs a real engine accepts: run under the strict monitor (the engine's rules the SDK's mock lacks),
with two services on one CAS, two volumes, an external CAS on AKS, protection, adoption — and a program
the engine refuses, which the monitor refuses too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.pulumi.program_runner import plain
from tests.support.pulumi.programs import (
    STACKS_DIRECTORY,
    program_failure,
    program_run,
    python_inputs,
    root_program_copy,
    run_program,
)


def with_config(program: Path, stack: str, settings: dict[str, str]) -> None:
    stack_file = program / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(stack_file.read_text()) or {}
    document.setdefault("config", {}).update(settings)
    stack_file.write_text(yaml.safe_dump(document))


pytestmark = pytest.mark.slow


def children_of(run: Any, parent: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in run.registrations if str(r["parent"]).rsplit("::", 1)[-1] == parent}


def test_the_monitor_refuses_what_the_engine_refuses() -> None:
    error, run = program_failure(STACKS_DIRECTORY / "duplicate", "dev")
    assert "Duplicate resource URN" in error and "test:index:Twin$command:local:Command::child" in error
    assert [r["name"] for r in run.registrations if r["type"] == "command:local:Command"] == ["child"]


def test_two_services_share_one_cas_and_one_has_two_volumes() -> None:
    run = run_program(STACKS_DIRECTORY / "shared_cas", "dev")
    urns = [r["urn"] for r in run.registrations]
    assert len(urns) == len(set(urns))  # and the strict monitor let every one through
    claims = {
        plain(r["inputs"])["metadata"]["name"]: plain(r["inputs"])["spec"]["resources"]["requests"]["storage"]
        for r in run.of_type(":PersistentVolumeClaim")
    }
    assert claims == {
        "alpha-sconify-counter-volumev1": "1Gi",
        "beta-sconify-counter-volumev1": "2Gi",
        "beta-sconify-counter-volumev2": "512Mi",
    }
    sessions = {r["name"]: python_inputs(r) for r in run.of_type("CasSession")}
    # One CAS namespace, uploaded by both and adopted by whichever comes second; never deleted with one.
    assert {name for name in sessions if name.endswith("cas-namespace")} == {
        "alpha-cas-namespace",
        "beta-cas-namespace",
    }
    assert all(
        session["adopt"] is True and session["delete_on_destroy"] is False
        for name, session in sessions.items()
        if name.endswith("cas-namespace")
    )
    accounts = {plain(r["inputs"])["metadata"]["name"] for r in run.of_type(":ServiceAccount")}
    assert {"alpha-sconify-counter", "beta-sconify-counter"} <= accounts
    images = {python_inputs(r)["native_image"] for r in run.of_type("SconifiedImage")}
    assert all(
        image.startswith("192.168.49.2:5000/sconify-native/") and "@sha256:" in image for image in images
    )
    assert len(images) == 2


def test_an_external_cas_a_statefulset_and_a_protected_component() -> None:
    run = run_program(STACKS_DIRECTORY / "external_cas", "prod")
    service = children_of(run, "ledger")
    assert all(child["protect"] for child in service.values()), [
        n for n, c in service.items() if not c["protect"]
    ]
    claim = children_of(run, "ledger-volume-data")["ledger-volume-data-claim"]
    assert claim["protect"] is True  # protection reaches the data
    session = python_inputs(service["ledger-session"])
    assert session["adopt"] is True
    statefulset = plain(service["ledger-statefulset"]["inputs"])
    assert statefulset["metadata"]["namespace"] == "ledger"
    namespace = plain(service["ledger-kubernetes-namespace"]["inputs"])
    assert namespace["metadata"]["name"] == "ledger"
    assert service["ledger-kubernetes-namespace"]["urn"] in service["ledger-statefulset"]["dependencies"]
    assert run.exports["endpoint"]["value"] == "ledger-sconify-ledger.ledger.svc.cluster.local:8443"


def test_a_legacy_stack_keeps_its_children_under_aliases(tmp_path: Path) -> None:
    """A stack made by version 0.1 (children under bare names) sets sconify:legacyChildNames: every child
    then carries an alias to its old name, so the engine renames rather than replaces."""
    program = root_program_copy(tmp_path)
    with_config(program, "dev", {"sconify:legacyChildNames": "true"})
    run = run_program(program, "dev")
    components = {r["urn"]: r["name"] for r in run.registrations if not r["custom"]}
    checked = 0
    for registration in run.registrations:
        parent = components.get(registration["parent"])
        if not parent:
            continue
        old_name = registration["name"].removeprefix(f"{parent}-")
        assert old_name != registration["name"], registration["name"]
        assert any(alias.endswith(f"::{old_name}") for alias in registration["aliases"]), registration["name"]
        checked += 1
    assert checked >= 20
    # Without the setting no alias names another resource (pulumi-kubernetes' own aliases name older API
    # versions of the same resource): two components of one type may coexist.
    assert all(
        alias.rsplit("::", 1)[-1] == registration["name"]
        for registration in program_run("root", "dev").registrations
        for alias in registration["aliases"]
    )


def test_the_resources_are_the_plugins_and_take_over_the_dynamic_providers_state(tmp_path: Path) -> None:
    """Every sconify resource is served by the plugin of this package's version, and aliased to the token
    its dynamic provider gave it before — the URN an existing stack holds it under. In a stack of version
    0.1 (bare child names) the alias carries both the old token and the old name."""
    from pulumi_sconify.engine.version import __version__

    def plugin_resources(run: Any) -> list[dict[str, Any]]:
        return [r for r in run.registrations if r["type"].startswith("sconify:index:") and r["custom"]]

    current = plugin_resources(program_run("root", "aks"))
    assert {r["type"].rsplit(":", 1)[1] for r in current} == {
        "CasImage", "CasKeys", "CasRecoveryKey", "CasSession", "CreatorIdentity", "SconifiedImage",
    }  # fmt: skip
    for registration in current:
        name, kind = registration["name"], registration["type"].rsplit(":", 1)[1]
        assert registration["version"] == __version__, name
        old_urn = registration["urn"].replace(registration["type"], f"pulumi-python:dynamic/sconify:{kind}")
        assert old_urn in registration["aliases"], name
    program = root_program_copy(tmp_path)
    with_config(program, "dev", {"sconify:legacyChildNames": "true"})
    for registration in plugin_resources(run_program(program, "dev")):
        kind = registration["type"].rsplit(":", 1)[1]
        bare = (
            registration["name"].split("-", 1)[1]
            if registration["parent"].endswith(("::counter", "::cas"))
            else ""
        )
        if bare:
            assert any(
                f"pulumi-python:dynamic/sconify:{kind}::{bare}" in alias for alias in registration["aliases"]
            ), registration["name"]


def test_legacy_aliases_and_two_components_of_one_type_are_refused_as_by_the_engine(tmp_path: Path) -> None:
    program = tmp_path / "shared"
    shutil.copytree(STACKS_DIRECTORY / "shared_cas", program)
    with_config(program, "dev", {"sconify:legacyChildNames": "true"})
    error, _ = program_failure(program, "dev")
    assert "its alias" in error and "::build is the URN or alias of" in error


def test_production_protects_the_cas_keys_its_database_and_the_session() -> None:
    run = program_run("aks", "prod")
    assert run.by_name("counter-session", "CasSession")["protect"] is True
    session = python_inputs(run.by_name("counter-session", "CasSession"))
    assert session["delete_on_destroy"] is False  # a destroy keeps the volumes' keys in the CAS
    assert run.by_name("cas-keys")["protect"] is True
    assert run.by_name("cas-recovery")["protect"] is True
    server = run.by_name("cas-store-server")
    assert server["protect"] is True and server["retain_on_delete"] is True
    # No claim: the state is in the database, which a destroy keeps.
    statefulset = plain(run.by_name("cas-statefulset")["inputs"])
    assert "volumeClaimTemplates" not in statefulset["spec"]


def test_a_cas_on_sqlite_keeps_its_claim_when_the_statefulset_goes() -> None:
    statefulset = plain(program_run("root", "dev").by_name("cas-statefulset")["inputs"])
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_the_native_image_depends_on_no_local_file() -> None:
    run = program_run("root", "dev")
    build = plain(run.by_name("counter-build")["inputs"])
    assert "push" in build["create"] and ".tar" not in build["create"] and "save" not in build["create"]
    image = python_inputs(run.by_name("counter-image", "SconifiedImage"))
    assert image["native_image"].startswith("192.168.49.2:5000/sconify-native/counter@sha256:")


def test_minikube_is_replaced_by_deleting_first() -> None:
    run = program_run("root", "dev")
    assert run.by_name("cluster-start")["delete_before_replace"] is True
