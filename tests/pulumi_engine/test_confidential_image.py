"""A confidential image and its session under the real engine, against a real registry and CAS: up, a
second run that changes nothing, refresh, and the reviewer's view of a change — ``pulumi preview --diff``
names what changed in the policy in plain words, with only the FSPF key masked (a golden file of the
engine's own output)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from pulumi_sconify.provider.resources import CasSession, CreatorIdentity, SconifiedImage
from tests.support.cas import RunningCas
from tests.support.images.layers import APP_LAYER, BASE_LAYER, push_layout, write_layout
from tests.support.policies import namespace
from tests.support.pulumi.engine import Engine, connection, inline_stack
from tests.support.registry import Registry

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    running = Registry(tmp_path / "registry").start()
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", running.host, "native/counter")
    yield running
    running.stop()


def service(cas: RunningCas, registry: Registry, **changes: Any) -> Callable[[], None]:
    """The program: a creator identity, the namespace, the confidential counter and its session."""

    def program() -> None:
        creator = CreatorIdentity("creator")
        to_cas = connection(cas, creator)
        space = CasSession("namespace", **to_cas, policy=namespace())
        image = SconifiedImage(
            "counter-image",
            **{
                "native_image": f"docker://{registry.host}/native/counter:1",
                "target": f"docker://{registry.host}/confidential/counter:1",
                "command": "python3 /code/app.py",
                "session": "python-session",
                "namespace": "ns-1",
                "service": "python-service",
                "dirs": ["/code"],
                "volumes": {"V1": "/V1"},
                "insecure_registries": [registry.host],
                "insecure_software_evidence": True,
                **changes,
            },
        )
        CasSession(
            "counter-session",
            **to_cas,
            policy=image.policy,
            opts=pulumi.ResourceOptions(depends_on=[space]),
        )
        pulumi.export("image", image.image)

    return program


def reviewed(output: str, registry: Registry) -> str:
    """The engine's preview as a reviewer reads it, without what differs from run to run: progress lines,
    the registry's port, the default provider's id."""
    lines = [line.rstrip() for line in output.splitlines() if not line.startswith("@ ")]
    text = re.sub(re.escape(registry.host), "REGISTRY", "\n".join(lines))
    return re.sub(r"(default_[0-9_]+)::[0-9a-f-]{36}", r"\1::PROVIDER-ID", text).strip() + "\n"


@pytest.mark.parametrize(
    ("change", "golden"),
    [
        ({"command": "python3 /code/app.py --verbose"}, "command.txt"),
        ({"tolerate": ["debug-mode", "outdated-tcb"]}, "toleration.txt"),
        ({"volumes": {"V1": "/V1", "V2": "/V2"}}, "volume.txt"),
    ],
)
def test_a_change_is_reviewable_in_the_engines_diff(
    engine: Engine, cas: RunningCas, registry: Registry, tmp_path: Path, change: dict[str, Any], golden: str
) -> None:
    stack = inline_stack(engine, tmp_path / "work", service(cas, registry))
    up = stack.up()
    assert up.summary.resource_changes == {"create": 5}
    assert stack.preview().change_summary == {"same": 5}
    assert stack.refresh().summary.resource_changes == {"same": 5}  # the image is still at the registry
    exported = json.dumps(engine.export("test", stack.workspace.work_dir))
    assert "PRIVATE KEY" not in exported and not re.search(r"fspf_key: [0-9a-f]{64}", exported)

    stack.workspace.program = service(cas, registry, **change)
    preview = stack.preview(diff=True)
    text = reviewed(preview.stdout, registry)
    if os.environ.get("SCONIFY_WRITE_GOLDEN"):  # how the golden files were made: then reviewed, committed
        (GOLDEN / golden).write_text(text)
    assert text == (GOLDEN / golden).read_text()
    assert re.search(r'fspf_key +: "\[secret\]"', text) and "[measured at build]" in text
