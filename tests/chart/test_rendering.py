"""The chart's templates and the workload model render the same objects, for every workload type and value
combination the other chart tests use — so the Helm user and the Pulumi user get the same pods.

The templates are rendered by Go's text/template with sprig and Helm's ``include`` and ``toYaml``
(``tests/chart/render/main.go``, built once from Debian's packages): Helm's engine without Helm's wrapper,
since no ``helm template`` can run here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulumi_sconify.engine.chart import WorkloadType, kubernetes_objects, write_chart
from pulumi_sconify.engine.chart.objects import merged_values
from tests.support.chart import COMBINATIONS, VALUE_COMBINATIONS, counter

SOURCE = Path(__file__).parent / "render" / "main.go"
RELEASE = "python-service-0"


@pytest.fixture(scope="session")
def renderer() -> Path:
    assert shutil.which("go"), "go is installed by .ci/setup (golang-go)"
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("SCONIFY_TEST_CACHE", Path.home() / ".cache" / "pulumi-sconify")) / "render"
    binary = cache / f"render-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(f".{os.getpid()}.partial")  # parallel workers build apart
        subprocess.run(
            ["go", "build", "-o", str(partial), str(SOURCE)],
            env={**os.environ, "GOPATH": "/usr/share/gocode", "GO111MODULE": "off"},
            check=True,
            capture_output=True,
            timeout=600,
        )
        partial.rename(binary)
    return binary


def render(renderer: Path, chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    context = {
        "Values": values,
        "Release": {"Name": RELEASE, "Service": "Helm", "Namespace": "default"},
        "Chart": {"Name": chart.name, "Version": "0.1.0"},
    }
    result = subprocess.run(
        [str(renderer), str(chart)],
        input=json.dumps(context),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.mark.parametrize(
    ("workload", "combination"), COMBINATIONS, ids=[f"{w.value}-{n}" for w, n in COMBINATIONS]
)
def test_templates_and_model_give_the_same_objects(
    renderer: Path, tmp_path: Path, workload: WorkloadType, combination: str
) -> None:
    spec = counter()
    chart = write_chart(spec, workload, tmp_path)
    overrides = VALUE_COMBINATIONS[combination]
    rendered = by_name(render(renderer, chart, merged_values(spec, workload, overrides)))
    model = by_name(kubernetes_objects(spec, workload, overrides, RELEASE, "Helm"))
    assert rendered.keys() == model.keys()
    for key, expected in model.items():
        assert rendered[key] == expected, key


def test_a_difference_would_be_seen(renderer: Path, tmp_path: Path) -> None:
    spec = counter()
    chart = write_chart(spec, WorkloadType.JOB, tmp_path)
    template = chart / "templates" / "_pod.tpl"
    template.write_text(
        template.read_text().replace(
            "automountServiceAccountToken: false", "automountServiceAccountToken: true"
        )
    )
    rendered = by_name(render(renderer, chart, merged_values(spec, WorkloadType.JOB, {})))
    model = by_name(kubernetes_objects(spec, WorkloadType.JOB, {}, RELEASE, "Helm"))
    job = ("Job", f"{RELEASE}-sconify-python-service")
    assert rendered[job] != model[job]
