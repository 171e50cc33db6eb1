"""Benchmark: what an anchor (``cas serve --anchor``) costs the CAS's durable changes, as a ratio against the
same changes without one (the baseline, same process, same disk).

Every acknowledged volume tag swap is a durable transaction; with an anchor the audit head is also written,
durably, to the second store after it. The swaps run through the CAS's service in process (no TLS, no HTTP),
so the figures are the store's alone; both stores are SQLite files on the same disk (the least an anchor on
another volume costs). Run: ``.venv/bin/python benchmarks/cas_anchor.py [--swaps 400]``. Not a test: it
prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.runtime.protocol import request_signing_input
from tests.support.policies import MEASUREMENT, counter, namespace, text

CONFIG_ID = "ns-1/python-session/python-service"
PATH = "/v1/volumes/V1/state"


def swaps_per_second(store: Path | str, anchor: Path | str | None, swaps: int) -> float:
    service = CasService(Store(store, b"\x07" * 32, anchor))
    service.post_session(namespace().encode(), "0a" * 32)
    service.post_session(text(counter()).encode(), "0a" * 32)
    key = Ed25519PrivateKey.generate()
    nonce = service.nonce(CONFIG_ID)["nonce"]
    evidence = {"kind": "insecure-software-evidence"}
    token = service.attest(CONFIG_ID, MEASUREMENT, nonce, key.public_key().public_bytes_raw(), evidence)
    credential = service.authorize(
        token["credential"],
        key.sign(request_signing_input("GET", PATH, b"", token["credential"])).hex(),
        "GET",
        PATH,
        b"",
    )
    started = time.perf_counter()
    for generation in range(1, swaps + 1):
        previous = (generation - 1, (generation - 1).to_bytes(16, "big") if generation > 1 else None)
        service.swap_volume(credential, "V1", previous, (generation, generation.to_bytes(16, "big")))
    return swaps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--swaps", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cas-anchor-") as directory:
        base = Path(directory)
        plain = swaps_per_second(base / "plain.db", None, args.swaps)
        anchored = swaps_per_second(base / "anchored.db", base / "anchor.db", args.swaps)
    print(f"durable tag swaps/s without an anchor: {plain:8.0f}")
    print(f"durable tag swaps/s with an anchor:    {anchored:8.0f}")
    print(f"ratio anchored / plain: {anchored / plain:.2f}")


if __name__ == "__main__":
    main()
