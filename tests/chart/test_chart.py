"""Generated charts: real `helm lint` for every workload type and the main value combinations, the
values schema, the README, determinism, and a golden copy of the counter's chart."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pulumi_sconify.engine.chart import (
    ChartSpecError,
    WorkloadType,
    chart_files,
    defaults,
    service_from_sconifier_json,
    value_definitions,
    write_chart,
)
from pulumi_sconify.engine.chart.objects import merged_values
from tests.support.chart import COMBINATIONS, GOLDEN, VALUE_COMBINATIONS, counter, sconifier_output

helm_sdkpy = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy needs Python 3.12 or newer")


def lint(directory: Path) -> list[dict[str, Any]]:
    result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(directory)))
    return [message for message in result["Messages"] if message["Severity"] > 1]  # warnings and errors


def with_values(directory: Path, overrides: dict[str, Any]) -> Path:
    """The chart with values.yaml replaced by the defaults merged with ``overrides``."""
    spec = counter()
    workload = WorkloadType(
        next(
            p.stem
            for p in (directory / "templates").glob("*.yaml")
            if p.stem in {w.value for w in WorkloadType}
        )
    )
    (directory / "values.yaml").write_text(yaml.safe_dump(merged_values(spec, workload, overrides)))
    return directory


@pytest.mark.parametrize("workload", list(WorkloadType), ids=[w.value for w in WorkloadType])
def test_every_workload_type_lints_clean(tmp_path: Path, workload: WorkloadType) -> None:
    directory = write_chart(counter(), workload, tmp_path)
    assert directory == tmp_path / "python-service"
    assert lint(directory) == []
    chart = yaml.safe_load((directory / "Chart.yaml").read_text())
    assert chart["name"] == "sconify-python-service"
    assert (directory / "templates" / f"{workload.value}.yaml").is_file()


@pytest.mark.parametrize(
    ("workload", "combination"), COMBINATIONS, ids=[f"{w.value}-{n}" for w, n in COMBINATIONS]
)
def test_value_combinations_lint_clean(tmp_path: Path, workload: WorkloadType, combination: str) -> None:
    overrides = VALUE_COMBINATIONS[combination]
    directory = with_values(write_chart(counter(), workload, tmp_path), overrides)
    assert lint(directory) == []


BAD_VALUES: dict[str, dict[str, Any]] = {
    "unknown value": {"replicas": 3},
    "image without digest": {"image": "registry.local:5000/counter:latest"},
    "unknown SGX plugin": {"useSGXDevPlugin": "maybe"},
    "bad pull policy": {"imagePullPolicy": "Sometimes"},
    "two writers on one volume": {"replicaCount": 2},
    "bad claim size": {"volumev1": {"persistence": {"size": "lots"}}},
    "bad access mode": {"volumev1": {"persistence": {"accessModes": ["ReadOnlyMany"]}}},
    "string for a boolean": {"volumev1": {"persistence": {"enabled": "yes"}}},
    "config id without service": {"scone": {"configID": "just-a-session"}},
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_schema_rejects_bad_values(tmp_path: Path, case: str) -> None:
    workload = WorkloadType.DEPLOYMENT
    values = merged_values(counter(), workload, BAD_VALUES[case])
    schema = json.loads(chart_files(counter(), workload)["values.schema.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, schema)
    # And real Helm refuses the chart with those values.
    directory = write_chart(counter(), workload, tmp_path)
    (directory / "values.yaml").write_text(yaml.safe_dump(values))
    assert any(message["Severity"] == 3 for message in lint(directory))


def test_defaults_satisfy_the_schema() -> None:
    for workload in WorkloadType:
        schema = json.loads(chart_files(counter(), workload)["values.schema.json"])
        jsonschema.validate(defaults(counter(), workload), schema)


def leaf_names(values: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"podSecurityContext", "securityContext"}:
            names |= leaf_names(value, name + ".")
        else:
            names.add(name)
    return names


@pytest.mark.parametrize("workload", list(WorkloadType), ids=[w.value for w in WorkloadType])
def test_readme_documents_exactly_the_values(workload: WorkloadType) -> None:
    files = chart_files(counter(), workload)
    in_values = leaf_names(yaml.safe_load(files["values.yaml"]))
    values_section = files["README.md"].split("## Values", 1)[1]
    in_readme = set(re.findall(r"^\| `([^`]+)` \|", values_section, re.MULTILINE))
    assert in_values == in_readme
    assert "volumev1.persistence.existingClaim" in in_readme


@pytest.mark.parametrize("workload", list(WorkloadType), ids=[w.value for w in WorkloadType])
def test_templates_use_exactly_the_defined_values(workload: WorkloadType) -> None:
    """Templates and value definitions cannot drift apart: each uses all of the other."""
    files = chart_files(counter(), workload)
    templates = "".join(text for name, text in files.items() if name.startswith("templates/"))
    referenced = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", templates))
    # Inside `with .Values.volumev1.persistence` the fields are used as `.enabled`, `.size` ...
    for key in re.findall(r"with \.Values\.(\w+)\.persistence", templates):
        referenced.discard(f"{key}.persistence")
        fields = re.findall(
            r"(?<![\w.])\.(enabled|existingClaim|storageClass|size|accessModes)\b",
            files["templates/volumes.yaml"],
        )
        referenced |= {f"{key}.persistence.{field}" for field in fields}
    defined = {d.name for d in value_definitions(counter(), workload)}
    assert referenced == defined


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = write_chart(counter(), WorkloadType.STATEFULSET, tmp_path / "a")
    second = write_chart(counter(), WorkloadType.STATEFULSET, tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for path in files:
        assert (first / path).read_bytes() == (second / path).read_bytes()


def test_regeneration_with_another_workload_type_leaves_no_stale_template(tmp_path: Path) -> None:
    write_chart(counter(), WorkloadType.DEPLOYMENT, tmp_path)
    directory = write_chart(counter(), WorkloadType.JOB, tmp_path)
    assert sorted(p.name for p in (directory / "templates").iterdir()) == [
        "_helpers.tpl",
        "_pod.tpl",
        "cas-ca.yaml",
        "job.yaml",
        "serviceaccount.yaml",
        "volumes.yaml",
    ]
    assert lint(directory) == []


def test_golden_counter_chart() -> None:
    """The counter's job chart, byte for byte. Regenerate after an intended change with
    `python -m tests.chart.golden` and review the diff."""
    files = chart_files(counter(), WorkloadType.JOB)
    golden = {str(p.relative_to(GOLDEN)): p.read_text() for p in GOLDEN.rglob("*") if p.is_file()}
    assert files.keys() == golden.keys()
    for name, content in files.items():
        assert content == golden[name], name


def test_bad_sconifier_output_is_refused() -> None:
    broken = copy.deepcopy(sconifier_output())
    broken["image"] = "registry.local:5000/counter:latest"
    with pytest.raises(ChartSpecError, match="pinned by digest"):
        service_from_sconifier_json(broken)
    del broken["config_id"]
    with pytest.raises(ChartSpecError, match="not the output of sconify image"):
        service_from_sconifier_json(broken)
