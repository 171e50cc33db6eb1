"""Benchmark of the CAS: attestations and volume-tag swaps per second with 1, 16 and 64 concurrent TLS
clients, p50 and p99 latency, as ratios against a trivial endpoint (``GET /health``) of the same stack
under the same load.

The load comes from wrk (Debian package), one keep-alive TLS connection per client, so the Python
server is measured rather than a Python load generator; both share this machine's two cores.

- ``attest k8s``: the whole attestation as a runtime makes it — a nonce, then the attestation with a
  Kubernetes service-account token (RS256, verified against the issuer's key set) and a runtime key;
  the grant carries a credential bound to that key. ``attest insecure``: the same with self-reported
  evidence, which checks nothing — the path before this attestation (one request, no token) cost about
  what that does, so ``k8s/insecure`` is the price of real evidence. Rates are attestations per second
  (two requests each); p50/p99 are of whole attestations, measured by a probe runtime (the project's own
  client) attesting one after another while wrk loads the CAS.
- ``tag swap``: each client swaps the tag of its own volume, one generation after another, as a runtime
  does; every request is signed by the runtime key (signatures are made before the run, as Lua cannot).

Then the stores side by side (``--stores``, default ``sqlite,postgresql,postgresql-2``): the insecure
attestation and the tag swap on SQLite, on PostgreSQL, and on two replicas sharing one PostgreSQL (the load
split over both, rates summed), each as a ratio against SQLite in the same run. PostgreSQL is a real server
started for the run (Debian's ``postgresql``).

Run: ``.venv/bin/python benchmarks/cas.py [--seconds 5] [--stores ...]``. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pulumi_sconify.engine.policy import (
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
from pulumi_sconify.engine.cas.clients.identity import new_certificate_authority
from pulumi_sconify.engine.runtime.cas import CasSession
from tests.support.cas import RunningCas, identity
from tests.support.issuer import ISSUER, WORKLOAD, Cluster, audience_of
from tests.support.postgres import PostgresServer

CLIENTS = tuple(int(c) for c in os.environ.get("CAS_BENCH_CLIENTS", "1,16,64").split(","))
MEASUREMENT = "ab" * 32
CONFIG_ID = "ns-bench/app-session/app"
"""The service attested in the attestation runs: one volume, like the counter."""
SWAPS_PER_RUN = 4000
"""Tag swaps per second to sign for in advance (more than this machine does)."""
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
    app = dataclasses.replace(base.services[0], kubernetes=WORKLOAD)
    swapper = dataclasses.replace(base.services[0], name="swapper", image_name="swapper_image")
    session = dataclasses.replace(
        base,
        services=(app, swapper),
        volumes=tuple(Volume(name) for name in names),
        images=(*base.images, Image("swapper_image", tuple(ImageVolume(name, f"/{name}") for name in names))),
        security=Security(Attestation(tolerate=("insecure-software-evidence",))),
    )
    return render_session(validate_session(session))


ATTEST_SCRIPT = """
-- One attestation is two requests: a nonce, then the attestation with it. Each thread keeps the nonces
-- it was given; a connection attests when one is at hand and asks for one otherwise.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) nonces = {} attested = 0 failed = 0 end
function request()
  local nonce = table.remove(nonces)
  if nonce == nil then
    return wrk.format("POST", "/v1/attest/nonce", {["Content-Type"] = "application/json"},
      '{"config_id": "%(config_id)s"}')
  end
  return wrk.format("POST", "/v1/attest", {["Content-Type"] = "application/json"},
    '{"config_id": "%(config_id)s", "measurement": "%(measurement)s", "runtime_key": "%(key)s", '
    .. '"nonce": "' .. nonce .. '", "evidence": %(evidence)s}')
end
function response(status, headers, body)
  local nonce = string.match(body, '"nonce": "(%%x+)"')
  if nonce then table.insert(nonces, nonce) return end
  if status == 200 then attested = attested + 1 else failed = failed + 1 end
end
function done(summary, latency, requests)
  local total, bad = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("attested")
    bad = bad + thread:get("failed")
  end
  io.write(string.format("ATTESTED %%d FAILED %%d\\n", total, bad))
