"""Benchmark of the CAS: attestations and volume-tag swaps per second with 1, 16 and 64 concurrent TLS
clients, p50 and p99 latency, as ratios against a trivial endpoint (``GET /health``) of the same stack
under the same load.

The load comes from wrk (Debian package), one keep-alive TLS connection per client, so the Python
server is measured rather than a Python load generator; both share this machine's two cores. Each
client swaps the tag of its own volume, one generation after another, as a runtime does.
Run: ``.venv/bin/python benchmarks/cas.py [--seconds 5]``. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pulumi_sconify.provider.policy import (
    Attestation,
    Image,
    ImageVolume,
    Security,
    Volume,
    namespace_session,
    render_session,
    sconified_session,
    validate_session,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness starts the CAS
from tests.cas.harness import RunningCas, identity

CLIENTS = tuple(int(c) for c in os.environ.get("CAS_BENCH_CLIENTS", "1,16,64").split(","))
MEASUREMENT = "ab" * 32
CONFIG_ID = "ns-bench/app-session/app"
"""The service attested in the attestation runs: one volume, like the counter."""
SWAPPER_ID = "ns-bench/app-session/swapper"
"""The service whose credential the swap runs use: it mounts one volume per client."""

_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def policy(volumes: int) -> str:
    """A counter-like service ``app`` with one volume, and a ``swapper`` that mounts ``volumes``
    volumes, so that every client of the swap runs commits its own."""
    base = sconified_session(
        namespace="ns-bench",
        session="app-session",
        service="app",
        mrenclave=MEASUREMENT,
        command="app",
        fspf_key="cd" * 32,
        fspf_tag="ef" * 16,
        volumes={"V0": "/V0"},
    )
    names = [f"V{i}" for i in range(volumes)]
    swapper = dataclasses.replace(base.services[0], name="swapper", image_name="swapper_image")
    session = dataclasses.replace(
        base,
        services=(*base.services, swapper),
        volumes=tuple(Volume(name) for name in names),
        images=(*base.images, Image("swapper_image", tuple(ImageVolume(name, f"/{name}") for name in names))),
        security=Security(Attestation(tolerate=("software-evidence",))),
    )
    return render_session(validate_session(session))


ATTEST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"config_id": "%s", "measurement": "%s", "evidence": {"kind": "software"}}'
""" % (CONFIG_ID, MEASUREMENT)  # noqa: UP031 - a Lua template, not a Python format

SWAP_SCRIPT = """
-- Each wrk thread serves several connections from one Lua state, so a request takes a volume that
-- has no swap in flight, and the response (which names the volume and its new generation) frees it.
local counter = 0
function setup(thread)
  thread:set("first", %(offset)d + counter * %(per_thread)d)
  counter = counter + 1
end
function init(args)
  committed = {}
  busy = {}
  for i = first, first + %(per_thread)d - 1 do committed[i] = 0 end
end
function tag(g) return string.format("%%032x", g) end
function request()
  local volume = nil
  for i = first, first + %(per_thread)d - 1 do
    if not busy[i] then volume = i break end
  end
  if volume == nil then volume = first end
  busy[volume] = true
  local generation = committed[volume] + 1
  local expected
  if generation == 1 then expected = '{"generation": 0, "tag": null}'
  else expected = '{"generation": ' .. (generation - 1) .. ', "tag": "' .. tag(generation - 1) .. '"}' end
  local new = '{"generation": ' .. generation .. ', "tag": "' .. tag(generation) .. '"}'
  local body = '{"expected": ' .. expected .. ', "new": ' .. new .. '}'
  return wrk.format("POST", "/v1/volumes/V" .. volume .. "/state",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(credential)s"}, body)
end
function response(status, headers, body)
  local volume, generation = string.match(body, '"volume": "V(%%d+)", "generation": (%%d+)')
  if status ~= 200 or volume == nil then wrk.thread:stop() return end
  volume = tonumber(volume)
  committed[volume] = tonumber(generation)
  busy[volume] = nil
end
"""


@dataclasses.dataclass
class Result:
    rate: float
    p50: float
    p99: float


def wrk_threads(clients: int) -> int:
    return min(clients, 2)  # two cores: more load-generator threads would only compete with the server


def wrk(url: str, clients: int, seconds: int, script: Path | None) -> Result:
    command = ["wrk", "--latency", f"-t{wrk_threads(clients)}", f"-c{clients}", f"-d{seconds}s", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latencies = {q: float(v) * _UNITS[unit] for q, v, unit in _WRK_LATENCY.findall(output)}
    rate = _WRK_RATE.search(output)
    assert rate is not None, output
    return Result(float(rate.group(1)), latencies.get("50", float("nan")), latencies.get("99", float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="cas-bench-") as directory:
        base = Path(directory)
        cas = RunningCas(base / "cas").start()
        try:
            run(cas, base, args.seconds)
        finally:
            cas.stop()


def run(cas: RunningCas, base: Path, seconds: int) -> None:
    owner = identity(base, "owner")
    with cas.client(owner) as client:
        client.post_session(render_session(namespace_session("ns-bench")))
        client.post_session(policy(sum(CLIENTS)))
    with cas.attestation() as attestation:
        credential = attestation.attest(SWAPPER_ID, MEASUREMENT, {"kind": "software"})["credential"]
    attest_script = base / "attest.lua"
    attest_script.write_text(ATTEST_SCRIPT)
    url = f"https://{cas.attest_address}"
    print(f"CAS on this machine, {seconds} s per run, wrk with one keep-alive TLS connection per client")
    print(f"{'clients':>7}  {'workload':<11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  {'vs /health':>10}")
    summary = {}
    offset = 0
    for clients in CLIENTS:
        baseline = wrk(f"{url}/health", clients, seconds, None)
        swap_script = base / f"swap-{clients}.lua"
        # Fresh volumes for every run (the script starts each at generation 0): offset past earlier runs.
        swap_script.write_text(
            SWAP_SCRIPT
            % {"offset": offset, "per_thread": clients // wrk_threads(clients), "credential": credential}
        )
        rows = [
            ("/health", baseline),
            ("attest", wrk(f"{url}/v1/attest", clients, seconds, attest_script)),
            ("tag swap", wrk(url, clients, seconds, swap_script)),
        ]
        for name, result in rows:
            print(
                f"{clients:>7}  {name:<11} {result.rate:>8.0f} {result.p50:>8.2f} {result.p99:>8.2f}  "
                f"{result.rate / baseline.rate:>10.2f}"
            )
            summary[f"{name}@{clients}"] = dataclasses.asdict(result)
        offset += clients
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
