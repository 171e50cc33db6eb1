"""Large policies uploaded at once by many clients: each is checked in the worker pool or refused with
429 when too many wait, nothing is a server error, the CAS keeps answering health checks and
attestations, and its memory stays bounded. (How long a health check takes meanwhile is measured by
``benchmarks/cas_stall.py``, not asserted here.)"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pulumi_sconify.engine.errors import CasError
from tests.cas.harness import RunningCas, identity

RSS_BOUND = 512 * 1024 * 1024
"""What the CAS may use while checking a storm of the largest policies (it uses about a tenth)."""


def large_policy(name: str, services: int = 1000, variables: int = 15) -> str:
    """A valid policy just under the 1 MiB limit, slow to parse (about half a second here)."""
    lines = [f"name: {name}", 'version: "0.3"', "services:"]
    for index in range(services):
        lines.append(f'  - name: s{index}\n    image_name: img\n    mrenclaves: ["{"ab" * 32}"]')
        lines.append(f'    command: "python3 /app.py --flag {index}"\n    environment:')
        lines.extend(f'      V{j}: "value-{index}-{j}-padding-padding-padding"' for j in range(variables))
    lines.append("images:\n  - name: img")
    return "\n".join(lines)


def healthy_meanwhile(
    cas: RunningCas, action: Callable[[int], int], count: int, threads: int
) -> tuple[list[int], int]:
    """``action(0 … count-1)`` from ``threads`` threads while health checks are asked, each answered: the
    statuses, and how many health checks were answered meanwhile."""
    health_answers = 0
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(action, index) for index in range(count)]
        with cas.attestation() as attestation:
            while not all(future.done() for future in futures):
                assert attestation.request("GET", "/health") == {"status": "ok"}
                health_answers += 1
        return [future.result() for future in futures], health_answers


def test_an_upload_storm_is_checked_off_the_event_loop(cas: RunningCas, tmp_path: Path) -> None:
    uploaders = [identity(tmp_path, f"uploader-{index}") for index in range(24)]

    def upload(index: int) -> int:
        try:
            with cas.client(uploaders[index]) as client:
                client.post_session(large_policy(f"big-{index}"))
            return 201
        except CasError as error:
            return error.status

    statuses, health_answers = healthy_meanwhile(cas, upload, len(uploaders), len(uploaders))
    assert health_answers > 0
    assert set(statuses) <= {201, 429}, statuses
    assert 201 in statuses
    assert cas.rss() < RSS_BOUND
    assert not [line for line in cas.log_lines() if line.get("event") == "internal_error"]
