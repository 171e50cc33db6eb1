"""Large policies uploaded at once by many clients: each is checked in the worker pool or refused with
429 when too many wait, nothing is a server error, the CAS keeps answering health checks and
attestations, and its memory stays bounded. (How long a health check takes meanwhile is measured by
``benchmarks/cas_stall.py``, not asserted here.)"""

from __future__ import annotations

from pathlib import Path

from pulumi_sconify.engine.errors import CasError
from tests.support.cas import RunningCas, healthy_meanwhile, identity
from tests.support.policies import large_policy

RSS_BOUND = 512 * 1024 * 1024
"""What the CAS may use while checking a storm of the largest policies (it uses about a tenth)."""


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
