"""Benchmark: how long the CAS takes to answer a health check while clients upload the largest policies,
as a ratio against the same health checks on an idle CAS (the baseline, same process, same machine).

Two loads: clients uploading the largest policies (default), and with ``--nonces`` an outsider with no
certificate asking for nonces that name large *stored* policies in turn, so that none stays in memory.
Before uploads were checked in a worker pool, a 1 MiB policy held the event loop for its whole parse (about
half a second here); before stored policies kept a view and were loaded in the pool, the nonce load did the
same for every request (a health check's p50 2.2 s). Run: ``.venv/bin/python benchmarks/cas_stall.py
[--nonces] [--uploaders 8] [--probes 200]``. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from pulumi_sconify.engine.errors import CasError
from tests.support.cas import RunningCas, identity
from tests.support.policies import large_policy


def probe(cas: RunningCas, count: int) -> list[float]:
    latencies = []
    with cas.attestation() as attestation:
        for _ in range(count):
            started = time.perf_counter()
            attestation.request("GET", "/health")
            latencies.append(time.perf_counter() - started)
    return latencies


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, int(share * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--nonces", action="store_true", help="the outsider's nonce load instead of uploads")
    parser.add_argument("--policies", type=int, default=28, help="large policies stored, for --nonces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cas-stall-") as directory:
        base = Path(directory)
        cas = RunningCas(base / "cas", options=["--client-rate", "0"]).start()
        try:
            idle = probe(cas, args.probes)
            identities = [identity(base, f"uploader-{index}") for index in range(args.uploaders)]
            stop = False
            uploads = {"answered": 0, "busy": 0}
            if args.nonces:
                loaded, uploads = nonce_load(cas, base, args)
                report(idle, loaded, uploads, "nonces")
                return

            def upload(index: int) -> None:
                round_ = 0
                while not stop:
                    try:
                        with cas.client(identities[index]) as client:
                            client.post_session(large_policy(f"big-{index}-{round_}"))
                        uploads["answered"] += 1
                    except CasError as error:
                        uploads["busy" if error.status == 429 else "answered"] += 1
                    round_ += 1

            with ThreadPoolExecutor(args.uploaders) as pool:
                for index in range(args.uploaders):
                    pool.submit(upload, index)
                time.sleep(1)  # let the uploads queue up before probing
                loaded = probe(cas, args.probes)
                stop = True
        finally:
            cas.stop()
    report(idle, loaded, uploads, "uploads")


def nonce_load(cas: RunningCas, base: Path, args: argparse.Namespace) -> tuple[list[float], dict[str, int]]:
    """Large policies stored by one self-made identity, the CAS restarted (nothing in memory), then
    outsiders asking for nonces that name them in turn while the health checks are probed."""
    with cas.client(identity(base, "storer")) as client:
        for index in range(args.policies):
            client.post_session(large_policy(f"big-{index}"))
    cas.stop()
    cas.start()
    stop = False
    answers = {"answered": 0, "busy": 0}

    def ask(worker: int) -> None:
        index = worker
        with cas.attestation() as outsider:
            while not stop:
                try:
                    outsider.request(
                        "POST", "/v1/attest/nonce", json={"config_id": f"big-{index % args.policies}/s1"}
                    )
                    answers["answered"] += 1
                except CasError as error:
                    answers["busy" if error.status == 429 else "answered"] += 1
                index += args.uploaders

    with ThreadPoolExecutor(args.uploaders) as pool:
        for worker in range(args.uploaders):
            pool.submit(ask, worker)
        loaded = probe(cas, args.probes)
        stop = True
    return loaded, answers


def report(idle: list[float], loaded: list[float], counts: dict[str, int], load: str) -> None:
    for name, values in (("idle", idle), (f"during {load}", loaded)):
        print(
            f"health {name:15s} p50 {statistics.median(values) * 1000:7.1f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms"
        )
    print(
        f"ratio during {load} / idle: p50 {statistics.median(loaded) / statistics.median(idle):.1f}x, "
        f"p99 {percentile(loaded, 0.99) / percentile(idle, 0.99):.1f}x   "
        f"({load} answered {counts['answered']}, refused busy {counts['busy']})"
    )


if __name__ == "__main__":
    main()
