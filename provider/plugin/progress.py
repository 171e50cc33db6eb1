"""Progress of long steps (layers read and pushed, wheels fetched, regions protected) and warnings to the
engine's log.

A plugin is given the engine's address when it is started, and each message goes there as an *ephemeral*
informational message for the resource being worked on: the CLI shows it on the resource's line while the
step runs and keeps it out of the final output. A warning stays in the output, under the resource. A message
never carries a secret (the engine's messages name images, layers, sizes and sessions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

Progress = Callable[[str], None]


class EngineLog:
    """A connection to the engine's ``Engine`` service; :meth:`progress` gives a resource's reporter."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._engine = engine_pb2_grpc.EngineStub(self._channel)

    def progress(self, urn: str) -> Progress:
        return self._reporter(urn, engine_pb2.INFO, ephemeral=True)

    def warning(self, urn: str) -> Progress:
        return self._reporter(urn, engine_pb2.WARNING, ephemeral=False)

    def _reporter(self, urn: str, severity: engine_pb2.LogSeverity.ValueType, ephemeral: bool) -> Progress:
        def report(message: str) -> None:
            # The step goes on without its line: losing one is not an error of the step.
            with contextlib.suppress(grpc.RpcError):
                self._engine.Log(
                    engine_pb2.LogRequest(severity=severity, message=message, urn=urn, ephemeral=ephemeral)
                )

        return report

    def close(self) -> None:
        self._channel.close()
