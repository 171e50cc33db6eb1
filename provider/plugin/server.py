"""The gRPC server the engine talks to: Pulumi's provider servicer around :class:`SconifyProvider` for the
custom resources, and Pulumi's component servicer for Construct (it turns the engine's inputs into Python
values and Outputs — secrets and dependencies kept — and the component's outputs back)."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pulumi
from pulumi.provider import ConstructResult, Provider as ComponentHost
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.provider.server import ProviderServicer as ComponentServicer
from pulumi.runtime.proto import provider_pb2_grpc

from ...engine.errors import CasError, SconifyError
from ..resources.spec import PACKAGE
from .construct import COMPONENTS, construct
from .provider import SconifyProvider

MESSAGE_LIMIT = 400 * 1024 * 1024
"""The engine's own limit on a gRPC message (a policy or a chart can be large)."""


_LOG = logging.getLogger("pulumi-resource-sconify")


def _cause(error: BaseException) -> BaseException:
    """The exception the resource logic raised. Pulumi's servicer re-raises every error as a bare
    ``Exception`` whose text carries the traceback; the original is its context."""
    while type(error) is Exception and error.__context__ is not None:
        error = error.__context__
    return error


def refusal(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """What the engine shows for an error: a status and one line. The engine prefixes the resource.

    An error of the package (``SconifyError``) says what is wrong in its own words, which are safe to
    show; a bad input (``ValueError`` from a check) likewise. Anything else is a fault of the provider:
    its type and first line, and where the trace is (the plugin's log; never the engine's output)."""
    if isinstance(error, CasError) and error.status == 0:
        return grpc.StatusCode.UNAVAILABLE, _one_line(error)
    if isinstance(error, SconifyError | ValueError):
        return grpc.StatusCode.FAILED_PRECONDITION, _one_line(error)
    if isinstance(error, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED, _one_line(error) or "not implemented by the sconify provider"
    return grpc.StatusCode.INTERNAL, (
        f"internal error in the sconify provider: {type(error).__name__}: {_one_line(error)} (the trace "
        "is in the plugin's log: pulumi --logtostderr -v=9)"
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


class OneLineErrors(grpc.aio.ServerInterceptor):  # type: ignore[misc] # grpc's aio stubs are untyped
    """Every call's error reaches the engine as one line (:func:`refusal`); its trace goes to the plugin's
    log (stderr, which the engine keeps in its own log), not to the user's terminal."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        served = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await served(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                cause = _cause(error)
                _LOG.error("%s failed:\n%s", details.method, "".join(traceback.format_exception(cause)))
                await context.abort(*refusal(cause))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


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


async def _structured(value: Any) -> Any:
    """An object or a list that arrived as one Output — a program passed another component's output
    whole (``storage: cluster.storage``) — made a plain structure again, so that it becomes its
    dataclass: it is known by now (a program sends a resource's inputs once they resolve), except in a
    preview, where it stays unknown. A secret whole keeps every leaf secret."""
    if not isinstance(value, pulumi.Output) or not await value.is_known():
        return value
    inner = await value.future()
    if not isinstance(inner, dict | list):
        return value
    if not await value.is_secret():
        return inner

    def secret_leaves(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: secret_leaves(element) for key, element in item.items()}
        if isinstance(item, list):
            return [secret_leaves(element) for element in item]
        return pulumi.Output.secret(item)

    return secret_leaves(inner)


class _StructuredInputs(ComponentServicer):
    @staticmethod
    async def _construct_inputs(inputs: Any, input_dependencies: Any) -> dict[str, pulumi.Input[Any]]:
        given = await ComponentServicer._construct_inputs(inputs, input_dependencies)
        return {key: await _structured(value) for key, value in given.items()}


class SconifyServicer(ProviderServicer):
    def __init__(self, arguments: list[str], version: str, engine: str) -> None:
        super().__init__(arguments, version, SconifyProvider(version, engine), engine_address=engine)
        self._components = _StructuredInputs(Components(version), arguments, engine)

    async def Construct(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        return await self._components.Construct(request, context)


async def serve(arguments: list[str], engine: str, version: str) -> None:
    """Listen on a free loopback port, tell the engine which (the first line of stdout), serve."""
    logging.basicConfig(stream=sys.stderr, format="%(name)s: %(message)s")
    server = grpc.aio.server(
        interceptors=[OneLineErrors()],
        options=[
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ],
    )
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(
        SconifyServicer(arguments, version, engine), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    await server.wait_for_termination()
