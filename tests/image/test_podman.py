"""End to end in real containers (podman with runc): the confidential counter counts across runs on one
encrypted volume, anchored in a real CAS — and a rollback of the volume is refused."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import PODMAN, ConfidentialCounter, count, fatal_line
from tests.support.images.counter import TAG, counter_layout
from tests.support.images.layers import Entry, append_layer

pytestmark = pytest.mark.slow


def test_counts_across_runs_and_refuses_a_rollback(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    counter = ConfidentialCounter(cas, owner, tmp_path)  # insecure software evidence: no cluster here
    first = counter.run()
    assert count(first) == 0
    assert "[SCONIFY|WARNING] attested with insecure-software-evidence" in first.stderr
    snapshot = tmp_path / "snapshot"
    shutil.copytree(counter.storage, snapshot)  # the adversary keeps a copy after run 1
    assert count(counter.run()) == 1
    assert count(counter.run()) == 2

    shutil.rmtree(counter.storage)
    shutil.copytree(snapshot, counter.storage)  # ... and restores it
    rolled_back = counter.run()
    assert rolled_back.returncode == 70
    fatal = [line for line in rolled_back.stderr.splitlines() if line.startswith("[SCONIFY|FATAL]")]
    assert len(fatal) == 1 and "is missing" in fatal[0]
    assert "The number of executions" not in rolled_back.stdout


def test_plaintext_only_on_memory(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
    counter = ConfidentialCounter(cas, owner, tmp_path)
    on_disk = subprocess.run(
        [*PODMAN, "--tmpfs", "/V1", "-v", f"{counter.storage}:/sconify/volumes/V1", counter.image],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert on_disk.returncode == 70
    assert "/code (encrypted region) is not a memory-backed mount" in on_disk.stderr


# -- the seed's attacks, each in a fresh container; after each is undone the count goes on ----------------


@pytest.fixture
def counting(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> ConfidentialCounter:
    counter = ConfidentialCounter(cas, owner, tmp_path)
    assert count(counter.run()) == 0
    return counter


def image_file(counter: ConfidentialCounter, path: str, tmp_path: Path) -> Path:
    """A copy of one file of the confidential image, to be changed and mounted over the original."""
    copy = tmp_path / ("copy-" + path.replace("/", "_"))
    with copy.open("wb") as sink:
        subprocess.run(
            [*PODMAN, "--entrypoint", "cat", counter.image, path], stdout=sink, check=True, timeout=300
        )
    return copy


def test_changed_app_code_is_detected(counting: ConfidentialCounter, tmp_path: Path) -> None:
    blob = next(
        p
        for p in subprocess.run(
            [*PODMAN, "--entrypoint", "ls", counting.image, "/fspf/data"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
    )
    changed = image_file(counting, f"/fspf/data/{blob}", tmp_path)
    data = bytearray(changed.read_bytes())
    data[20] ^= 1
    changed.write_bytes(bytes(data))
    assert "Verification of file chunk 0" in fatal_line(counting.run("-v", f"{changed}:/fspf/data/{blob}:ro"))
    assert count(counting.run()) == 1


def test_changed_library_is_detected(counting: ConfidentialCounter, tmp_path: Path) -> None:
    changed = image_file(counting, "/usr/lib/python3/dist-packages/click/core.py", tmp_path)
    changed.write_bytes(changed.read_bytes() + b"\nprint('patched')\n")
    line = fatal_line(counting.run("-v", f"{changed}:/usr/lib/python3/dist-packages/click/core.py:ro"))
    assert "measurement not permitted by the policy" in line
    assert count(counting.run()) == 1


def test_changed_interpreter_is_detected(counting: ConfidentialCounter, tmp_path: Path) -> None:
    changed = image_file(counting, "/usr/bin/python3.11", tmp_path)
    changed.write_bytes(changed.read_bytes() + b"\x00extra")  # still runs, but is not the measured binary
    changed.chmod(0o755)
    assert "measurement not permitted" in fatal_line(counting.run("-v", f"{changed}:/usr/bin/python3.11:ro"))
    assert count(counting.run()) == 1


def test_a_pipe_in_an_authenticated_region_is_refused_not_waited_on(
    counting: ConfidentialCounter, tmp_path: Path
) -> None:
    """Reading a pipe would block the start for ever: the measurement names it instead."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    line = fatal_line(counting.run("-v", f"{pipe}:/usr/lib/python3/dist-packages/extra"))
    assert "/usr/lib/python3/dist-packages/extra: a special file in authenticated region" in line
    assert count(counting.run()) == 1


OWNED = "/usr/lib/python3/dist-packages/owned.txt"
"""A file of the authenticated /usr/lib that the image gives to an application user, with a capability
and an attribute of its own."""
OWNED_CONTENT = b"data the application user owns\n"
NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


