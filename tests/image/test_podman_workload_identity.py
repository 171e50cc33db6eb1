"""The confidential counter in podman attesting with Kubernetes workload identity: a projected
service-account token mounted where the kubelet mounts it, verified by a real CAS against the issuer's
key set (the test is the issuer: no Kubernetes runs here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.policy import KubernetesIdentity
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import ConfidentialCounter, count, fatal_line
from tests.support.issuer import ISSUER, WORKLOAD, Cluster, audience_of

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def k8s_cas(tmp_path: Path, cluster: Cluster) -> Iterator[RunningCas]:
    jwks = cluster.write_jwks(tmp_path / "jwks.json")
    running = RunningCas(
        tmp_path / "cas", options=["--kubernetes-issuer", ISSUER, "--kubernetes-jwks", str(jwks)]
    ).start()
    yield running
    running.stop()


def token_file(path: Path, token: str) -> Path:
    path.write_text(token)
    path.chmod(0o644)  # the kubelet's projection is readable by the pod's user
    return path


def test_counts_with_its_token_and_refuses_without_or_with_another(
    k8s_cas: RunningCas, owner: ClientIdentity, cluster: Cluster, tmp_path: Path
) -> None:
    counter = ConfidentialCounter(k8s_cas, owner, tmp_path, kubernetes=WORKLOAD)
    audience = audience_of(k8s_cas.ca)
    own = token_file(tmp_path / "token", cluster.token(audience))

    first = counter.run(*counter.token_mount(own))
    assert count(first) == 0
    assert "WARNING" not in first.stderr
    assert count(counter.run(*counter.token_mount(own))) == 1

    missing = fatal_line(counter.run())
    assert "accepts kubernetes evidence" in missing and "no service-account token" in missing

    other_account = KubernetesIdentity(ISSUER, "default", "someone-else")
    stolen = token_file(tmp_path / "other", cluster.token(audience, other_account))
    assert "service account is not the pinned one" in fatal_line(counter.run(*counter.token_mount(stolen)))

    forged = token_file(tmp_path / "forged", Cluster().token(audience))
    assert "signature does not verify" in fatal_line(counter.run(*counter.token_mount(forged)))

    # Nothing of the refused runs reached the volume: the count goes on where it was.
    assert count(counter.run(*counter.token_mount(own))) == 2
