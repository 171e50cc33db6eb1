"""`sconify image` as a SCONE user drives sconify_image: flags, JSON, policy, chart, CAS upload."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.policy import KubernetesIdentity, parse_session
from tests.support.cas import RunningCas
from tests.support.images.layers import APP_LAYER, BASE_LAYER, push_layout, write_layout
from tests.support.processes import sconify
from tests.support.registry import Registry


def native_image(registry: Registry, tmp_path: Path) -> str:
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", registry.host, "native/counter")
    return f"docker://{registry.host}/native/counter:1"


def test_sconify_image_json_policy_and_chart(registry: Registry, tmp_path: Path) -> None:
    native = native_image(registry, tmp_path)
    arguments = [
        "image",
        "--from",
        native,
        "--to",
        f"docker://{registry.host}/confidential/counter:1",
        "--push-image",
        "--dir",
        "/code",
        "--volume=V1:/V1",
        "--command",
        "python3 /code/app.py",
        "--name",
        "python-session",
        "--service-name",
        "python-service",
        "--namespace",
        "ns-1",
        "--env",
        "GREETING=hello",
        "--fspf-key-file",
        str(tmp_path / "fspf.key"),
        "--k8s-helm-output-dir",
        str(tmp_path / "charts"),
        "--k8s-helm-workload-type",
        "job",
        "--k8s-service-account",
        "counter",
        "--json",
    ]
    first = sconify(*arguments)
    assert first.returncode == 0, first.stderr
    output = json.loads(first.stdout)
    assert output["image"].startswith(f"{registry.host}/confidential/counter@sha256:")
    assert output["native_image"].startswith(f"{registry.host}/native/counter@sha256:")
    assert output["session_name"] == "ns-1/python-session"
    assert output["config_id"] == "ns-1/python-session/python-service"
    assert {"path": "/V1", "kind": "tmpfs", "volume": "V1"} in output["mounts"]
    session = parse_session(output["session"])  # the emitted policy validates
    service = session.service("python-service")
    assert service.mrenclaves == (output["mrenclave"],)
    assert service.fspf_tag == output["fspf_tag"]
    assert service.environment["GREETING"] == "hello"
    assert session.security is not None
    assert "insecure-software-evidence" not in session.security.attestation.tolerate  # never by default
    assert service.kubernetes == KubernetesIdentity(
        "https://kubernetes.default.svc.cluster.local", "default", "counter"
    )
    assert output["kubernetes"]["service_account"] == "counter"
    assert (Path(output["chart"]) / "templates" / "job.yaml").is_file()
    values = yaml.safe_load((Path(output["chart"]) / "values.yaml").read_text())
    assert values["attestation"]["kubernetes"]["serviceAccount"] == "counter"
    assert (tmp_path / "fspf.key").stat().st_mode & 0o777 == 0o600

    second = sconify(*arguments)
    assert json.loads(second.stdout)["image"] == output["image"]  # same key file, same digest


def test_registry_destination_needs_push_image(registry: Registry, tmp_path: Path) -> None:
    result = sconify(
        "image",
        "--from",
        native_image(registry, tmp_path),
        "--to",
        f"docker://{registry.host}/confidential/counter:1",
        "--dir",
        "/code",
    )
    assert result.returncode == 2
    assert "--push-image" in result.stderr


def test_default_command_and_bad_input(registry: Registry, tmp_path: Path) -> None:
    native = native_image(registry, tmp_path)
    result = sconify(
        "image", "--from", native, "--to", f"oci:{tmp_path / 'out'}:1", "--dir", "/code", "--json"
    )
    assert result.returncode == 0, result.stderr
    session = parse_session(json.loads(result.stdout)["session"])
    assert session.services[0].command == "python3 /code/app.py"  # from the image's Cmd
    assert session.services[0].kubernetes is None
    assert session.security is not None
    assert "insecure-software-evidence" not in session.security.attestation.tolerate
    insecure = sconify(
        "image",
        "--from",
        native,
        "--to",
        f"oci:{tmp_path / 'o4'}:1",
        "--insecure-software-evidence",
        "--json",
    )
    assert insecure.returncode == 0, insecure.stderr
    tolerated = parse_session(json.loads(insecure.stdout)["session"]).security
    assert tolerated is not None and "insecure-software-evidence" in tolerated.attestation.tolerate
    bad_account = sconify(
        "image", "--from", native, "--to", f"oci:{tmp_path / 'o5'}:1", "--k8s-service-account", "Bad_Name"
    )
    assert bad_account.returncode == 1
    assert "services[0].kubernetes.service_account" in bad_account.stderr
    bad = sconify("image", "--from", "docker://Upper/Case:1", "--to", f"oci:{tmp_path / 'o2'}", "--dry-run")
    assert bad.returncode == 1
    assert "invalid repository name" in bad.stderr
    missing = sconify("image", "--from", native, "--to", f"oci:{tmp_path / 'o3'}", "--dir", "/nothing")
    assert missing.returncode == 1
    assert "--dir /nothing: not a directory in the image" in missing.stderr
    assert not (tmp_path / "o3").exists()


def test_upload_to_a_cas(registry: Registry, cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
    native = native_image(registry, tmp_path)
    arguments = [
        "image",
        "--from",
        native,
        "--to",
        f"oci:{tmp_path / 'out'}:1",
        "--dir",
        "/code",
        "--volume=V1:/V1",
        "--command",
        "python3 /code/app.py",
        "--namespace",
        "ns-upload",
        "--create-namespace",
        "--service-name",
        "python-service",
        "--cas-attestation",
        f"localhost:{cas.attest_port}",
        "--cas-client",
        cas.address,
        "--cas-ca",
        str(cas.ca),
        "--identity",
        str(owner.certificate.parent),
        "--fspf-key-file",
        str(tmp_path / "k"),
        "--json",
    ]
    first = sconify(*arguments)
    assert first.returncode == 0, first.stderr
    first_hash = json.loads(first.stdout)["session_hash"]
    with cas.client(owner) as client:
        stored, digest = client.read_session("ns-upload/python-service-session")
    assert digest == first_hash
    assert parse_session(stored).service("python-service").mrenclaves == (
        json.loads(first.stdout)["mrenclave"],
    )
    arguments[arguments.index("--dir")] = "--env"
    arguments[arguments.index("/code")] = "MODE=second"
    second = sconify(*arguments)  # an update: the predecessor is filled in
    assert second.returncode == 0, second.stderr
    assert parse_session(json.loads(second.stdout)["session"]).predecessor == first_hash
