"""SconifiedImage through Pulumi's dynamic-provider host, against a real registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulumi_sconify.engine.policy import parse_session
from pulumi_sconify.provider.resources.image import SECRET_OUTPUTS, SconifiedImageProvider
from tests.support.images.layers import APP_LAYER, BASE_LAYER, Entry, push_layout, write_layout
from tests.support.pulumi.logic_host import DIFF_NONE, DIFF_SOME, LogicHost, strip
from tests.support.registry import Registry


@pytest.fixture
def inputs(registry: Registry, tmp_path: Path) -> dict[str, Any]:
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", registry.host, "native/counter")
    return {
        "native_image": f"docker://{registry.host}/native/counter:1",
        "target": f"docker://{registry.host}/confidential/counter:1",
        "command": "python3 /code/app.py",
        "session": "python-session",
        "namespace": "ns-1",
        "service": "python-service",
        "dirs": ["/code"],
        "volumes": {"V1": "/V1"},
        "env": {"GREETING": "hello"},
        "kubernetes": {
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "namespace": "default",
            "service_account": "counter",
        },
        "chart_dir": str(tmp_path / "charts"),
    }


def test_sconified_image_lifecycle(registry: Registry, inputs: dict[str, Any], tmp_path: Path) -> None:
    with LogicHost(SconifiedImageProvider(), "SconifiedImage") as host:
        checked, failures = host.check({}, inputs)
        assert failures == []
        assert checked["native_digest"].startswith(f"docker://{registry.host}/native/counter@sha256:")
        created = host.create(checked)
        outs = created.outs
        assert created.id == inputs["target"]
        assert outs["image"].startswith(f"{registry.host}/confidential/counter@sha256:")
        session = parse_session(outs["policy"])
        assert session.service("python-service").mrenclaves == (outs["mrenclave"],)
        assert session.service("python-service").environment["GREETING"] == "hello"
        pinned = session.service("python-service").kubernetes
        assert pinned is not None and pinned.service_account == "counter"
        assert session.security is not None
        assert "insecure-software-evidence" not in session.security.attestation.tolerate
        assert Path(outs["chart_path"], "templates", "job.yaml").is_file()

        # Nothing secret outside the outputs the resource marks secret.
        key = outs["fspf_key"]
        leaking = [
            name for name, value in outs.items() if name not in SECRET_OUTPUTS and key in json.dumps(value)
        ]
        assert leaking == []

        state = strip(outs)
        again, _ = host.check(state, inputs)
        assert host.diff(created.id, state, strip(again)).changes == DIFF_NONE
        command = host.diff(created.id, state, {**strip(again), "command": "python3 /code/app.py -v /V1/n"})
        assert command.changes == DIFF_SOME and list(command.replaces) == []
        target = host.diff(created.id, state, {**strip(again), "target": f"docker://{registry.host}/other:1"})
        assert list(target.replaces) == ["target"]

        # The native tag moves: check resolves it anew and the diff shows it.
        write_layout(tmp_path / "native2", "1", [BASE_LAYER, [*APP_LAYER, Entry("code/new.py", b"x = 1\n")]])
        push_layout(tmp_path / "native2", "1", registry.host, "native/counter")
        moved, _ = host.check(state, inputs)
        assert moved["native_digest"] != checked["native_digest"]
        assert host.diff(created.id, state, strip(moved)).changes == DIFF_SOME
        updated = host.update(created.id, state, strip(moved))
        assert updated["image"] != outs["image"]
        assert updated["fspf_key"] == key  # the key made at create is kept

        read_id, _, _ = host.read(created.id, strip(updated))
        assert read_id == created.id
        digest = updated["image"].rsplit("@", 1)[1]
        httpx.delete(f"http://{registry.host}/v2/confidential/counter/manifests/{digest}").raise_for_status()
        gone_id, _, _ = host.read(created.id, strip(updated))
        assert gone_id == ""
        host.delete(created.id, strip(updated))


def test_bad_inputs_are_check_failures(inputs: dict[str, Any]) -> None:
    with LogicHost(SconifiedImageProvider(), "SconifiedImage") as host:
        _, failures = host.check({}, {**inputs, "native_image": "docker://Bad/Name:1"})
        assert failures and failures[0][0] == "native_image" and "invalid repository name" in failures[0][1]
        _, missing = host.check({}, {**inputs, "native_image": inputs["native_image"].replace(":1", ":nope")})
        assert missing and missing[0][0] == "native_image" and "cannot resolve" in missing[0][1]
        _, scone = host.check({}, {**inputs, "engine": "scone"})
        assert ("engine", "only the open engine is available in this version") in scone
        _, pinned = host.check(
            {}, {**inputs, "kubernetes": {**inputs["kubernetes"], "namespace": "Not Valid"}}
        )
        assert pinned == [("kubernetes", "namespace: expected a Kubernetes namespace: a DNS label")]
        _, partial = host.check({}, {**inputs, "kubernetes": {"issuer": "https://x"}})
        assert partial == [("kubernetes", "expected issuer, namespace and service_account")]
        _, lacking = host.check({}, {"target": inputs["target"]})
        assert {name for name, _ in lacking} >= {"native_image", "command", "session", "namespace"}
        _, writable = host.check({}, {**inputs, "writable": ["/proc/self"]})
        assert writable and writable[0][0] == "writable" and "/proc/self: overlaps" in writable[0][1]


def test_a_native_image_pinned_by_digest_needs_no_registry_at_check(inputs: dict[str, Any]) -> None:
    """A preview on a fresh machine (nothing local, the registry out of reach) sees the same native image:
    a digest cannot move, so it is not resolved."""
    pinned = "docker://127.0.0.1:9/native/counter@sha256:" + "ab" * 32  # nothing listens on port 9
    with LogicHost(SconifiedImageProvider(), "SconifiedImage") as host:
        first, failures = host.check({}, {**inputs, "native_image": pinned})
        assert failures == []
        assert first["native_digest"] == pinned
        again, _ = host.check(strip(first), {**inputs, "native_image": pinned})
        assert host.diff("id", strip(first), strip(again)).changes == DIFF_NONE
