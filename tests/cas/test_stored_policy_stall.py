"""An outsider who names large stored policies cannot make the CAS parse on its event loop.

The attack (issue #31): a self-made identity stores policies of a thousand services, then an outsider with
no certificate asks for nonces naming them in turn. Before, each request evicted the parsed-session cache
and parsed a policy on the event loop (most of a second), and a health check from another client waited
seconds. Now a version is stored with its compact view, nothing is parsed in line by the server's service,
what is missing is loaded in the worker pool (bounded queue, ``429`` beyond it), and the caches are bounded
by the models' real size. How long a health check takes under this load is measured by
``benchmarks/cas_stall.py --nonces``; these tests assert the mechanism.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from pulumi_sconify.engine.cas.server import server
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state import models
from pulumi_sconify.engine.cas.state.models import ModelMissing, model_size
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import parse_session
from pulumi_sconify.engine.runtime.protocol import NONCE_PATH
from tests.support.cas import RunningCas, healthy_meanwhile, identity
from tests.support.policies import counter, large_policy, namespace, text
from tests.support.postgres import store_location

OWNER = "0a" * 32
MASTER_KEY = b"\x07" * 32


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path | str, list[str]]:
    """A store holding three large policies, written by a CAS that is then gone."""
    location = store_location(tmp_path)
    writer = CasService(Store(location, MASTER_KEY))
    names = [f"big-{index}" for index in range(3)]
    for name in names:
        writer.post_session(large_policy(name).encode(), OWNER)
    return location, names


def test_the_server_never_parses_a_stored_policy_in_line(stored: tuple[Path | str, list[str]]) -> None:
    location, names = stored
    service = CasService(Store(location, MASTER_KEY), parse_in_line=False)
    with pytest.raises(ModelMissing) as missing:
        service.nonce(f"{names[0]}/s1")
    assert missing.value.key.whole is False  # the view is asked for, never the whole policy
    service.install(service.load(missing.value.key))
    assert service.nonce(f"{names[0]}/s1")["nonce"]  # then answered from memory
    assert service.nonce(f"{names[0]}/no-such-service")["nonce"]  # from the view too
    assert len(service.models) == 0  # the whole policy was never parsed


def test_a_view_is_a_small_part_of_the_whole_model(stored: tuple[Path | str, list[str]]) -> None:
    location, names = stored
    service = CasService(Store(location, MASTER_KEY))
    service.nonce(f"{names[0]}/s1")
    assert len(service.views) == 1 and len(service.models) == 0  # a nonce reads the view only
    whole = model_size(parse_session(large_policy(names[0])))
    assert service.views.size * 5 < whole, (service.views.size, whole)


def test_the_caches_are_bounded_by_the_models_real_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = CasService(Store(store_location(tmp_path), MASTER_KEY))
    service.post_session(namespace().encode(), OWNER)
    one_view = model_size(models.attestation_view(counter()))
    service.views.capacity = 3 * one_view
    for index in range(8):
        session = dataclasses.replace(counter(), name=f"ns-1/session-{index}")
        service.post_session(text(session).encode(), OWNER)
        service.nonce(f"ns-1/session-{index}/python-service")
    assert service.views.size <= 3 * one_view
    assert 1 <= len(service.views) <= 3
    latest = service._store.active("ns-1/session-7")
    assert latest is not None and service.views.get(latest.name, latest.hash) is not None


def test_a_version_stored_before_views_gets_one_once(stored: tuple[Path | str, list[str]]) -> None:
    location, names = stored
    store = Store(location, MASTER_KEY)
    with store.transaction():
        store._db.execute("UPDATE session_versions SET view = NULL")  # as a database from before views
    service = CasService(store, parse_in_line=False)
    with pytest.raises(ModelMissing) as missing:
        service.nonce(f"{names[0]}/s1")
    service.install(service.load(missing.value.key))  # as the server does: loaded in the pool, kept
    active = store.active(names[0])
    assert active is not None and store.version_view(names[0], active.hash) is not None


def _nonce_request(config_id: str) -> Any:
    """A request as Twisted hands it to the API (Twisted's own test double)."""
    request: Any = DummyRequest([])
    request.method = b"POST"
    request.path = NONCE_PATH.encode()
    request.content = io.BytesIO(json.dumps({"config_id": config_id}).encode())
    return request


def test_work_beyond_the_queue_is_refused_and_nothing_is_parsed_on_the_loop(
    stored: tuple[Path | str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    location, names = stored
    service = CasService(Store(location, MASTER_KEY), parse_in_line=False)
    loop = threading.current_thread()

    def only_off_the_loop(*arguments: object) -> models.Loaded:
        assert threading.current_thread() is not loop, "a stored policy was parsed on the event loop"
        return models.load_model(*arguments)  # type: ignore[arg-type]

    monkeypatch.setattr("pulumi_sconify.engine.cas.server.service.load_model", only_off_the_loop)
    api = server.AttestationApi(service, "attestation")
    api.workers = server.WorkerPool()
    api.workers.pending = server.MAX_QUEUED_WORK  # the queue is full
    request = _nonce_request(f"{names[0]}/s1")
    answered: object = api.render(request)
    assert answered == NOT_DONE_YET
    assert request.responseCode == 429
    assert json.loads(b"".join(request.written))["error"].startswith("busy")
    assert len(service.views) == 0


def test_an_outsider_naming_large_policies_in_turn_gets_answers_and_health_stays_up(
    tmp_path: Path, store_backend: str
) -> None:
    cas = RunningCas(tmp_path / "cas", options=["--client-rate", "0"]).start()
    try:
        uploader = identity(tmp_path, "uploader")
        with cas.client(uploader) as client:
            for index in range(3):
                client.post_session(large_policy(f"big-{index}"))
        cas.stop()
        cas.start()  # nothing in memory

        def ask(index: int) -> int:
            with cas.attestation() as outsider:
                try:
                    outsider.request("POST", NONCE_PATH, json={"config_id": f"big-{index % 3}/s{index}"})
                    return 200
                except CasError as error:
                    return error.status

        statuses, health = healthy_meanwhile(cas, ask, 60, 12)
        assert health > 0
        assert set(statuses) <= {200, 429}, statuses
        assert 200 in statuses
        assert not [line for line in cas.log_lines() if line.get("event") == "internal_error"]
    finally:
        cas.stop()
