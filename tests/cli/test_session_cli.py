"""`sconify session` driven as a user drives it: the installed console script, in a subprocess."""

from __future__ import annotations

from pathlib import Path

from pulumi_sconify.engine.policy import MAX_DOCUMENT_BYTES
from tests.support.processes import sconify


def test_help_lists_every_group() -> None:
    result = sconify("--help")
    assert result.returncode == 0
    for group in ("session", "fspf", "cas", "identity", "image", "chart", "evidence", "run"):
        assert group in result.stdout


def test_version() -> None:
    result = sconify("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sconify ")


def test_round_trip_of_the_bundled_example(tmp_path: Path) -> None:
    example = sconify("session", "example")
    assert example.returncode == 0
    policy = tmp_path / "counter.yaml"
    policy.write_text(example.stdout)

    validated = sconify("session", "validate", str(policy))
    assert validated.returncode == 0, validated.stderr
    assert "valid session ns-4027319958162/python-session" in validated.stdout

    digest = sconify("session", "hash", str(policy)).stdout.splitlines()[-1]
    assert len(digest) == 64
    rendered = sconify("session", "render", str(policy))
    assert rendered.returncode == 0
    # The canonical rendering is the same session: piped back in, it has the same hash.
    assert sconify("session", "hash", "-", stdin=rendered.stdout.encode()).stdout.splitlines()[-1] == digest


def test_validate_lists_field_paths_and_fails(tmp_path: Path, scone_counter_yaml: str) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        scone_counter_yaml.replace("fspf_key: 4ee511ed", "fspf_key: 4ee5").replace(
            "    path: /V1", "    path: V1"
        )
    )
    result = sconify("session", "validate", str(broken))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"sconify: {broken}: services[0].fspf_key: expected 64 hex characters" in lines
    assert any(
        line.endswith(
            "images[0].volumes[0].path: expected a normalised absolute path "
            "(starts with /, no //, . or .. parts)"
        )
        for line in lines
    )
    assert "4ee5" not in result.stderr
    assert result.stdout == ""


def test_hash_of_an_invalid_policy_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 0.3\n")
    result = sconify("session", "hash", str(bad))
    assert result.returncode == 1
    assert "version: must be a quoted string" in result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = sconify("session", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_oversized_input_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as stream:
        stream.truncate(MAX_DOCUMENT_BYTES * 64)
    result = sconify("session", "validate", str(big))
    assert result.returncode == 1
    assert "larger than" in result.stderr


def test_run_outside_a_confidential_container_refuses() -> None:
    result = sconify("run")
    assert result.returncode == 70
    assert result.stderr.strip() == (
        "[SCONIFY|FATAL] SCONE_CONFIG_ID and SCONE_CAS_ADDR must be set (the sconifier bakes them in)"
    )


def test_chart_generate_from_sconifier_json(tmp_path: Path) -> None:
    import json

    from tests.support.chart import sconifier_output

    source = tmp_path / "sconified.json"
    source.write_text(json.dumps(sconifier_output()))
    result = sconify(
        "chart",
        "generate",
        str(source),
        "--k8s-helm-output-dir",
        str(tmp_path / "charts"),
        "--k8s-helm-workload-type",
        "deployment",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "charts" / "python-service")
    assert (tmp_path / "charts" / "python-service" / "templates" / "deployment.yaml").is_file()

    source.write_text(json.dumps({"image": "x"}))
    refused = sconify("chart", "generate", str(source), "--out", str(tmp_path / "other"))
    assert refused.returncode == 1
    assert "not the output of sconify image" in refused.stderr
    assert not (tmp_path / "other").exists()
