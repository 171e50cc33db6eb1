"""Run a Pulumi program under the SDK's mocks, in this process, and print what it registered as JSON.

``python -m tests.support.pulumi.program_runner PROGRAM_DIR STACK [--preview]`` reads
``PROGRAM_DIR/Pulumi.yaml`` (the project) and ``PROGRAM_DIR/Pulumi.<STACK>.yaml`` (the config) as the
Pulumi CLI would, runs the program from its directory, and prints one JSON object: every resource
registration (type, name, parent, dependencies, inputs with secrets still marked) and every stack
export with whether it is a secret. Each run is its own process, as each ``pulumi up`` is, so no
runtime state leaks between runs; tests compare runs of different stacks or inputs.

Outputs that only a real provider computes are made up by :class:`ProgramMocks` from the inputs (so
a changed input changes them, as it would for real); in preview mode they are left unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import mocks, rpc
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

UNKNOWN = "<unknown>"
SECRET = "4dabf18193072939515e22adb298388d"
MOCK_CA_CERTIFICATE = """\
-----BEGIN CERTIFICATE-----
MIIBUzCB+qADAgECAhQigQ+zZL4prIwm6GiQQnQx0XvdezAKBggqhkjOPQQDAjAW
MRQwEgYDVQQDDAttb2NrIENBUyBDQTAeFw0yNjExMjgyMjI2MjRaFw0zNjExMjUy
MjMxMjRaMBYxFDASBgNVBAMMC21vY2sgQ0FTIENBMFkwEwYHKoZIzj0CAQYIKoZI
zj0DAQcDQgAEFQXVuJ7i+4aMhKaqiuDHpBbxxS02jaDRxzEllEH2k3ztnrGRPy3R
nCVt1BX0S8lyxMVnyOX/VHH0HjNMvBkt6KMmMCQwEgYDVR0TAQH/BAgwBgEB/wIB
ADAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDSAAwRQIhAL8K+OOwGhSrdTQj
kiwq0SM4ATXdbPrFHlr+D2ieW16IAiBCOAsOT6Nz1/zpytncdEFH8QH+0lk10Kdl
G53sGENnBQ==
-----END CERTIFICATE-----
"""
"""What the mocked ``CasKeys`` gives as its CA: a real certificate (public only), because what is derived from
it (the token audience the pods ask for) must parse as the real one does."""
MOCK_RECOVERY_PUBLIC_KEY = """\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEAuYSa7Y5tCPVhHTf8O79uvJvdZG1MLvSM5hAEbg2fOSU=
-----END PUBLIC KEY-----
"""
"""What the mocked ``CasRecoveryKey`` gives as its public key: a real X25519 public key."""
FAKE_KUBECONFIG = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: KUBECONFIG-SECRET\n"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def plain(value: Any) -> Any:
    """Inputs as a provider sees them: without secret markers, the wire's floats whole numbers again."""
    if isinstance(value, dict):
        if SECRET in value:
            return plain(value.get("value"))
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class ProgramMocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool) -> None:
        self.preview = preview

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = {key: value for key, value in args.inputs.items() if key != "__provider"}
        outputs = dict(args.inputs)
        if self.preview:
            if args.typ == "azure-native:containerservice:ManagedCluster":
                # Computed by Azure: unknown until the cluster exists, as the engine previews it.
                outputs["identity"] = {**outputs["identity"], "principalId": rpc.UNKNOWN}
            return "", outputs
        given = plain(inputs)
        kind = args.typ.rsplit(":", 1)[-1]
        digest = _digest(args.typ, args.name, given)
        # What the sconify plugin answers, by Pulumi's camelCase names (the classes read them back as
        # their snake_case attributes).
        if kind == "SconifiedImage":
            repository = str(given["target"]).rsplit(":", 1)[0]
            mrenclave = _digest("mrenclave", given["nativeImage"], given["command"], given["dirs"])
            outputs.update(
                image=f"{repository}@sha256:{digest}",
                mrenclave=mrenclave,
                fspfKey="f" * 64,
                fspfTag="e" * 32,
                policy=(
                    f"name: {given['namespace']}/{given['session']}\n"
                    f"mrenclave: {mrenclave}\nsecrets: FSPF-KEY-SECRET\n"
                ),
                sessionName=f"{given['namespace']}/{given['session']}",
                configId=f"{given['namespace']}/{given['session']}/{given['service']}",
            )
        elif kind == "CasSession":
            outputs.update(name=str(given["policy"]).split("\n")[0].removeprefix("name: "), hash=digest)
        elif kind == "CreatorIdentity":
            outputs.update(certificatePem="CERTIFICATE", privateKeyPem="IDENTITY-KEY-SECRET", keyHash=digest)
        elif kind == "CasKeys":
            outputs.update(
                caCertificatePem=MOCK_CA_CERTIFICATE,
                caKeyPem="CA-KEY-SECRET",
                masterKey="MASTER-KEY-SECRET",
            )
        elif kind == "CasRecoveryKey":
            outputs.update(
                publicKeyPem=MOCK_RECOVERY_PUBLIC_KEY,
                privateKeyPem="RECOVERY-KEY-SECRET",
                fingerprint=_digest("recovery", args.name),
            )
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs.update(result=f"PASSWORD-SECRET-{digest[:8]}")
        elif args.typ == "azure-native:dbforpostgresql:Server":
            outputs.update(
                name=f"{args.name}-x1", fullyQualifiedDomainName=f"{args.name}-x1.postgres.database.azure.com"
            )
        elif args.typ == "azure-native:dbforpostgresql:Database":
            outputs.update(name=given["databaseName"])
        elif args.typ == "azure-native:privatedns:PrivateZone":
            outputs.update(name=given["privateZoneName"])
        elif kind == "CasImage":
            outputs.update(image=f"{str(given['target']).rsplit(':', 1)[0]}@sha256:{digest}")
        elif args.typ == "command:local:Command":
            create = str(given.get("create", ""))
            pushed = re.search(r"--tag (\S+):[0-9a-f]{16} ", create)
            stdout = (
                FAKE_KUBECONFIG
                if "config view" in create
                else "192.168.49.2\n"
                if create.endswith(" ip")
                else f"{pushed.group(1)}@sha256:{digest}\n"  # what the build script prints
                if pushed
                else ""
            )
            outputs.update(stdout=stdout, stderr="")
        elif args.typ == "azure-native:containerservice:ManagedCluster":
            outputs.update(
                name=f"{args.name}-aks",
                identity={**given["identity"], "principalId": "cluster"},
                identityProfile={"kubeletidentity": {"objectId": "kubelet"}},
            )
        elif args.typ == "azure-native:containerregistry:Registry":
            outputs.update(name="sconifyregistry", loginServer="sconifyregistry.azurecr.io")
        elif args.typ == "azure-native:resources:ResourceGroup":
            outputs.update(name=f"{args.name}-group")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            value = base64.b64encode(FAKE_KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}, []
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": "sub", "tenantId": "tenant", "clientId": "client", "objectId": "me"}, []
        if args.token == "azure-native:containerregistry:listRegistryCredentials":
            return {
                "username": "sconifyregistry",
                "passwords": [{"name": "password", "value": "REGISTRY-SECRET"}],
            }, []
        raise ValueError(f"no mock for {args.token}")


class RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, noting what the engine would be told about each resource."""

    def __init__(self, program_mocks: ProgramMocks) -> None:
        super().__init__(program_mocks)
        self.registrations: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        # The engine returns the outputs a resource names in additionalSecretOutputs as secrets (a random
        # password's result, a key's private half); the SDK's mock returns them plain.
        for name in request.additionalSecretOutputs:
            if name in response.object.fields:
                value = struct_pb2.Value()
                value.CopyFrom(response.object.fields[name])
                response.object[name] = {SECRET: rpc._special_secret_sig}
                response.object.fields[name].struct_value.fields["value"].CopyFrom(value)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                {
                    "urn": response.urn,
                    "type": request.type,
                    "name": request.name,
                    "parent": request.parent,
                    "custom": request.custom,
                    "dependencies": sorted(request.dependencies),
                    "provider": request.provider,
                    "protect": request.protect,
                    "retain_on_delete": request.retainOnDelete,
                    "version": request.version,
                    "delete_before_replace": request.deleteBeforeReplace,
                    "aliases": [],
                    "additional_secret_outputs": list(request.additionalSecretOutputs),
                    "inputs": rpc.deserialize_properties(request.object, keep_unknowns=True),
                }
            )
        return response


class EngineRuleError(Exception):
    """What the Pulumi engine would refuse, and the SDK's mock monitor lets through."""


