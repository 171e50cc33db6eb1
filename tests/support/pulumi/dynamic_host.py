"""Pulumi's own dynamic-provider host (`python -m pulumi.dynamic`), driven over gRPC as the engine does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

PROVIDER_KEY = "__provider"


def to_struct(properties: dict[str, Any]) -> struct_pb2.Struct:
    return asyncio.run(rpc.serialize_properties(properties, {}))


def from_struct(struct: struct_pb2.Struct, keep_unknowns: bool = False) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct, keep_unknowns))


@dataclass
class Created:
    id: str
    outs: dict[str, Any]


class DynamicHost:
    """One host process; call :meth:`close` (or use as a context manager)."""

    def __init__(self, provider: ResourceProvider, type_name: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "pulumi.dynamic"], stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline().decode().strip())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.pickled = serialize_provider(provider)
        self.urn = f"urn:pulumi:test::sconify::pulumi-python:dynamic/sconify:{type_name}::it"
        self.stub.Configure(proto.ConfigureRequest(args=to_struct({}), acceptSecrets=False))

    def __enter__(self) -> DynamicHost:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=30)

    def with_provider(self, properties: dict[str, Any]) -> dict[str, Any]:
        return {**properties, PROVIDER_KEY: self.pickled}

    def check(
        self, olds: dict[str, Any], news: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self.stub.Check(
            proto.CheckRequest(urn=self.urn, olds=to_struct(olds), news=to_struct(self.with_provider(news)))
        )
        return from_struct(response.inputs, True), [(f.property, f.reason) for f in response.failures]

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return self.stub.Diff(
            proto.DiffRequest(
                id=id_, urn=self.urn, olds=to_struct(olds), news=to_struct(self.with_provider(news))
            )
        )

    def create(self, inputs: dict[str, Any]) -> Created:
        response = self.stub.Create(
            proto.CreateRequest(urn=self.urn, properties=to_struct(self.with_provider(inputs)))
        )
        return Created(response.id, from_struct(response.properties))

    def read(self, id_: str, outs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        response = self.stub.Read(
            proto.ReadRequest(id=id_, urn=self.urn, properties=to_struct(self.with_provider(outs)))
        )
        return response.id, from_struct(response.properties), from_struct(response.inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        response = self.stub.Update(
            proto.UpdateRequest(
                id=id_,
                urn=self.urn,
                olds=to_struct(self.with_provider(olds)),
                news=to_struct(self.with_provider(news)),
            )
        )
        return from_struct(response.properties)

    def delete(self, id_: str, outs: dict[str, Any]) -> None:
        self.stub.Delete(
            proto.DeleteRequest(id=id_, urn=self.urn, properties=to_struct(self.with_provider(outs)))
        )


def strip(properties: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in properties.items() if key != PROVIDER_KEY}


UNKNOWN = rpc.UNKNOWN
DIFF_NONE = proto.DiffResponse.DIFF_NONE
DIFF_SOME = proto.DiffResponse.DIFF_SOME
__all__ = ["DIFF_NONE", "DIFF_SOME", "UNKNOWN", "DynamicHost", "grpc", "strip"]
