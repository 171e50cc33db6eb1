"""Benchmark: how long the CAS takes to answer a health check while clients upload the largest policies,
as a ratio against the same health checks on an idle CAS (the baseline, same process, same machine).

Before policies were checked in a worker pool, a 1 MiB policy held the event loop for its whole parse
(about half a second here), and every other request waited. Run: ``.venv/bin/python
benchmarks/cas_stall.py [--uploaders 8] [--probes 200]``. Not a test: it prints figures, it asserts nothing.
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
from tests.cas.harness import RunningCas, identity
from tests.cas.test_upload_storm import large_policy


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cas-stall-") as directory:
        base = Path(directory)
        cas = RunningCas(base / "cas", options=["--client-rate", "0"]).start()
        try:
            idle = probe(cas, args.probes)
            identities = [identity(base, f"uploader-{index}") for index in range(args.uploaders)]
            stop = False
            uploads = {"answered": 0, "busy": 0}

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
    for name, values in (("idle", idle), ("during uploads", loaded)):
        print(
            f"health {name:15s} p50 {statistics.median(values) * 1000:7.1f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms"
        )
    print(
        f"ratio p99 during uploads / idle: {percentile(loaded, 0.99) / percentile(idle, 0.99):.1f}x   "
        f"(uploads answered {uploads['answered']}, refused busy {uploads['busy']})"
    )


if __name__ == "__main__":
    main()
