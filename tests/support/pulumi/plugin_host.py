"""The ``sconify`` plugin driven as the engine drives a provider: started as Pulumi's Python language host
starts a plugin directory (``python -u provider/plugin ENGINE_ADDRESS``), its port read from its first line,
then every call over gRPC with properties in the engine's wire form — secrets as signed objects, unknowns as
the unknown sentinel. A recording ``Engine`` service stands in for the engine's log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2_grpc

from tests.support.paths import REPOSITORY

PLUGIN_DIRECTORY = REPOSITORY / "provider" / "plugin"
SECRET_KEY = rpc._special_sig_key
SECRET_SIGNATURE = rpc._special_secret_sig
UNKNOWN = rpc.UNKNOWN
DIFF_NONE = proto.DiffResponse.DIFF_NONE
DIFF_SOME = proto.DiffResponse.DIFF_SOME
KIND = proto.PropertyDiff.Kind


def secret(value: Any) -> dict[str, Any]:
    """A value as the engine sends a secret."""
    return {SECRET_KEY: SECRET_SIGNATURE, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_KEY) == SECRET_SIGNATURE


def reveal(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Values without their secret wrappers (what a test compares)."""
    return {key: value["value"] if is_secret(value) else value for key, value in properties.items()}


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(properties))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The wire form as it is: secrets still wrapped, numbers as floats."""
    return dict(json_format.MessageToDict(struct))


class RecordingEngine(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.logs: list[engine_pb2.LogRequest] = []
        self.root = ""

    def Log(self, request: engine_pb2.LogRequest, context: Any) -> empty_pb2.Empty:  # noqa: N802
        self.logs.append(request)
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        return engine_pb2.GetRootResourceResponse(urn=self.root)

    def SetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.root = request.urn
        return engine_pb2.SetRootResourceResponse()


class PluginHost:
    """One plugin process and the engine it reports to; a context manager."""

    def __init__(self, project: str = "test", stack: str = "dev") -> None:
        self.engine = RecordingEngine()
        self.engine_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        engine_pb2_grpc.add_EngineServicer_to_server(self.engine, self.engine_server)
        engine_port = self.engine_server.add_insecure_port("127.0.0.1:0")
        self.engine_address = f"127.0.0.1:{engine_port}"
        self.engine_server.start()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(PLUGIN_DIRECTORY), self.engine_address],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline().decode().strip())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.prefix = f"urn:pulumi:{stack}::{project}::"
        self.stub.Configure(proto.ConfigureRequest(args=to_struct({}), acceptSecrets=True))

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *_: object) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.engine_server.stop(None)

    def urn(self, kind: str, name: str = "it") -> str:
        return f"{self.prefix}sconify:index:{kind}::{name}"

    def check(
        self, kind: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self.stub.Check(
            proto.CheckRequest(urn=self.urn(kind), olds=to_struct(olds), news=to_struct(news))
        )
        return from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, kind: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        return self.stub.Diff(
            proto.DiffRequest(id=id_, urn=self.urn(kind), olds=to_struct(olds), news=to_struct(news))
        )

    def create(self, kind: str, inputs: Mapping[str, Any], name: str = "it") -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(
            proto.CreateRequest(urn=self.urn(kind, name), properties=to_struct(inputs))
        )
        return response.id, from_struct(response.properties)

    def read(
        self, kind: str, id_: str, state: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        response = self.stub.Read(
            proto.ReadRequest(
                id=id_, urn=self.urn(kind), properties=to_struct(state), inputs=to_struct(inputs or {})
            )
        )
        return response.id, from_struct(response.properties), from_struct(response.inputs)

    def update(self, kind: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        response = self.stub.Update(
            proto.UpdateRequest(id=id_, urn=self.urn(kind), olds=to_struct(olds), news=to_struct(news))
        )
        return from_struct(response.properties)

    def delete(self, kind: str, id_: str, state: Mapping[str, Any]) -> None:
        self.stub.Delete(proto.DeleteRequest(id=id_, urn=self.urn(kind), properties=to_struct(state)))

    def construct(
        self,
        monitor: str,
        kind: str,
        name: str,
        inputs: Mapping[str, Any],
        parent: str,
        providers: Mapping[str, str] | None = None,
        dependencies: Mapping[str, list[str]] | None = None,
        preview: bool = False,
    ) -> Any:
        """Construct a component as the engine asks for one that a program in another language declared."""
        project, stack = self.prefix.removeprefix("urn:pulumi:").split("::")[1::-1]
        return self.stub.Construct(
            proto.ConstructRequest(
                project=project,
                stack=stack,
                monitorEndpoint=monitor,
                type=f"sconify:index:{kind}",
                name=name,
                parent=parent,
                inputs=to_struct(inputs),
                inputDependencies={
                    key: proto.ConstructRequest.PropertyDependencies(urns=urns)
                    for key, urns in (dependencies or {}).items()
                },
                providers=dict(providers or {}),
                dryRun=preview,
            )
        )

    def detailed(self, response: Any) -> dict[str, str]:
        """A diff's detailed diff as property -> kind name (``UPDATE``, ``UPDATE_REPLACE``, ...)."""
        assert response.hasDetailedDiff
        return {key: KIND.Name(value.kind) for key, value in response.detailedDiff.items()}