end
"""

SWAP_SCRIPT = """
-- Each wrk thread serves several connections from one Lua state, so a request takes a volume that
-- has no swap in flight, and the response (which names the volume and its new generation) frees it.
-- Signatures (volume, generation) were made beforehand by the runtime key: Lua has no Ed25519.
local counter = 0
function setup(thread)
  thread:set("first", %(offset)d + counter * %(per_thread)d)
  counter = counter + 1
end
function init(args)
  committed = {}
  busy = {}
  signatures = {}
  for i = first, first + %(per_thread)d - 1 do committed[i] = 0 signatures[i] = {} end
  for line in io.lines("%(signatures)s") do
    local volume, generation, signature = string.match(line, "(%%d+) (%%d+) (%%x+)")
    volume = tonumber(volume)
    if signatures[volume] then signatures[volume][tonumber(generation)] = signature end
  end
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
  local signature = signatures[volume][generation]
  if signature == nil then wrk.thread:stop() signature = "" end
  return wrk.format("POST", "/v1/volumes/V" .. volume .. "/state",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(credential)s",
     ["sconify-signature"] = signature}, swap_body(volume, generation))
end
function swap_body(volume, generation)
  local expected
  if generation == 1 then expected = '{"generation": 0, "tag": null}'
  else expected = '{"generation": ' .. (generation - 1) .. ', "tag": "' .. tag(generation - 1) .. '"}' end
  local new = '{"generation": ' .. generation .. ', "tag": "' .. tag(generation) .. '"}'
  return '{"expected": ' .. expected .. ', "new": ' .. new .. '}'
end
function response(status, headers, body)
  local volume, generation = string.match(body, '"volume": "V(%%d+)", "generation": (%%d+)')
  if status ~= 200 or volume == nil then wrk.thread:stop() return end
  volume = tonumber(volume)
  committed[volume] = tonumber(generation)
  busy[volume] = nil
end
"""


def swap_body(volume: int, generation: int) -> bytes:
    """The body the Lua script sends for one swap, byte for byte (the signature covers its hash)."""
    expected = (
        '{"generation": 0, "tag": null}'
        if generation == 1
        else f'{{"generation": {generation - 1}, "tag": "{generation - 1:032x}"}}'
    )
    new = f'{{"generation": {generation}, "tag": "{generation:032x}"}}'
    return f'{{"expected": {expected}, "new": {new}}}'.encode()


def presign(runtime: CasSession, volumes: range, generations: int, path: Path) -> None:
    """Signatures for every swap the Lua script may send, made by the runtime's own key."""
    with path.open("w") as out:
        for volume in volumes:
            for generation in range(1, generations + 1):
                signature = runtime.sign(
                    "POST", f"/v1/volumes/V{volume}/state", swap_body(volume, generation)
                )
                out.write(f"{volume} {generation} {signature}\n")


def swap_script(
    swapper: CasSession, credential: str, directory: Path, offset: int, clients: int, seconds: int
) -> Path:
    """wrk's script for ``clients`` connections swapping volumes ``offset`` and up, with the signatures of
    every swap it may send (``SWAPS_PER_RUN`` a second at most, and at least 200 per volume)."""
    signatures = directory / f"signatures-{offset}.txt"
    presign(
        swapper, range(offset, offset + clients), max(200, int(SWAPS_PER_RUN * seconds / clients)), signatures
    )
    script = directory / f"swap-{offset}.lua"
    script.write_text(
        SWAP_SCRIPT
        % {
            "offset": offset,
            "per_thread": clients // wrk_threads(clients),
            "credential": credential,
            "signatures": signatures,
        }
    )
    return script


@dataclasses.dataclass
class Result:
    rate: float
    p50: float
    p99: float


def wrk_threads(clients: int) -> int:
    return min(clients, 2)  # two cores: more load-generator threads would only compete with the server


