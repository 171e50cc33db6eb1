"""The resource classes under Pulumi's mocks: each registers as a resource of the ``sconify`` plugin of
this package's version, with an alias to the dynamic provider's token of earlier versions, and its inputs
reach the engine with secrets marked.

Under mocks dynamic providers do not run and ``additional_secret_outputs`` is not applied, so which
outputs are secret is checked where the real values exist: the gRPC lifecycle tests (no secret value
outside the outputs each class declares secret).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pulumi
import pytest

pulumi_runtime = pytest.importorskip("pulumi.runtime")


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.types: dict[str, str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = dict(args.inputs)
        self.types[args.name] = args.typ
        outputs = dict(args.inputs)
        if args.typ.endswith(":SconifiedImage"):
            outputs.update(
                image="registry.local/counter@sha256:" + "1" * 64, fspf_key="2" * 64, policy="name: x\n"
            )
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


MOCKS = Mocks()
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
"""How a secret value reaches the engine: wrapped with Pulumi's secret signature."""


def secret(value: Any) -> dict[str, Any]:
    return {**SECRET, "value": value}


@pytest.fixture(autouse=True)
def _mocks() -> Any:
    # A fresh event loop per test: other tests run asyncio.run(), which leaves none behind.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(MOCKS, project="sconify", stack="test", preview=False)
    yield
    loop.close()
    asyncio.set_event_loop(None)


from pulumi_sconify import CasSession, CreatorIdentity, SconifiedImage  # noqa: E402


@pulumi.runtime.test
def test_cas_session_inputs() -> Any:
    session = CasSession(
        "counter-session",
        cas_client_address="cas:8081",
        cas_ca_certificate="CA",
        identity_certificate="CERT",
        identity_key="KEY",
        policy="name: ns/x\nversion: '0.3'\n",
    )

    def check(name: str) -> None:
        inputs = MOCKS.resources["counter-session"]
        assert inputs["casClientAddress"] == "cas:8081" and inputs["adopt"] is False
        assert inputs["identityKey"] == secret("KEY")  # secrets reach the engine marked, by camelCase names
        assert inputs["policy"] == secret("name: ns/x\nversion: '0.3'\n")
        assert "__provider" not in inputs  # nothing pickled: the plugin serves it
        assert MOCKS.types["counter-session"] == "sconify:index:CasSession"
        assert name is None or isinstance(name, str)

    return session.name.apply(check)


@pulumi.runtime.test
def test_sconified_image_inputs() -> Any:
    image = SconifiedImage(
        "counter-image",
        native_image="docker://registry.local/counter:1",
        target="docker://registry.local/counter-confidential:1",
        command="python3 /code/app.py",
        session="python-session",
        namespace="ns-1",
        dirs=["/code"],
        volumes={"V1": "/V1"},
        fspf_key="3" * 64,
    )

    def check(pinned: str) -> None:
        inputs = MOCKS.resources["counter-image"]
        assert inputs["dirs"] == ["/code"] and inputs["volumes"] == {"V1": "/V1"}
        assert inputs["engine"] == "open" and inputs["providerVersion"] == "1"
        assert inputs["fspfKey"] == secret("3" * 64) and inputs["nativeImage"].startswith("docker://")
        assert pinned.startswith("registry.local/counter@sha256:")

    # Under mocks `additional_secret_outputs` is not applied (docs/resources.md); the gRPC tests check
    # which outputs hold secrets, and the class declares exactly those.
    return image.image.apply(check)


@pulumi.runtime.test
def test_creator_identity_inputs() -> Any:
    identity = CreatorIdentity("creator", common_name="ci")
    return identity.common_name.apply(
        lambda name: (
            # Sent as Pulumi's commonName, read back as the class's common_name attribute.
            MOCKS.resources["creator"]["commonName"] == name == "ci"
            or pytest.fail("commonName did not reach the engine")
        )
    )