class StrictMonitor(RecordingMonitor):
    """The recording monitor with the engine's rules that the SDK's mock does not apply
    (``reference/pulumi.md``): no two resources of one URN, no alias of one resource that is another's
    URN or alias, parents and providers that were registered before, and dependencies only on
    registered resources. A program that breaks one fails as ``pulumi up`` would."""

    def __init__(self, program_mocks: ProgramMocks) -> None:
        super().__init__(program_mocks)
        self.urns: dict[str, str] = {}
        """Every URN registered, and every alias URN, with the URN of the resource that holds it."""
        # The SDK registers from several threads at once; the engine decides one registration at a time.
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        urn = self.make_urn(request.parent, request.type, request.name)
        with self._lock:
            if request.type != "pulumi:pulumi:Stack":
                self._check(request, urn)
            aliases = self._aliases(request)
            self.urns[urn] = urn
            for alias in aliases:
                self.urns[alias] = urn
        response = super().RegisterResource(request)
        with self._lock:
            for registration in self.registrations:
                if registration["urn"] == urn:
                    registration["aliases"] = aliases
        return response

    def _check(self, request: Any, urn: str) -> None:
        if urn in self.urns:
            holder = self.urns[urn]
            what = "resource URN" if holder == urn else f"resource URN (an alias of {holder})"
            raise EngineRuleError(f"Duplicate {what} '{urn}'; try giving it a unique name")
        for alias_urn in self._aliases(request):
            if alias_urn in self.urns:
                raise EngineRuleError(
                    f"resource {urn}: its alias {alias_urn} is the URN or alias of {self.urns[alias_urn]}"
                )
        if request.parent and request.parent not in self.urns:
            raise EngineRuleError(f"resource {urn}: its parent {request.parent} is not registered")
        if request.provider:
            provider_urn = request.provider.rsplit("::", 1)[0]
            kind = provider_urn.split("::")[2].split("$")[-1] if provider_urn.count("::") >= 3 else ""
            if provider_urn not in self.urns or not kind.startswith("pulumi:providers:"):
                raise EngineRuleError(
                    f"resource {urn}: its provider {provider_urn} is not a registered provider"
                )
        dependencies = set(request.dependencies)
        for property_dependencies in request.propertyDependencies.values():
            dependencies.update(property_dependencies.urns)
        for dependency in sorted(dependencies):
            if dependency not in self.urns:
                raise EngineRuleError(f"resource {urn}: it depends on {dependency}, which is not registered")

    def _aliases(self, request: Any) -> list[str]:
        return [*(self._alias_urn(request, alias) for alias in request.aliases), *request.aliasURNs]

    def _alias_urn(self, request: Any, alias: Any) -> str:
        """The URN an alias names (a URN, or a spec of name/type/parent that defaults to the resource's)."""
        if alias.urn:
            return str(alias.urn)
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


def _json_default(value: Any) -> Any:
    return UNKNOWN if isinstance(value, pulumi.output.Unknown) else str(value)


async def _exports() -> dict[str, Any]:
    stack = get_root_resource()
    assert isinstance(stack, Stack)
    exports = {}
    for name, value in stack.outputs.items():
        output = pulumi.Output.from_input(value)
        known = await output.is_known()
        exports[name] = {
            "secret": await output.is_secret(),
            "value": (await output.future()) if known else UNKNOWN,
        }
    return exports


def _config_text(value: Any) -> str:
    """As the CLI hands config to a program: strings, structured values as JSON, keyed project:name."""
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value)
    return str(value)


NODE_PCRS = {
    str(index): hashlib.sha256(f"the test nodes' PCR {index}".encode()).hexdigest() for index in (0, 7, 11)
}
"""The confidential nodes' PCRs, as a user sets them in an AKS stack after its first ``up`` (the stacks
ship without: the nodes must run before their PCRs can be read)."""


def run(program: Path, stack: str, preview: bool, as_shipped: bool = False) -> dict[str, Any]:
    """Run the program's stack under the strict mocks; unless ``as_shipped``, with the nodes' PCRs set
    where the program reads them."""
    project = yaml.safe_load((program / "Pulumi.yaml").read_text())["name"]
    config = yaml.safe_load((program / f"Pulumi.{stack}.yaml").read_text()).get("config") or {}
    if not as_shipped and "cvmPcrs" in (program / "__main__.py").read_text():
        config.setdefault(f"{project}:cvmPcrs", NODE_PCRS)
    pulumi.runtime.set_all_config({key: _config_text(value) for key, value in config.items()})
    asyncio.set_event_loop(asyncio.new_event_loop())
    monitor = StrictMonitor(ProgramMocks(preview))
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    SETTINGS.rpc_manager.clear()
    os.chdir(program)
    sys.path.insert(0, str(program))
    error: str | None = None
    exports: dict[str, Any] = {}
    warnings = _Recorder()
    logging.getLogger().addHandler(warnings)  # where the mocks' engine writes the program's log
    try:
        main = str(program / "__main__.py")

        def program_body() -> None:
            runpy.run_path(main, run_name="__main__")

        _sync_await(run_pulumi_func(program_body))
        exports = _sync_await(_exports())
    except Exception as failure:  # reported to the test, which decides
        error = "".join(traceback.format_exception(failure))
    return {
        "registrations": monitor.registrations,
        "exports": exports,
        "error": error,
        "warnings": warnings.messages,
    }


class _Recorder(logging.Handler):
    """The warnings a program logs (``pulumi.log.warn``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("program", type=Path)
    parser.add_argument("stack")
    parser.add_argument("--preview", action="store_true")
    parser.add_argument("--as-shipped", action="store_true", help="the stack's configuration alone")
    args = parser.parse_args()
    result = run(args.program.resolve(), args.stack, args.preview, args.as_shipped)
    json.dump(result, sys.stdout, default=_json_default)


if __name__ == "__main__":
    main()