def wrk_output(url: str, clients: int, seconds: int, script: Path | None) -> str:
    command = ["wrk", "--latency", f"-t{wrk_threads(clients)}", f"-c{clients}", f"-d{seconds}s", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def wrk(url: str, clients: int, seconds: int, script: Path | None) -> Result:
    output = wrk_output(url, clients, seconds, script)
    latencies = {q: float(v) * _UNITS[unit] for q, v, unit in _WRK_LATENCY.findall(output)}
    rate = _WRK_RATE.search(output)
    assert rate is not None, output
    return Result(float(rate.group(1)), latencies.get("50", float("nan")), latencies.get("99", float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--stores", default="sqlite,postgresql,postgresql-2")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="cas-bench-") as directory:
        base = Path(directory)
        cluster = Cluster()
        jwks = cluster.write_jwks(base / "jwks.json")
        options = [
            "--kubernetes-issuer",
            ISSUER,
            "--kubernetes-jwks",
            str(jwks),
            "--credential-lifetime",
            "3600",
            # wrk's clients and the probe all come from 127.0.0.1: above the default per-address cap.
            "--max-connections-per-address",
            str(max(CLIENTS) + 16),
            "--attestation-rate",
            "0",  # this measures the CAS's throughput, not its rate limit
            "--client-rate",
            "0",
        ]
        cas = RunningCas(base / "cas", database=base / "cas" / "cas.db", options=options).start()
        try:
            run(cas, cluster, base, args.seconds)
        finally:
            cas.stop()
        compare_stores(base, options, args.stores.split(","), args.seconds)


def start_store(base: Path, name: str, options: list[str], server: PostgresServer | None) -> list[RunningCas]:
    """The CAS processes of one store configuration: SQLite, PostgreSQL, or two replicas on PostgreSQL."""
    if name == "sqlite":
        return [RunningCas(base / name, database=base / name / "cas.db", options=options).start()]
    assert server is not None
    authority = base / f"{name}-ca"
    authority.mkdir()
    certificate, key = new_certificate_authority()
    (authority / "ca.pem").write_bytes(certificate)
    (authority / "ca-key.pem").write_bytes(key)
    database = server.new_database()
    count = 2 if name.endswith("-2") else 1
    return [
        RunningCas(
            base / f"{name}-{index}", database=database, options=[*options, "--ca-dir", str(authority)]
        ).start(extra_env={"SCONIFY_CAS_MASTER_KEY": "7c" * 32})
        for index in range(count)
    ]


def compare_stores(base: Path, options: list[str], stores: list[str], seconds: int) -> None:
    server = PostgresServer().initialise().start() if any(s != "sqlite" for s in stores) else None
    rates: dict[tuple[str, str, int], float] = {}
    try:
        for store in stores:
            replicas = start_store(base, store, options, server)
            try:
                rates.update(store_rates(base / f"{store}-work", store, replicas, seconds))
            finally:
                for replica in replicas:
                    replica.stop()
    finally:
        if server is not None:
            server.remove()
    print(f"\nstores side by side, {seconds} s per run (rates per second; ratio against sqlite)")
    print(f"{'clients':>7}  {'workload':<16} " + " ".join(f"{store:>22}" for store in stores))
    for clients in CLIENTS:
        for workload in ("attest insecure", "tag swap"):
            cells = []
            for store in stores:
                rate = rates[(store, workload, clients)]
                ratio = (
                    rate / rates[("sqlite", workload, clients)]
                    if ("sqlite", workload, clients) in rates
                    else 1
                )
                cells.append(f"{rate:>13.0f} ({ratio:>5.2f})")
            print(f"{clients:>7}  {workload:<16} " + " ".join(f"{cell:>22}" for cell in cells))


def store_rates(
    work: Path, store: str, replicas: list[RunningCas], seconds: int
) -> dict[tuple[str, str, int], float]:
    """Insecure attestations and tag swaps per second on ``replicas`` (the load split over them)."""
    work.mkdir()
    owner = identity(work, "owner")
    with replicas[0].client(owner) as client:
        client.post_session(render_session(namespace_session("ns-bench")))
        client.post_session(policy(sum(CLIENTS)))
    swapper = replicas[0].runtime(SWAPPER_ID, MEASUREMENT)
    swapper.attest()
    credential = swapper.credential
    assert credential is not None
    attest_script = work / "attest.lua"
    attest_script.write_text(
        ATTEST_SCRIPT
        % {
            "config_id": CONFIG_ID,
            "measurement": MEASUREMENT,
            "key": "11" * 32,
            "evidence": json.dumps({"kind": "insecure-software-evidence"}),
        }
    )
    found: dict[tuple[str, str, int], float] = {}
    offset = 0
    for clients in CLIENTS:
        shares = [max(1, clients // len(replicas))] * len(replicas)
        outputs = _concurrently(
            [
                (f"https://{r.attest_address}", share, attest_script)
                for r, share in zip(replicas, shares, strict=True)
            ],
            seconds,
        )
        attested = 0
        for output in outputs:
            match = re.search(r"ATTESTED (\d+) FAILED (\d+)", output)
            assert match is not None and match.group(2) == "0", output
            attested += int(match.group(1))
        found[(store, "attest insecure", clients)] = attested / seconds
        loads = []
        for replica, share in zip(replicas, shares, strict=True):
            script = swap_script(swapper, credential, work, offset, share, seconds)
            loads.append((f"https://{replica.attest_address}", share, script))
            offset += share
        found[(store, "tag swap", clients)] = sum(
            float(match.group(1))
            for output in _concurrently(loads, seconds)
            if (match := _WRK_RATE.search(output))
        )
    return found


def _concurrently(loads: list[tuple[str, int, Path]], seconds: int) -> list[str]:
    """One wrk per (url, clients, script), all at once; their outputs."""
    outputs: list[str] = [""] * len(loads)

    def one(index: int) -> None:
        url, clients, script = loads[index]
        outputs[index] = wrk_output(url, clients, seconds, script)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(loads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outputs


def attestations(url: str, clients: int, seconds: int, script: Path, probe: CasSession) -> Result:
    """wrk attesting with ``script`` while ``probe`` attests one after another, timing each whole
    attestation; the rate is wrk's attestations per second."""
    latencies: list[float] = []
    stop = threading.Event()

    def measure() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            probe.attest()
            latencies.append((time.perf_counter() - started) * 1000)

    prober = threading.Thread(target=measure)
    prober.start()
    try:
        output = wrk_output(url, clients, seconds, script)
    finally:
        stop.set()
        prober.join()
    found = re.search(r"ATTESTED (\d+) FAILED (\d+)", output)
    assert found is not None and found.group(2) == "0", output
    latencies.sort()
    return Result(
        int(found.group(1)) / seconds,
        statistics.median(latencies),
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    )


def run(cas: RunningCas, cluster: Cluster, base: Path, seconds: int) -> None:
    owner = identity(base, "owner")
    with cas.client(owner) as client:
        client.post_session(render_session(namespace_session("ns-bench")))
        client.post_session(policy(sum(CLIENTS)))
    token_file = base / "token"
    token_file.write_text(cluster.token(audience_of(cas.ca), WORKLOAD))
    probe = cas.runtime(CONFIG_ID, MEASUREMENT, token_file=token_file)
    swapper = cas.runtime(SWAPPER_ID, MEASUREMENT)
    swapper.attest()
    credential = swapper.credential
    assert credential is not None
    key = "11" * 32  # any Ed25519 public key: wrk's credentials are never used
    scripts = {}
    for name, evidence in (
        ("k8s", json.dumps({"kind": "kubernetes", "token": token_file.read_text()})),
        ("insecure", json.dumps({"kind": "insecure-software-evidence"})),
    ):
        scripts[name] = base / f"attest-{name}.lua"
        scripts[name].write_text(
            ATTEST_SCRIPT
            % {"config_id": CONFIG_ID, "measurement": MEASUREMENT, "key": key, "evidence": evidence}
        )
    url = f"https://{cas.attest_address}"
    print(f"CAS on this machine, {seconds} s per run, wrk with one keep-alive TLS connection per client")
    print(
        f"{'clients':>7}  {'workload':<16} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}  {'vs /health':>10}"
        f"  {'vs insecure':>11}"
    )
    summary = {}
    offset = 0
    for clients in CLIENTS:
        baseline = wrk(f"{url}/health", clients, seconds, None)
        insecure = attestations(url, clients, seconds, scripts["insecure"], probe)
        kubernetes = attestations(url, clients, seconds, scripts["k8s"], probe)
        swap = swap_script(swapper, credential, base, offset, clients, seconds)
        rows = [
            ("/health", baseline),
            ("attest insecure", insecure),
            ("attest k8s", kubernetes),
            ("tag swap", wrk(url, clients, seconds, swap)),
        ]
        for name, result in rows:
            versus_insecure = f"{result.rate / insecure.rate:>11.2f}" if name.startswith("attest") else ""
            print(
                f"{clients:>7}  {name:<16} {result.rate:>8.0f} {result.p50:>8.2f} {result.p99:>8.2f}  "
                f"{result.rate / baseline.rate:>10.2f}  {versus_insecure}"
            )
            summary[f"{name}@{clients}"] = dataclasses.asdict(result)
        offset += clients
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
