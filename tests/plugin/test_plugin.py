"""The ``sconify`` provider plugin over gRPC, as the engine drives it: its schema against Pulumi's package
metaschema, configuration, Check failures per field, detailed diffs, the resources' lifecycles against a
real CAS, secrets that stay marked on the wire, and states written by the dynamic providers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import provider_pb2_grpc

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.version import __version__
from pulumi_sconify.provider.plugin.kinds import KINDS
from pulumi_sconify.provider.plugin.schema import package_schema
from pulumi_sconify.provider.resources.base import PROVIDER_KEY
from pulumi_sconify.provider.resources.spec import wire_name
from tests.support.cas import RunningCas
from tests.support.paths import FIXTURES
from tests.support.policies import counter, namespace, text, with_pwd
from tests.support.pulumi.logic_host import Created, LogicHost, strip
from tests.support.pulumi.plugin_host import (
    DIFF_NONE,
    DIFF_SOME,
    PLUGIN_DIRECTORY,
    UNKNOWN,
    PluginHost,
    is_secret,
    reveal,
    secret,
    to_struct,
)

PULUMI_FIXTURES = FIXTURES / "pulumi"


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    with PluginHost() as running:
        yield running


def metaschema_validator() -> jsonschema.protocols.Validator:
    """Pulumi's package metaschema. Its version patterns use ECMAScript's named groups (``(?<name>``),
    which Python's ``re`` spells ``(?P<name>``: the pattern keyword translates them, nothing else changes."""

    def pattern(
        validator: Any, expected: str, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if isinstance(instance, str) and not re.search(
            re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", expected), instance
        ):
            yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    extend: Any = jsonschema.validators.extend  # untyped in jsonschema's stubs
    validator_class = extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    validator: jsonschema.protocols.Validator = validator_class(
        json.loads((PULUMI_FIXTURES / "package-metaschema.json").read_text())
    )
    return validator


def test_the_schema_is_a_valid_pulumi_package_and_describes_everything(host: PluginHost) -> None:
    served = json.loads(host.stub.GetSchema(proto.GetSchemaRequest(version=0)).schema)
    errors = [f"{e.json_path}: {e.message[:200]}" for e in metaschema_validator().iter_errors(served)]
    assert errors == []
    assert served["name"] == "sconify" and served["version"] == __version__
    resources = {k: v for k, v in served["resources"].items() if not v.get("isComponent")}
    components = {k: v for k, v in served["resources"].items() if v.get("isComponent")}
    assert set(resources) == {
        f"sconify:index:{name}"
        for name in (
            "CasImage",
            "CasKeys",
            "CasRecoveryKey",
            "CasSession",
            "CreatorIdentity",
            "SconifiedImage",
        )
    }
    assert set(components) == {
        f"sconify:index:{name}"
        for name in (
            "AksCluster", "AzurePostgres", "CasDeployment", "ConfidentialStatefulService", "DockerfileImage",
            "EncryptedVolume", "ExternalCas", "InClusterPostgres", "MinikubeCluster",
        )
    }  # fmt: skip
    for token, described in [*components.items(), *served["types"].items()]:
        assert described["description"], token
        if "enum" in described:  # a closed set: its values, no properties
            assert described["type"] == "string" and described["enum"], token
            continue
        properties = [*described.get("inputProperties", {}).items(), *described["properties"].items()]
        for name, prop in properties:
            assert prop["description"], f"{token}.{name}"
            reference = prop.get("$ref") or prop.get("items", {}).get("$ref", "")
            if reference.startswith("#/types/"):
                assert reference.removeprefix("#/types/") in served["types"], f"{token}.{name}"
    assert components["sconify:index:MinikubeCluster"]["properties"]["kubeconfig"]["secret"]
    assert served["types"]["sconify:index:PostgresStore"]["properties"]["password"]["secret"]
    assert components["sconify:index:CasDeployment"]["inputProperties"]["replicas"][
        "plain"
    ]  # checked at once
    assert "plain" not in components["sconify:index:CasDeployment"]["inputProperties"]["image"]  # an Input
    for token, resource in resources.items():
        spec = KINDS[token].spec
        assert resource["description"]
        assert "aliases" not in resource  # the dynamic providers' tokens are the Python classes' own
        for name, described in [*resource["properties"].items(), *resource["inputProperties"].items()]:
            assert described["description"], f"{token}.{name}"
        secrets = {name for name, p in resource["properties"].items() if p.get("secret")}
        assert secrets == set(spec.wire_names(spec.secret_outputs)), token
        assert "providerVersion" not in resource["inputProperties"]  # the provider's own plumbing
    # Pulumi's conventions: camelCase names in every language, no snake_case left anywhere.
    names = [
        name
        for described in [*served["resources"].values(), *served["types"].values()]
        for name in [*described.get("inputProperties", {}), *described.get("properties", {})]
    ]
    assert names and not [name for name in names if "_" in name]
    assert not re.search(r":class:|``|\bNone\b", json.dumps(served))  # Markdown, not Python's markup
    assert served["language"]["python"]["packageName"] != "pulumi_sconify"  # never shadows this package
    assert served["language"]["nodejs"]["packageName"].startswith("@pulumi-sconify/")
    assert [v["value"] for v in served["types"]["sconify:index:WorkloadType"]["enum"]] == [
        "job", "deployment", "statefulset", "daemonset"
    ]  # fmt: skip
    assert served["resources"]["sconify:index:SconifiedImage"]["inputProperties"]["workloadType"]["$ref"] == (
        "#/types/sconify:index:WorkloadType"
    )
    keys = served["resources"]["sconify:index:CasKeys"]["properties"]
    assert keys["masterKey"]["secret"] and keys["caKeyPem"]["secret"]
    assert not keys["caCertificatePem"].get("secret")
    session = served["resources"]["sconify:index:CasSession"]
    assert (
        session["inputProperties"]["policy"]["secret"] and session["inputProperties"]["identityKey"]["secret"]
    )
    assert set(session["requiredInputs"]) == {
        "casClientAddress",
        "casCaCertificate",
        "identityCertificate",
        "identityKey",
        "policy",
    }


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((PLUGIN_DIRECTORY / "schema.json").read_text())
    assert committed == package_schema(__version__), (
        "regenerate: python -m pulumi_sconify.provider.plugin --schema"
    )


def test_the_metaschema_refuses_what_is_not_a_package() -> None:
    """The check above could pass vacuously; it does not."""
    schema = package_schema(__version__)
    schema["resources"]["sconify:index:CasKeys"]["inputProperties"]["commonName"]["type"] = "text"
    schema["version"] = "one"
    assert len(list(metaschema_validator().iter_errors(schema))) >= 2


def test_the_provider_takes_the_packages_stack_settings_and_nothing_else(host: PluginHost) -> None:
    """The engine hands the default provider every ``sconify:*`` key of the stack: the setting the README
    tells a 0.1 stack to set is accepted, anything else is named."""
    urn = f"{host.prefix}pulumi:providers:sconify::default"
    response = host.stub.CheckConfig(proto.CheckRequest(urn=urn, olds=None, news=None))
    assert list(response.failures) == []
    legacy = host.stub.CheckConfig(
        proto.CheckRequest(urn=urn, news=to_struct({"version": "0.2.0", "legacyChildNames": "true"}))
    )
    assert list(legacy.failures) == []
    refused = host.stub.CheckConfig(
        proto.CheckRequest(urn=urn, news=to_struct({"version": "0.1.0", "casAddress": "cas:8081"}))
    )
    assert [(f.property, f.reason) for f in refused.failures] == [
        ("casAddress", "not a setting of the sconify package (legacyChildNames)")
    ]


@pytest.mark.parametrize(
    ("kind", "inputs", "expected"),
    [
        ("CasKeys", {"commonName": 5}, [("commonName", "expected a string")]),
        ("CasKeys", {"commonNam": "x"}, [("commonNam", "not an input of CasKeys")]),
        (
            "SconifiedImage",
            {"nativeImage": "r/native:1", "target": "r/c:1", "command": "app", "dirs": "/code"},
            [
                ("dirs", "expected a list"),
                ("session", "session is required"),
                ("namespace", "namespace is required"),
            ],
        ),
        (
            "SconifiedImage",
            {
                "nativeImage": "UPPER CASE",
                "target": "r/c:1",
                "command": "app",
                "session": "s",
                "namespace": "n",
            },
            [("nativeImage", None)],
        ),
        ("CasSession", {"cas": "cas:8081", "adopt": "yes"}, [("adopt", "expected true or false")]),
    ],
)
def test_check_names_each_bad_input(
    host: PluginHost, kind: str, inputs: dict[str, Any], expected: list[tuple[str, str | None]]
) -> None:
    _, failures = host.check(kind, {}, inputs)
    named = {name for name, _ in failures}
    for name, reason in expected:
        assert name in named, failures
        if reason is not None:
            assert (name, reason) in failures


IMAGE = {"nativeImage": "r/native:1", "target": "r/c:1", "command": "app", "session": "s", "namespace": "n"}


@pytest.mark.parametrize(
    ("inputs", "field", "reason"),
    [
        ({"tolerate": ["debug-mod"]}, "tolerate", "unknown toleration"),
        ({"volumes": {"V1": "data"}}, "volumes", "expected a normalised absolute path"),
        ({"dirs": ["code"]}, "dirs", "expected a normalised absolute path"),
        ({"volumes": {"bad name": "/data"}}, "volumes", "a volume's name is"),
        ({"workloadType": "cronjob"}, "workloadType", "expected one of job, deployment, statefulset"),
        ({"platform": "linux/sparc"}, "platform", ""),
        ({"fspfKey": "zz" * 32}, "fspfKey", "expected 64 hexadecimal digits"),
        ({"fspfKey": "ab" * 16}, "fspfKey", "expected 64 hexadecimal digits"),
        ({"env": {"A B": "x"}}, "env", "variable names must be"),
        ({"service": "bad name"}, "service", "expected a name"),
    ],
)
def test_check_refuses_what_create_would_before_anything_is_pulled(
    host: PluginHost, inputs: dict[str, Any], field: str, reason: str
) -> None:
    """Each of these passed Check and failed in Create, after the image was built and pushed. The native
    image's registry does not exist: a check that got as far as resolving it would name native_image."""
    _, failures = host.check("SconifiedImage", {}, {**IMAGE, **inputs})
    assert [name for name, _ in failures] == [field], failures
    assert reason in failures[0][1]


def test_the_planned_policy_is_plain_unless_an_input_it_shows_is_secret(host: PluginHost) -> None:
    pinned = {**IMAGE, "nativeImage": "r/native@sha256:" + "a" * 64, "fspfKey": secret("e" * 64)}
    checked, failures = host.check("SconifiedImage", {}, pinned)
    assert failures == [] and not is_secret(checked["policyOutline"])
    assert "e" * 64 not in checked["policyOutline"] and "fspf_key: '[secret]'" in checked["policyOutline"]
    with_secret_env, _ = host.check("SconifiedImage", {}, {**pinned, "env": secret({"TOKEN": "t0ken"})})
    assert is_secret(with_secret_env["policyOutline"])


def test_a_preview_with_an_unknown_inside_an_input_plans_nothing_and_refuses_nothing(
    host: PluginHost,
) -> None:
    """An issuer from another resource is unknown in a preview: the planned policy waits for it."""
    pinned = {**IMAGE, "native_image": "r/native@sha256:" + "a" * 64}
    identity = {"issuer": UNKNOWN, "namespace": "ns", "service_account": "counter"}
    checked, failures = host.check("SconifiedImage", {}, {**pinned, "kubernetes": identity})
    assert failures == [] and "policyOutline" not in checked


def test_a_bad_policy_is_named_by_its_field_and_the_secret_is_not_repeated(host: PluginHost) -> None:
    policy = text(counter()).replace("fspf_key:", "fspf_key: not-hex\n    x_fspf_key:")
    _, failures = host.check(
        "CasSession",
        {},
        {
            "cas": "cas:8081",
            "casCa": "CA",
            "identityCertificate": "not a certificate",
            "identityKey": secret("KEY-SECRET-VALUE"),
            "policy": secret(policy),
        },
    )
    named = {name for name, _ in failures}
    assert {"policy", "identityCertificate"} <= named
    assert all("KEY-SECRET-VALUE" not in reason and "not-hex" not in reason for _, reason in failures)


def test_inputs_of_their_0_2_names_are_taken_under_the_new_ones(host: PluginHost) -> None:
    """0.2 called both CAS endpoints `cas`: a program or state that still does is read with the new names
    (the first update writes them), and nothing of it is refused."""
    checked, failures = host.check(
        "CasSession",
        {},
        {
            "cas": "cas:8081",
            "casCa": "CA",
            "identityCertificate": UNKNOWN,
            "identityKey": secret("KEY"),
            "policy": secret(text(counter())),
        },
    )
    assert failures == []
    assert checked["casClientAddress"] == "cas:8081" and checked["casCaCertificate"] == "CA"
    assert "cas" not in checked and "casCa" not in checked


def test_check_keeps_secrets_marked_and_unknowns_unknown(host: PluginHost) -> None:
    checked, failures = host.check(
        "CasSession",
        {},
        {
            "casClientAddress": UNKNOWN,
            "casCaCertificate": UNKNOWN,
            "identityCertificate": UNKNOWN,
            "identityKey": secret(UNKNOWN),
            "policy": secret(text(counter())),
        },
    )
    assert failures == []
    assert checked["casClientAddress"] == UNKNOWN
    assert is_secret(checked["identityKey"]) and is_secret(checked["policy"])
    assert checked["adopt"] is False and checked["deleteOnDestroy"] is True  # defaults filled in


def test_a_detailed_diff_names_each_change_and_its_kind(host: PluginHost) -> None:
    old = {
        "nativeImage": "r/native:1",
        "nativeDigest": "r/native@sha256:" + "a" * 64,
        "target": "r/c:1",
        "command": "python3 app.py",
        "session": "s",
        "namespace": "n",
        "fspfKey": secret("f" * 64),
        "providerVersion": "1",
        "engine": "open",
    }
    same = host.diff("SconifiedImage", "r/c:1", old, {**old, "nativeImage": "r/native:other-tag"})
    assert same.changes == DIFF_NONE  # another tag, the same digest
    new = {**old, "command": "python3 app.py -v", "target": "r/elsewhere:1", "env": {"A": "1"}}
    changed = host.diff("SconifiedImage", "r/c:1", old, new)
    assert changed.changes == DIFF_SOME
    assert host.detailed(changed) == {"command": "UPDATE", "target": "UPDATE_REPLACE", "env": "ADD"}
    assert list(changed.replaces) == ["target"]
    rekeyed = host.diff("SconifiedImage", "r/c:1", old, {**old, "fspfKey": secret("e" * 64)})
    assert host.detailed(rekeyed) == {"fspfKey": "UPDATE"}
    assert "e" * 64 not in str(rekeyed) and "f" * 64 not in str(rekeyed)  # names only, never values


def test_a_policy_diff_is_by_meaning_and_a_new_name_replaces(host: PluginHost) -> None:
    connection = {
        "casClientAddress": "cas:8081",
        "casCaCertificate": "CA",
        "identityCertificate": "C",
        "identityKey": secret("K"),
    }
    old = {**connection, "policy": secret(text(counter())), "adopt": False, "deleteOnDestroy": True}
    reformatted = text(counter()).replace("access_policy:", "# a comment\naccess_policy:")
    assert (
        host.diff("CasSession", "ns-1/python-session", old, {**old, "policy": secret(reformatted)}).changes
        == DIFF_NONE
    )
    updated = host.diff(
        "CasSession", "ns-1/python-session", old, {**old, "policy": secret(text(with_pwd(counter(), "/x")))}
    )
    assert host.detailed(updated) == {"policy": "UPDATE"}
    renamed_policy = text(counter()).replace("name: ns-1/python-session", "name: ns-1/other-session")
    renamed = host.diff("CasSession", "ns-1/python-session", old, {**old, "policy": secret(renamed_policy)})
    assert host.detailed(renamed) == {"policy": "UPDATE_REPLACE"}
    moved = host.diff("CasSession", "ns-1/python-session", old, {**old, "casClientAddress": "other:8081"})
    assert host.detailed(moved) == {"casClientAddress": "UPDATE_REPLACE"}
    # A state of 0.2 names the same inputs `cas` and `casCa`: the same session, updated (not replaced) so
    # that the new names are written.
    earlier = {**old, "cas": "cas:8081", "casCa": "CA"}
    del earlier["casClientAddress"], earlier["casCaCertificate"]
    rewritten = host.diff("CasSession", "ns-1/python-session", earlier, old)
    assert host.detailed(rewritten) == {"casClientAddress": "UPDATE", "casCaCertificate": "UPDATE"}


def test_ignore_changes_is_applied(host: PluginHost) -> None:
    old = {"commonName": "a", "providerVersion": "1"}
    response = host.stub.Diff(
        proto.DiffRequest(
            id="x",
            urn=host.urn("CasKeys"),
            olds=to_struct(old),
            news=to_struct({**old, "commonName": "b"}),
            ignoreChanges=["commonName"],
        )
    )
    assert response.changes == DIFF_NONE


def test_key_material_lifecycle_with_secrets_marked_on_the_wire(host: PluginHost) -> None:
    checked, failures = host.check("CasKeys", {}, {})
    assert failures == []
    id_, state = host.create("CasKeys", checked)
    assert is_secret(state["masterKey"]) and is_secret(state["caKeyPem"])
    assert not is_secret(state["caCertificatePem"])
    assert len(bytes.fromhex(reveal(state)["masterKey"])) == 32
    read_id, read_state, _ = host.read("CasKeys", id_, state)
    assert read_id == id_ and reveal(read_state) == reveal(state) and is_secret(read_state["masterKey"])
    with pytest.raises(grpc.RpcError, match="CasKeys cannot be imported"):
        host.read("CasKeys", id_, {}, inputs={"commonName": "sconify CAS CA"})
    _, recovery = host.create("CasRecoveryKey", host.check("CasRecoveryKey", {}, {})[0])
    assert is_secret(recovery["privateKeyPem"]) and not is_secret(recovery["publicKeyPem"])
    host.delete("CasKeys", id_, state)


@pytest.mark.parametrize("kind", ["CasKeys", "CreatorIdentity", "CasRecoveryKey"])
def test_a_state_written_by_the_dynamic_provider_reads_back_without_a_diff(
    host: PluginHost, kind: str
) -> None:
    """What a stack of an earlier version holds, as Pulumi's dynamic-provider host wrote it: snake_case
    names, plus the pickled provider it kept in inputs and outputs (made here by the same logic, with a
    stand-in for the pickle, which the plugin never reads); the engine stores the declared secret outputs
    as secrets. Through the alias the engine asks the plugin to diff it against the program's inputs:
    nothing is replaced, so the keys stay (a replacement would make new ones); an update rewrites the names
    and nothing else; a refresh gives the same values under the camelCase names, still secret."""
    spec = KINDS[f"sconify:index:{kind}"].spec
    with LogicHost(KINDS[spec.token].logic(), kind) as logic:
        inputs, _ = logic.check({}, {})
        created = logic.create(inputs)
    made = Created(created.id, {**created.outs, PROVIDER_KEY: "gASV...a dill pickle of 0.1's provider"})
    state = {key: secret(value) if key in spec.secret_outputs else value for key, value in made.outs.items()}
    old_inputs = {key: made.outs[key] for key in (*spec.inputs, PROVIDER_KEY) if key in made.outs}
    checked, failures = host.check(kind, old_inputs, {})
    assert failures == []
    # No replacement (the keys stay); an update that only rewrites the state under this version's names.
    diffed = host.diff(kind, made.id, state, checked)
    assert diffed.changes == DIFF_SOME and list(diffed.replaces) == []
    assert set(diffed.diffs) == {wire_name(name) for name in spec.earlier_names(strip(made.outs))} != set()
    updated = host.update(kind, made.id, state, checked)
    assert reveal(updated) == spec.to_wire(strip(made.outs))
    read_id, read_state, read_inputs = host.read(kind, made.id, state)
    assert read_id == made.id and PROVIDER_KEY not in read_state and PROVIDER_KEY not in read_inputs
    assert reveal(read_state) == spec.to_wire(strip(made.outs))
    assert all(is_secret(read_state[name]) for name in spec.wire_names(spec.secret_outputs))


@pytest.fixture
def connection(cas: RunningCas, owner: ClientIdentity) -> dict[str, Any]:
    with cas.client(owner) as client:
        client.post_session(namespace())
    given = {wire_name(key): value for key, value in cas.connection(owner).items()}
    return {**given, "identityKey": secret(given["identityKey"])}  # as the engine sends a secret


def test_a_session_lifecycle_against_a_real_cas(
    host: PluginHost, cas: RunningCas, owner: ClientIdentity, connection: dict[str, Any]
) -> None:
    checked, failures = host.check("CasSession", {}, {**connection, "policy": secret(text(counter()))})
    assert failures == []
    id_, state = host.create("CasSession", checked)
    assert id_ == "ns-1/python-session" and is_secret(state["policy"]) and is_secret(state["identityKey"])
    with cas.client(owner) as client:
        assert client.read_session(id_)[1] == state["hash"]
    news = {**checked, "policy": secret(text(with_pwd(counter(), "/code")))}
    updated = host.update("CasSession", id_, state, news)
    assert updated["hash"] != state["hash"] and is_secret(updated["policy"])
    # Changed outside Pulumi: a refresh reports the CAS's policy as the input, still secret.
    with cas.client(owner) as client:
        client.post_session(text(with_pwd(counter(predecessor=updated["hash"]), "/elsewhere")))
    _, refreshed, refreshed_inputs = host.read("CasSession", id_, updated)
    assert refreshed["hash"] != updated["hash"]
    assert is_secret(refreshed_inputs["policy"]) and "/elsewhere" in reveal(refreshed_inputs)["policy"]
    # An import: only the id and the program's inputs.
    imported_id, imported, _ = host.read("CasSession", id_, {}, inputs=checked)
    assert imported_id == id_ and imported["hash"] == refreshed["hash"]
    host.delete("CasSession", id_, refreshed)
    gone_id, _, _ = host.read("CasSession", id_, refreshed)
    assert gone_id == ""  # the engine drops it


def test_an_unknown_type_is_refused_by_name(host: PluginHost) -> None:
    with pytest.raises(grpc.RpcError, match="sconify:index:Nothing: not a resource of the sconify package"):
        host.create("Nothing", {})


@pytest.mark.parametrize(
    "program", ["Pulumi.yaml", "examples/aks/Pulumi.yaml", "examples/minikube/Pulumi.yaml"]
)
def test_every_program_runs_this_checkouts_plugin(program: str) -> None:
    """What the engine reads to find the plugin: the program's ``plugins`` entry (the project file valid
    against Pulumi's project schema), and the plugin's own ``PulumiPlugin.yaml`` (a Python plugin, which
    Python's language host runs as ``python DIR ARGS`` with the repository's virtual environment, as
    :class:`PluginHost` does)."""
    repository = PLUGIN_DIRECTORY.parents[1]
    project = yaml.safe_load((repository / program).read_text())
    schema = json.loads((PULUMI_FIXTURES / "project-schema.json").read_text())
    assert [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(project)] == []
    (entry,) = [p for p in project["plugins"]["providers"] if p["name"] == "sconify"]
    assert ((repository / program).parent / entry["path"]).resolve() == PLUGIN_DIRECTORY
    plugin = yaml.safe_load((PLUGIN_DIRECTORY / "PulumiPlugin.yaml").read_text())
    assert plugin["runtime"]["name"] == "python"
    assert (PLUGIN_DIRECTORY / plugin["runtime"]["options"]["virtualenv"]).resolve() == repository / ".venv"
    assert (PLUGIN_DIRECTORY / "__main__.py").is_file()


def test_the_installed_command_serves_the_same_plugin() -> None:
    """``pulumi-resource-sconify`` (on PATH, where the engine looks for a plugin it has no path for) serves
    what the plugin directory serves."""
    command = shutil.which("pulumi-resource-sconify", path=str(Path(sys.executable).parent))
    assert command, "installed with the package (pyproject.toml, project.scripts)"
    with PluginHost() as directory_plugin:
        process = subprocess.Popen([command, directory_plugin.engine_address], stdout=subprocess.PIPE)
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline().decode().strip())
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = provider_pb2_grpc.ResourceProviderStub(channel)
                assert stub.GetPluginInfo(empty_pb2.Empty()).version == __version__
                served = stub.GetSchema(proto.GetSchemaRequest(version=0)).schema
            assert json.loads(served) == json.loads(
                directory_plugin.stub.GetSchema(proto.GetSchemaRequest(version=0)).schema
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
