"""The strict monitor of the engine-rules tests (``tests/components/program_runner.StrictMonitor``), served
over gRPC as the engine serves its resource monitor to a plugin's Construct: the components the plugin
makes register their children here, under the engine's rules (no duplicate URN, parents and providers
registered first, dependencies on registered resources only), and Pulumi's mocks answer for them."""

from __future__ import annotations

import asyncio
import threading
import traceback
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import resource_pb2, resource_pb2_grpc

from tests.support.pulumi.program_runner import EngineRuleError, ProgramMocks, StrictMonitor


class ServedMonitor(StrictMonitor):
    """The strict monitor, for one project and stack (a served monitor has no program of its own)."""

    def __init__(self, project: str, stack: str, preview: bool = False) -> None:
        super().__init__(ProgramMocks(preview))
        self.project, self.stack = project, stack

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            type_ = parent.split("::")[2].rsplit("$", maxsplit=1)[-1] + "$" + type_
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"


class _Servicer(resource_pb2_grpc.ResourceMonitorServicer):
    def __init__(self, monitor: ServedMonitor) -> None:
        self.monitor = monitor
        self.errors: list[str] = []
        self._threads = threading.local()

    def _call(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        if not getattr(self._threads, "loop", None):  # the mock monitor awaits on the calling thread's loop
            self._threads.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._threads.loop)
        try:
            return getattr(self.monitor, method)(request)
        except EngineRuleError as error:  # as the engine refuses: the program's registration fails
            self.errors.append(str(error))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Exception:
            self.errors.append(traceback.format_exc())
            raise

    def SupportsFeature(self, request: Any, context: Any) -> Any:  # noqa: N802
        return resource_pb2.SupportsFeatureResponse(
            hasSupport=self._call("SupportsFeature", request, context).hasSupport
        )

    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._call("GetDeploymentInfo", request, context)

    def RegisterResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._call("RegisterResource", request, context)

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._call("RegisterResourceOutputs", request, context)
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._call("Invoke", request, context)

    def RegisterPackage(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._call("RegisterPackage", request, context)

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()


class MonitorServer:
    """A served strict monitor; a context manager. ``address`` is what a ConstructRequest names;
    ``root_urn`` the stack registered, as the engine has before any Construct."""

    def __init__(self, project: str = "test", stack: str = "dev", preview: bool = False) -> None:
        self.monitor = ServedMonitor(project, stack, preview)
        self.servicer = _Servicer(self.monitor)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(self.servicer, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()
        self.channel = grpc.insecure_channel(self.address)
        self.stub = resource_pb2_grpc.ResourceMonitorStub(self.channel)
        self.root_urn = str(
            self.stub.RegisterResource(
                resource_pb2.RegisterResourceRequest(type="pulumi:pulumi:Stack", name=f"{project}-{stack}")
            ).urn
        )

    def provider(self, package: str, name: str) -> str:
        """Register an explicit provider, as a program does; the reference it passes in ``providers``."""
        response = self.stub.RegisterResource(
            resource_pb2.RegisterResourceRequest(
                type=f"pulumi:providers:{package}", name=name, custom=True, parent=self.root_urn
            )
        )
        return f"{response.urn}::{response.id}"

    def __enter__(self) -> MonitorServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.channel.close()
        self.server.stop(None)
