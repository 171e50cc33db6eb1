"""Long steps report progress to the engine's log: the CAS image and a confidential image built through the
plugin, against a real registry, as the engine would run ``pulumi up`` — each step an ephemeral message on
the resource's URN, none of them carrying a secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.support.images.counter import TAG, counter_layout
from tests.support.images.layers import APP_LAYER, BASE_LAYER, push_layout, write_layout
from tests.support.pulumi.plugin_host import PluginHost, is_secret, reveal, secret
from tests.support.registry import Registry

pytestmark = pytest.mark.slow


def test_building_the_cas_image_reports_each_step_to_the_engine(registry: Registry) -> None:
    registry_auth = json.dumps(
        {"auths": {"example.invalid": {"auth": base64.b64encode(b"u:SECRET-pw").decode()}}}
    )
    with PluginHost() as host:
        inputs = {
            "base": f"oci:{counter_layout()}:{TAG}",
            "target": f"{registry.host}/sconify/cas:plugin",
            "insecureRegistries": [registry.host],
            "registryAuth": secret(registry_auth),
        }
        checked, failures = host.check("CasImage", {}, inputs)
        assert failures == [] and checked["baseDigest"].startswith("sha256:")
        assert is_secret(checked["registryAuth"])
        image_id, state = host.create("CasImage", checked, name="cas-image")
        assert (
            state["image"].startswith(f"{registry.host}/sconify/cas@sha256:") and image_id == state["image"]
        )
        assert is_secret(state["registryAuth"])
        logs = list(host.engine.logs)
    messages = [log.message for log in logs]
    assert any(m.startswith("base image ") for m in messages), messages
    assert any(m.startswith("Python 3.") for m in messages), messages
    assert any("wheels" in m for m in messages), messages  # fetched from PyPI, or from the cache
    assert len(messages) >= 3
    assert {log.urn for log in logs} == {host.urn("CasImage", "cas-image")}
    assert all(log.ephemeral for log in logs)
    assert not any("SECRET-pw" in m or registry_auth in m for m in messages)


def test_a_sconified_image_through_the_plugin_reports_its_layers(registry: Registry, tmp_path: Path) -> None:
    """The image resource's whole life through the plugin against a real registry: check resolves the
    tag, create builds and pushes (each layer read and blob uploaded reported), a refresh finds the image,
    and once it is deleted at the registry a refresh drops the resource."""
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", registry.host, "native/counter")
    with PluginHost() as host:
        checked, failures = host.check(
            "SconifiedImage",
            {},
            {
                "nativeImage": f"docker://{registry.host}/native/counter:1",
                "target": f"docker://{registry.host}/confidential/counter:1",
                "command": "python3 /code/app.py",
                "session": "python-session",
                "namespace": "ns-1",
                "dirs": ["/code"],
                "volumes": {"V1": "/V1"},
            },
        )
        assert failures == [] and checked["nativeDigest"].startswith(f"docker://{registry.host}/native/")
        image_id, state = host.create("SconifiedImage", checked, name="counter-image")
        assert state["image"].startswith(f"{registry.host}/confidential/counter@sha256:")
        assert is_secret(state["policy"]) and is_secret(state["fspfKey"])
        messages = [log.message for log in host.engine.logs]
        assert any(m.startswith("reading layer 1/2") for m in messages), messages
        assert "protecting regions" in messages
        assert any(m.startswith("uploading blob") for m in messages), messages
        assert not any(reveal(state)["fspfKey"] in m for m in messages)
        found_id, _, _ = host.read("SconifiedImage", image_id, state)
        assert found_id == image_id
        digest = state["image"].rsplit("@", 1)[1]
        deleted = httpx.delete(f"http://{registry.host}/v2/confidential/counter/manifests/{digest}")
        assert deleted.status_code == 202
        gone_id, _, _ = host.read("SconifiedImage", image_id, state)
        assert gone_id == ""
