"""The seed's scenario on this machine, end to end: no cluster, no cloud, no licence.

Builds the native counter image locally (Debian with python3 and click, cached), starts a local registry
and a local CAS, sconifies the image registry to registry and uploads its policy — which releases the keys
only to a pod of one Kubernetes service account: the demo plays that cluster's token issuer, and mounts the
pod's token where the kubelet would — then runs the confidential
counter three times in fresh containers (podman) on one encrypted volume, rolls the volume back to an old
copy and shows the runtime refuse it, restores the latest state and counts on.

Run from the repository (as root: podman, debootstrap): ``.venv/bin/python examples/local-demo/demo.py``
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))  # the counter image builder and server harnesses live with the tests

from pulumi_sconify.engine.layout import KUBERNETES_TOKEN  # noqa: E402
from tests.support.cas import RunningCas, identity  # noqa: E402
from tests.support.images.confidential_counter import PODMAN as CONTAINER  # noqa: E402
from tests.support.images.counter import TAG, counter_layout  # noqa: E402
from tests.support.issuer import ISSUER, WORKLOAD, Cluster, audience_of  # noqa: E402
from tests.support.processes import sconify_executable  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

PODMAN = [*CONTAINER, "--tls-verify=false"]  # the local registry speaks plain HTTP


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def sconify(*arguments: str) -> str:
    return subprocess.run(
        [sconify_executable(), *arguments], check=True, capture_output=True, text=True
    ).stdout


def run_counter(image: str, storage: Path, token: Path) -> int:
    result = subprocess.run(
        [
            *PODMAN,
            "--tmpfs",
            "/code",
            "--tmpfs",
            "/V1",
            "-v",
            f"{storage}:/sconify/volumes/V1",
            "-v",
            f"{token}:{KUBERNETES_TOKEN}:ro",  # where the kubelet projects it
            image,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        print(f"    {line}")
    for line in result.stderr.splitlines():
        if line.startswith("[SCONIFY"):
            print(f"    {line}")
    return result.returncode


def main() -> int:
    say("the native counter image (Debian, python3, click; built once with debootstrap and cached)")
    layout = counter_layout()
    with tempfile.TemporaryDirectory(prefix="sconify-demo-") as scratch:
        base = Path(scratch)
        registry = Registry(base / "registry").start()
        # No cluster here: the demo plays the cluster's service-account issuer, whose keys the CAS trusts.
        cluster = Cluster()
        jwks = cluster.write_jwks(base / "jwks.json")
        cas = RunningCas(
            base / "cas", options=["--kubernetes-issuer", ISSUER, "--kubernetes-jwks", str(jwks)]
        ).start()
        token = base / "token"
        token.write_text(cluster.token(audience_of(cas.ca), WORKLOAD))
        token.chmod(0o644)
        try:
            say(f"a local registry on {registry.host}, a local CAS on {cas.address}")
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:{TAG}",
                    f"docker://{registry.host}/native/counter:1",
                ],
                check=True,
                capture_output=True,
            )
            owner = identity(base, "owner")
            say(
                "sconify: /code encrypted, volume V1 rollback-protected, the policy (which releases the keys "
                f"only to pods of service account {WORKLOAD.namespace}/{WORKLOAD.service_account}) uploaded"
            )
            output = json.loads(
                sconify(
                    "image",
                    "--from",
                    f"docker://{registry.host}/native/counter:1",
                    "--to",
                    f"docker://{registry.host}/confidential/counter:1",
                    "--push-image",
                    "--command",
                    "python3 /code/app.py",
                    "--dir",
                    "/code",
                    "--volume=V1:/V1",
                    "--name",
                    "python-session",
                    "--service-name",
                    "python-service",
                    "--namespace",
                    "ns-demo",
                    "--create-namespace",
                    "--cas-attestation",
                    cas.attest_address,
                    "--cas-client",
                    cas.address,
                    "--cas-ca",
                    str(cas.ca),
                    "--identity",
                    str(owner.certificate.parent),
                    "--k8s-service-account",
                    WORKLOAD.service_account,
                    "--k8s-namespace",
                    WORKLOAD.namespace,
                    "--json",
                )
            )
            image = f"docker://{output['image']}"
            print(
                f"    image {output['image']}\n    mrenclave {output['mrenclave']}\n"
                f"    session {output['session_name']} ({output['session_hash'][:16]}...)"
            )
            storage = base / "volume-V1"
            storage.mkdir()
            snapshot = base / "volume-V1-after-run-1"
            for run in (1, 2, 3):
                say(f"run {run}: a fresh container on the same encrypted volume")
                if run_counter(image, storage, token) != 0:
                    return 1
                if run == 1:
                    shutil.copytree(storage, snapshot)
            latest = base / "volume-V1-latest"
            shutil.copytree(storage, latest)
            say("attack: the volume is restored from the copy taken after run 1 (a rollback)")
            shutil.rmtree(storage)
            shutil.copytree(snapshot, storage)
            if run_counter(image, storage, token) == 0:
                print("    the rollback was NOT detected")
                return 1
            say("the latest state is restored: the count goes on, nothing was lost")
            shutil.rmtree(storage)
            shutil.copytree(latest, storage)
            return run_counter(image, storage, token)
        finally:
            cas.stop()
            registry.stop()


if __name__ == "__main__":
    sys.exit(main())
