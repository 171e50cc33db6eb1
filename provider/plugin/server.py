"""The gRPC server the engine talks to: Pulumi's provider servicer around :class:`SconifyProvider`."""

from __future__ import annotations

import sys

import grpc
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime.proto import provider_pb2_grpc

from .provider import SconifyProvider

MESSAGE_LIMIT = 400 * 1024 * 1024
"""The engine's own limit on a gRPC message (a policy or a chart can be large)."""


async def serve(arguments: list[str], engine: str, version: str) -> None:
    """Listen on a free loopback port, tell the engine which (the first line of stdout), serve."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ]
    )
    provider = SconifyProvider(version, engine)
    servicer = ProviderServicer(arguments, version, provider, engine_address=engine)
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    await server.wait_for_termination()
