"""The gRPC server the engine talks to: Pulumi's provider servicer around :class:`SconifyProvider` for the
custom resources, and Pulumi's component servicer for Construct (it turns the engine's inputs into Python
values and Outputs — secrets and dependencies kept — and the component's outputs back)."""

from __future__ import annotations

import sys
from typing import Any

import grpc
import pulumi
from pulumi.provider import ConstructResult, Provider as ComponentHost
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.provider.server import ProviderServicer as ComponentServicer
from pulumi.runtime.proto import provider_pb2_grpc

from ...components.schema import COMPONENTS, construct
from ..resources.spec import PACKAGE
from .provider import SconifyProvider

MESSAGE_LIMIT = 400 * 1024 * 1024
"""The engine's own limit on a gRPC message (a policy or a chart can be large)."""


class UnknownComponentError(ValueError):
    """A component type this package does not define."""


class Components(ComponentHost):
    """Makes the package's components for programs in other languages."""

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: pulumi.Inputs,
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        package, _, component = resource_type.partition(":index:")
        if package != PACKAGE or component not in COMPONENTS:
            raise UnknownComponentError(
                f"{resource_type}: not a component of the sconify package ({', '.join(sorted(COMPONENTS))})"
            )
        made = construct(name, component, inputs, options or pulumi.ResourceOptions())
        return ConstructResult(made.urn, made.state)


class SconifyServicer(ProviderServicer):
    def __init__(self, arguments: list[str], version: str, engine: str) -> None:
        super().__init__(arguments, version, SconifyProvider(version, engine), engine_address=engine)
        self._components = ComponentServicer(Components(version), arguments, engine)

    async def Construct(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        return await self._components.Construct(request, context)


async def serve(arguments: list[str], engine: str, version: str) -> None:
    """Listen on a free loopback port, tell the engine which (the first line of stdout), serve."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ]
    )
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(
        SconifyServicer(arguments, version, engine), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    await server.wait_for_termination()
