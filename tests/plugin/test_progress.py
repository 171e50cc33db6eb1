"""Long steps report progress to the engine's log: the CAS image built through the plugin, against a real
registry, as the engine would run ``pulumi up`` — each step an ephemeral message on the resource's URN,
none of them carrying a secret."""

from __future__ import annotations

import base64
import json

import pytest

from tests.image.counter_image import TAG, counter_layout
from tests.image.registry_harness import Registry
from tests.plugin.plugin_host import PluginHost, is_secret, secret

pytestmark = pytest.mark.slow


def test_building_the_cas_image_reports_each_step_to_the_engine(registry: Registry) -> None:
    registry_auth = json.dumps(
        {"auths": {"example.invalid": {"auth": base64.b64encode(b"u:SECRET-pw").decode()}}}
    )
    with PluginHost() as host:
        inputs = {
            "base": f"oci:{counter_layout()}:{TAG}",
            "target": f"{registry.host}/sconify/cas:plugin",
            "insecure_registries": [registry.host],
            "registry_auth": secret(registry_auth),
        }
        checked, failures = host.check("CasImage", {}, inputs)
        assert failures == [] and checked["base_digest"].startswith("sha256:")
        assert is_secret(checked["registry_auth"])
        image_id, state = host.create("CasImage", checked, name="cas-image")
        assert (
            state["image"].startswith(f"{registry.host}/sconify/cas@sha256:") and image_id == state["image"]
        )
        assert is_secret(state["registry_auth"])
        logs = list(host.engine.logs)
    messages = [log.message for log in logs]
    assert any(m.startswith("base image ") for m in messages), messages
    assert any(m.startswith("Python 3.") for m in messages), messages
    assert len(messages) >= 3
    assert {log.urn for log in logs} == {host.urn("CasImage", "cas-image")}
    assert all(log.ephemeral for log in logs)
    assert not any("SECRET-pw" in m or registry_auth in m for m in messages)
