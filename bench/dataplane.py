"""Data-plane GET of a 4 KiB record: the gateway versus a bare aiohttp handler.

Run ``python -m bench.dataplane`` (from the repository root). Two processes on
127.0.0.1, started and stopped by this script:

- gateway: ``gateway serve`` on a fresh data folder (dev keys, the shipped
  regions.toml, file stores) in a temporary folder beside the current
  directory. It is seeded through the HTTP API (one subject in us-east-1, one
  4 KiB ``subscriber`` record), then read with a real service token (``crm``
  in us-east-1): token check, residency decision, tag verification and a
  durable ledger entry per request.
- bare: an aiohttp handler that reads a 4 KiB file with one blocking read per
  request and returns it (the record's bytes, written to a file).

Load comes from ``wrk`` (``--connections`` connections, 2 threads,
``--seconds`` per round after a 1 s warm-up) in interleaved A/B rounds; a Python
aiohttp client is the fallback when ``wrk`` is absent (it saturates near 5.5k
req/s, so the bare figure is then a floor). Reports req/s, p50 and p99 per side
(medians over rounds) and the ratios. Non-2xx answers are counted and reported.

Under closed-loop load latency is mostly queueing: 32 connections over N req/s
wait about 32/N s each, so the p99 added there follows from the throughput
ratio. Both sides are then also run with one connection, one request at a time,
to show the latency a request gains from the gateway when nothing queues.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / ".venv" / "bin" / "gateway"
SUBJECT, KEY, SIZE = "bench-subject", "profile-4k", 4096



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def http(method: str, url: str, token: str, body: bytes | None = None, content_type: str = "application/octet-stream") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the bare handler ------------------------------------------------------------------


def seed_record(base: str, token: str) -> bytes:
    """Register the benchmark's US subject and write its record of ``SIZE`` bytes through the gateway at ``base``; the record's bytes."""
    profile = json.dumps({"home_region": "us-east-1", "residence": "US"}).encode()
    status, body = http("PUT", f"{base}/v1/subjects/{SUBJECT}", token, profile, "application/json")
    if status not in (200, 201):
        raise RuntimeError(f"seeding the subject: {status} {body[:300]!r}")
    payload = os.urandom(SIZE // 2).hex().encode()
    status, body = http("PUT", f"{base}/v1/subjects/{SUBJECT}/records/{KEY}?category=subscriber", token, payload)
    if status not in (200, 201):
        raise RuntimeError(f"seeding the record: {status} {body[:300]!r}")
    return payload


def serve_bare(port: int, path: str) -> None:
    from aiohttp import web

    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=read(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/record", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- load --------------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def load_wrk(url: str, token: str | None, connections: int, seconds: float) -> dict[str, float]:
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "bad": float(bad.group(1)) if bad else 0.0, "socket_errors": 1.0 if errors else 0.0}


def load_python(url: str, token: str | None, connections: int, seconds: float) -> dict[str, float]:
    import aiohttp

    async def go() -> dict[str, float]:
        lat: list[float] = []
        bad = 0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        stop = time.perf_counter() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

            async def worker() -> None:
                nonlocal bad
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    async with session.get(url, headers=headers) as r:
                        await r.read()
                        bad += r.status >= 400
                    lat.append((time.perf_counter() - t) * 1000)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - start
        lat.sort()
        return {"rps": len(lat) / elapsed, "p50": lat[len(lat) // 2], "p99": lat[int(0.99 * (len(lat) - 1))], "bad": float(bad), "socket_errors": 0.0}

    return asyncio.run(go())


# --- the run ---------------------------------------------------------------------------


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str  # the seeded record
    token: str  # a crm / us-east-1 service token
    payload: bytes  # the record's bytes


@contextlib.contextmanager
def seeded_gateway(tmp: Path) -> Iterator[Gateway]:
    """``gateway serve`` on a fresh data folder under ``tmp``, seeded with one subject and one 4 KiB record; stopped on exit."""
    shutil.copy(ROOT / "regions.toml", tmp / "regions.toml")
    common = ["--config", str(tmp / "regions.toml"), "--data-dir", str(tmp / "data")]
    port = free_port()
    proc = start([str(GATEWAY), "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], tmp / "gateway.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        issued = subprocess.run(
            [str(GATEWAY), "token", "issue", *common, "--service", "crm", "--region", "us-east-1", "--purpose", "crm", "--ttl", "3600"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
        token = issued.split()[-1]
        payload = seed_record(base, token)
        url = f"{base}/v1/subjects/{SUBJECT}/records/{KEY}"
        status, body = http("GET", url, token)
        if status != 200 or body != payload:
            raise RuntimeError(f"reading the record back: {status} {body[:300]!r}")
        yield Gateway(proc, url, token, payload)
    finally:
        stop(proc)


def run(rounds: int, seconds: float, connections: int, use_wrk: bool) -> str:
    load = load_wrk if use_wrk and shutil.which("wrk") else load_python
    tool = "wrk" if load is load_wrk else "Python aiohttp client (wrk absent: bare figures are a floor)"
    with tempfile.TemporaryDirectory(prefix=".bench-dataplane-", dir=Path.cwd()) as tmp_name, seeded_gateway(Path(tmp_name)) as gateway:
        tmp = Path(tmp_name)
        record_file = tmp / "record-4k.bin"
        record_file.write_bytes(gateway.payload)
        bare_port = free_port()
        bare = start([sys.executable, "-m", "bench.dataplane", "--serve-bare", str(bare_port), str(record_file)], tmp / "bare.log")
        try:
            url_bare = f"http://127.0.0.1:{bare_port}/record"
            wait_http(url_bare)
            results: dict[str, list[dict[str, float]]] = {"gateway": [], "bare": []}
            load(gateway.url, gateway.token, connections, 1.0)
            load(url_bare, None, connections, 1.0)
            for i in range(rounds):
                order = ("gateway", "bare") if i % 2 == 0 else ("bare", "gateway")
                for side in order:
                    if side == "gateway":
                        results[side].append(load(gateway.url, gateway.token, connections, seconds))
                    else:
                        results[side].append(load(url_bare, None, connections, seconds))
            # Latency without queueing: one connection, one request at a time.
            single = {"gateway": load(gateway.url, gateway.token, 1, seconds), "bare": load(url_bare, None, 1, seconds)}
        finally:
            stop(bare)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    gw_rps, bare_rps = med("gateway", "rps"), med("bare", "rps")
    bad = sum(r["bad"] for side in results.values() for r in side)
    per_round = ", ".join(f"{g['rps']:,.0f}/{b['rps']:,.0f}" for g, b in zip(results["gateway"], results["bare"], strict=True))
    lines = [
        f"GET of a 4 KiB record, {connections} connections, {rounds} interleaved rounds of {seconds:g} s, load from {tool} "
        f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})",
        "",
        "| server | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| gateway (file store, token, residency, tag check, durable ledger) | {gw_rps:,.0f} | {med('gateway', 'p50'):.2f} | {med('gateway', 'p99'):.2f} |",
        f"| bare aiohttp handler, blocking 4 KiB file read | {bare_rps:,.0f} | {med('bare', 'p50'):.2f} | {med('bare', 'p99'):.2f} |",
        "",
        f"Ratio gateway / bare throughput: {gw_rps / bare_rps:.2f}x; p99 added: {med('gateway', 'p99') - med('bare', 'p99'):.2f} ms "
        f"(medians over rounds; per-round req/s gateway/bare: {per_round}). Non-2xx answers: {bad:.0f}.",
    ]
    lines += [
        "",
        f"One connection, one request at a time ({seconds:g} s each), so nothing queues:",
        "",
        "| server | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *(f"| {side} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} |" for side, r in single.items()),
        "",
        f"Latency added per request without queueing: p50 {single['gateway']['p50'] - single['bare']['p50']:.2f} ms, "
        f"p99 {single['gateway']['p99'] - single['bare']['p99']:.2f} ms; non-2xx answers: {sum(r['bad'] for r in single.values()):.0f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved A/B rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="load per round and side (default 4)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk is present")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return
    print(run(args.rounds, args.seconds, args.connections, not args.python_client))


if __name__ == "__main__":
    main()
