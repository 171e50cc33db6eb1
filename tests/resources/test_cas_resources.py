"""CasKeys and CasImage through Pulumi's dynamic-provider host; the CAS image runs in a real container,
pinned by clients to the CA that CasKeys made before the CAS ever started — as CasDeployment runs it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from pulumi_sconify.engine.cas.clients.client import CasClient
from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.cas.state.recovery import fingerprint
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.layout import CAS_CA_DIRECTORY, CAS_DATA_DIRECTORY, CAS_STATE_DIRECTORY
from pulumi_sconify.provider.resources.cas_image import CasImageProvider
from pulumi_sconify.provider.resources.cas_keys import CasKeysProvider
from pulumi_sconify.provider.resources.recovery_key import CasRecoveryKeyProvider
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import PODMAN
from tests.support.images.counter import TAG, counter_layout
from tests.support.processes import free_port, sconify
from tests.support.pulumi.logic_host import DIFF_NONE, DIFF_SOME, LogicHost, strip
from tests.support.registry import Registry


def test_cas_keys_lifecycle() -> None:
    with LogicHost(CasKeysProvider(), "CasKeys") as host:
        inputs, failures = host.check({}, {})
        assert failures == []
        created = host.create(inputs)
        certificate = x509.load_pem_x509_certificate(created.outs["ca_certificate_pem"].encode())
        assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert created.outs["ca_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
        assert len(bytes.fromhex(created.outs["master_key"])) == 32
        # Nothing but the name or a new provider version replaces the keys (it would orphan every pin).
        assert host.diff(created.id, strip(created.outs), strip(inputs)).changes == DIFF_NONE
        renamed = host.diff(created.id, strip(created.outs), {**strip(inputs), "common_name": "other"})
        assert renamed.changes == DIFF_SOME and list(renamed.replaces) == ["common_name"]
        again = host.create(inputs)
        assert again.outs["master_key"] != created.outs["master_key"]


def test_cas_recovery_key_made_by_pulumi_recovers_the_master_key(tmp_path: Path) -> None:
    """The key pair CasDeployment makes: a CAS seals its master key to the public half, and the private
    half — as the owner exports it from the stack — opens it with ``sconify cas recover``."""
    with LogicHost(CasRecoveryKeyProvider(), "CasRecoveryKey") as host:
        inputs, failures = host.check({}, {})
        assert failures == []
        created = host.create(inputs)
        assert host.diff(created.id, strip(created.outs), strip(inputs)).changes == DIFF_NONE
        renamed = host.diff(created.id, strip(created.outs), {**strip(inputs), "common_name": "other"})
        assert renamed.changes == DIFF_SOME and list(renamed.replaces) == ["common_name"]
        assert host.create(inputs).outs["fingerprint"] != created.outs["fingerprint"]
    keys = created.outs
    public = serialization.load_pem_public_key(keys["public_key_pem"].encode())
    assert isinstance(public, X25519PublicKey) and fingerprint(public) == keys["fingerprint"]
    (tmp_path / "recovery.pub.pem").write_text(keys["public_key_pem"])
    (tmp_path / "recovery.pem").write_text(keys["private_key_pem"])
    (tmp_path / "recovery.pem").chmod(0o600)
    cas = RunningCas(
        tmp_path / "cas", database=tmp_path / "cas" / "cas.db",
        options=["--recovery-key", str(tmp_path / "recovery.pub.pem")],
    ).start()  # fmt: skip
    cas.stop()
    recovered = sconify(
        "cas", "recover", "--recovery-key", str(tmp_path / "recovery.pem"),
        "--data-dir", str(cas.data_dir), "--out", str(tmp_path / "master.key"), "--cas-ca", str(cas.ca),
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr
    assert (tmp_path / "master.key").read_text() == (cas.data_dir / "master.key").read_text()


@pytest.mark.slow
def test_cas_image_runs_the_cas_pinned_to_keys_made_before(
    registry: Registry, owner: ClientIdentity, tmp_path: Path
) -> None:
    with LogicHost(CasKeysProvider(), "CasKeys") as host:
        keys = host.create(host.check({}, {})[0]).outs
    with LogicHost(CasImageProvider(), "CasImage") as host:
        inputs, failures = host.check(
            {},
            {
                "base": f"oci:{counter_layout()}:{TAG}",
                "target": f"{registry.host}/sconify/cas:test",
                "insecure_registries": [registry.host],
            },
        )
        assert failures == []
        assert inputs["base_digest"].startswith("sha256:")  # resolved at check: a moved tag is a change
        created = host.create(inputs)
        image = created.outs["image"]
        assert image.startswith(f"{registry.host}/sconify/cas@sha256:")
        assert host.diff(created.id, strip(created.outs), strip(inputs)).changes == DIFF_NONE
        assert host.create(inputs).outs["image"] == image  # the same base and engine, the same image

    # As CasDeployment mounts them: the claim's root belongs to root (as minikube's hostPath provisioner
    # makes it), the Secret's files are root's and readable by the CAS's group (fsGroup, mode 0440).
    ca_directory, data = tmp_path / "ca", tmp_path / "data"
    ca_directory.mkdir()
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    for name, content in (("ca.pem", keys["ca_certificate_pem"]), ("ca-key.pem", keys["ca_key_pem"])):
        (ca_directory / name).write_text(content)
        os.chown(ca_directory / name, 0, 10001)
        (ca_directory / name).chmod(0o440)
    port, attest_port = free_port(), free_port()
    container = subprocess.Popen(
        [
            *PODMAN,
            "--tls-verify=false",
            "--read-only",
            "-e",
            f"SCONIFY_CAS_MASTER_KEY={keys['master_key']}",
            "-v",
            f"{data}:{CAS_DATA_DIRECTORY}",
            "-v",
            f"{ca_directory}:{CAS_CA_DIRECTORY}:ro",
            image,
            "cas",
            "serve",
            "--data-dir",
            CAS_STATE_DIRECTORY,
            "--ca-dir",
            CAS_CA_DIRECTORY,
            "--listen",
            f"127.0.0.1:{port}",
            "--attest-listen",
            f"127.0.0.1:{attest_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pin = tmp_path / "pin.pem"
    pin.write_text(keys["ca_certificate_pem"])
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with CasClient(f"127.0.0.1:{port}", pin, owner) as client:
                    client.read_session("no-such-namespace")
            except CasError as error:
                if error.status == 404:  # TLS with the pinned CA worked, and the CAS answered
                    break
                if time.monotonic() > deadline or container.poll() is not None:
                    _, stderr = (
                        container.communicate(timeout=60) if container.poll() is not None else (b"", b"")
                    )
                    raise AssertionError(
                        f"the CAS did not come up: {error.message} {stderr[-2000:]!r}"
                    ) from None
                time.sleep(0.5)
    finally:
        container.terminate()
        _, stderr = container.communicate(timeout=60)
    assert b"Traceback" not in stderr
    assert (data / "state" / "cas.db").exists() and (data / "state").stat().st_uid == 10001
    assert not (data / "state" / "master.key").exists()  # the master key came from the Secret, not the disk