@pytest.fixture
def with_owners(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> ConfidentialCounter:
    """The counter built on a native image with one more layer: :data:`OWNED`, as the layer declares it."""
    native = tmp_path / "native-with-owners"
    header = {"uid": 4242, "gid": 4243, "pax_headers": {"SCHILY.xattr.user.origin": "wheel 1.0"}}
    append_layer(counter_layout(), TAG, [Entry(OWNED.lstrip("/"), OWNED_CONTENT, extra=header)], native)
    counter = ConfidentialCounter(cas, owner, tmp_path / "sconified", native=native)
    assert count(counter.run()) == 0  # podman unpacked the owner and attribute the sconifier sealed
    return counter


def owned_copy(tmp_path: Path, uid: int, gid: int, **xattrs: bytes) -> Path:
    copy = tmp_path / f"owned-{uid}-{len(xattrs)}"
    copy.write_bytes(OWNED_CONTENT)
    copy.chmod(0o644)
    os.chown(copy, uid, gid)
    for name, value in xattrs.items():
        os.setxattr(copy, name.replace("__", "."), value)
    return copy


@pytest.mark.parametrize(
    ("uid", "gid", "xattrs", "refusal"),
    [
        pytest.param(
            0,
            0,
            {"user__origin": b"wheel 1.0"},
            "the file's owner changed (sealed 4242:4243, found 0:0)",
            id="owner",
        ),
        pytest.param(
            4242,
            4243,
            {"user__origin": b"wheel 1.0", "security__capability": NET_RAW},
            "file capabilities (security.capability) added",
            id="capability",
        ),
        pytest.param(4242, 4243, {}, "extended attribute user.origin removed", id="attribute"),
    ],
)
def test_a_changed_owner_capability_or_attribute_is_refused_by_name(
    with_owners: ConfidentialCounter,
    tmp_path: Path,
    uid: int,
    gid: int,
    xattrs: dict[str, bytes],
    refusal: str,
) -> None:
    """Same content and mode, so the same measurement: the CAS answers, and the sealed metadata refuses."""
    copy = owned_copy(tmp_path, uid, gid, **xattrs)
    line = fatal_line(with_owners.run("-v", f"{copy}:{OWNED}:ro"))
    assert f"Verification of {OWNED} failed: {refusal}" in line
    assert count(with_owners.run()) == 1


def test_changed_volume_byte_is_detected(counting: ConfidentialCounter) -> None:
    (blob,) = (counting.storage / "data").iterdir()
    original = blob.read_bytes()
    data = bytearray(original)
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    assert "of file /V1/num failed" in fatal_line(counting.run())
    blob.write_bytes(original)
    assert count(counting.run()) == 1


def test_deleted_volume_files_are_detected(counting: ConfidentialCounter, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    shutil.copytree(counting.storage, keep)
    for path in list(counting.storage.rglob("*")):
        if path.is_file():
            path.unlink()
    assert "is missing" in fatal_line(counting.run())
    shutil.rmtree(counting.storage)
    shutil.copytree(keep, counting.storage)
    assert count(counting.run()) == 1


def test_info_log_says_where_start_up_time_goes(counting: ConfidentialCounter) -> None:
    result = counting.run("-e", "SCONE_LOG=INFO", "-e", "SCONE_VERSION=1")
    assert count(result) == 1
    # Its most talkative run shows neither secret the CAS gives this service: the FSPF key, the volume's key.
    runtime = counting.cas.runtime(config_id=counting.config_id, measurement=counting.result.mrenclave)
    grant = runtime.attest()
    (volume,) = grant["configuration"]["volumes"]
    shown = (result.stdout + result.stderr).lower()
    for secret in (counting.fspf_key.hex(), volume["key"]):
        assert secret.lower() not in shown
    info = "\n".join(line for line in result.stderr.splitlines() if line.startswith("[SCONIFY|INFO]"))
    assert re.search(r"measurement [0-9a-f]{64} \(\d+ files, \d+ MB, \d+\.\d{3} s\)", info), info
    assert re.search(r"protected regions verified and decrypted \(\d+\.\d{3} s\)", info), info
    assert re.search(r"volume V1 opened at generation 1 \(\d+\.\d{3} s\)", info), info
    assert re.search(r"volumes committed \(\d+\.\d{3} s\)", info), info


def test_arguments_cannot_redirect_the_program(counting: ConfidentialCounter) -> None:
    """`-v /tmp/num` (or any argument) is ignored: the CAS's command runs, on the protected volume."""
    assert count(counting.run(arguments=("-v", "/tmp/num"))) == 1
    assert count(counting.run()) == 2


def test_another_configuration_or_environment_is_refused(counting: ConfidentialCounter) -> None:
    other = counting.run("-e", "SCONE_CONFIG_ID=ns-e2e/python-session/other-service")
    assert "unknown configuration id" in fatal_line(other)
    assert (
        count(counting.run("-e", "GREETING=ignored", "-e", "PYTHONPATH=/tmp")) == 1
    )  # only the policy's env


def test_runs_as_the_charts_non_root_user_on_a_read_only_root(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    """As the chart's security context runs it: user 10001, read-only root file system, memory mounts the
    user may write (Kubernetes' memory emptyDirs are), the claim's directory world-writable (hostPath).
    ``--passwd=false``: podman otherwise mounts an /etc/passwd and /etc/group of its own with the user added,
    which the authenticated root refuses (a kubelet changes neither)."""
    counter = ConfidentialCounter(cas, owner, tmp_path, namespace="ns-non-root")
    counter.storage.chmod(0o777)
    as_the_chart = ("--user", "10001:10001", "--read-only", "--passwd=false")
    assert count(counter.run(*as_the_chart, memory="rw,U")) == 0
    assert count(counter.run(*as_the_chart, memory="rw,U")) == 1
    # Memory the user may not write: one FATAL line naming the path, not a traceback; nothing lost.
    refused = counter.run(*as_the_chart)
    assert "/code/app.py: Permission denied" in fatal_line(refused)
    assert count(counter.run(*as_the_chart, memory="rw,U")) == 2
    # podman's own /etc/passwd (the user added) is not the image's: refused before any key is given.
    changed = counter.run("--user", "10001:10001", "--read-only", memory="rw,U")
    assert "measurement not permitted by the policy" in fatal_line(changed)


def test_bypassing_the_runtime_gets_no_plaintext(counting: ConfidentialCounter) -> None:
    bypass = counting.run("--entrypoint", "python3", counting.image, "/code/app.py")
    assert bypass.returncode != 0
    assert "The number of executions" not in bypass.stdout  # no code, no volume: nothing to run or read
    assert count(counting.run()) == 1


def test_policy_with_another_measurement_refuses(
    counting: ConfidentialCounter, cas: RunningCas, owner: ClientIdentity
) -> None:
    with cas.client(owner) as client:
        text, active = client.read_session("ns-e2e/python-session")
        changed = text.replace(counting.result.mrenclave, "ab" * 32)
        changed = changed.replace(
            "name: ns-e2e/python-session", f"name: ns-e2e/python-session\npredecessor: {active}"
        )
        client.post_session(changed)
    assert "measurement not permitted by the policy" in fatal_line(counting.run())


def test_a_policy_that_accepts_no_evidence_refuses(
    counting: ConfidentialCounter, cas: RunningCas, owner: ClientIdentity
) -> None:
    """Neither a workload identity nor the insecure opt-in: nothing this runtime can give is accepted."""
    with cas.client(owner) as client:
        text, active = client.read_session("ns-e2e/python-session")
        kept = [line for line in text.splitlines() if line.strip() != "- insecure-software-evidence"]
        assert len(kept) == len(text.splitlines()) - 1
        changed = "\n".join(kept).replace(
            "name: ns-e2e/python-session", f"name: ns-e2e/python-session\npredecessor: {active}"
        )
        client.post_session(changed)
    line = fatal_line(counting.run())
    assert "the policy accepts no evidence for this service" in line
    assert "services[].kubernetes" in line and "insecure-software-evidence" in line


def running(name: str, process: subprocess.Popen[str]) -> bool:
    """Wait until the container ``name`` runs (True), or its podman process has ended (False)."""
    while process.poll() is None:
        state = subprocess.run(
            ["podman", "container", "inspect", "--format", "{{.State.Running}}", name],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if state.stdout.strip() == "true":
            return True
    return False


def test_kill_9_at_random_moments_never_raises_a_false_alarm(counting: ConfidentialCounter) -> None:
    """50 runs, each killed with SIGKILL at a random moment after its container started (the first is let
    finish, the second is killed as it starts): no run may ever refuse (a false rollback alarm), and the
    count the counter prints never goes back. The moments are counted from the container's start, not
    from the podman call, so a slow machine shifts them all alike."""
    import random
    import time

    generator = random.Random(20261127)
    last = 0
    finished = killed = 0
    for index in range(50):
        name = f"sconify-crash-{index}"
        process = subprocess.Popen(
            counting.command("--name", name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if index > 0 and running(name, process):
            time.sleep(0 if index == 1 else generator.uniform(0, 2.0))
            subprocess.run(
                ["podman", "kill", "--signal", "KILL", name], capture_output=True, check=False, timeout=60
            )
        out, err = process.communicate(timeout=300)
        assert "[SCONIFY|FATAL]" not in err, f"run {index}: {err}"
        for line in out.splitlines():
            if line.startswith("The number of executions is"):
                value = int(line.rsplit(" ", 1)[1])
                assert value >= last, f"run {index}: the count went back from {last} to {value}"
                last = value
        if process.returncode == 0:
            finished += 1
        else:
            killed += 1
    assert finished and killed, (finished, killed)  # both endings happened
    final = count(counting.run())
    assert final >= last
