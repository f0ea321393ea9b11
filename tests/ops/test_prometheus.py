"""The alert rules under promtool, and a real Prometheus scraping a running gateway."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from tests.orders_support import prepare_authorities
from tests.support import ROOT, Env

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus server is not installed (Debian package `prometheus`)")


def _promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_the_alert_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    wrong = (PROMETHEUS_DIR / "alerts_test.yml").read_text().replace("region: eu-central-1, instance", "region: eu-west-1, instance")
    (tmp_path / "alerts_test.yml").write_text(wrong)
    assert _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path).returncode == 1


@needs_promtool
def test_the_scrape_config_passes_promtool_check() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _api(session: aiohttp.ClientSession, base: str, path: str, **params: str) -> Any:
    async with session.get(f"{base}/api/v1/{path}", params=params, timeout=aiohttp.ClientTimeout(total=2)) as response:
        return (await response.json())["data"]


@needs_prometheus
async def test_a_real_prometheus_scrapes_the_gateway_and_evaluates_its_rules(env: Env, tmp_path: Path) -> None:
    prepare_authorities(env)
    runner = web.AppRunner(create_app(env.settings, registry=CollectorRegistry()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gateway_port = runner.addresses[0][1]
    prom_port = _free_port()
    (tmp_path / "probe.yml").write_text(
        "groups:\n  - name: probe\n    rules:\n"
        "      - alert: GatewayStoreUpForTest\n"
        '        expr: gateway_store_up{region="eu-west-1"} == 1\n'
        "        labels: {severity: none}\n"
    )
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{PROMETHEUS_DIR / 'alerts.yml'}', '{tmp_path / 'probe.yml'}']\n"
        "scrape_configs:\n"
        f"  - job_name: gateway\n    static_configs: [{{targets: ['127.0.0.1:{gateway_port}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{prom_port}"
    up = firing = groups = None
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                try:
                    up = await _api(session, base, "query", query='up{job="gateway"}')
                    groups = {g["name"]: g for g in (await _api(session, base, "rules"))["groups"]}
                    firing = [a for a in (await _api(session, base, "alerts"))["alerts"] if a["labels"]["alertname"] == "GatewayStoreUpForTest"]
                except (aiohttp.ClientError, TimeoutError, KeyError):
                    await asyncio.sleep(0.5)
                    continue
                if up["result"] and up["result"][0]["value"][1] == "1" and firing and firing[0]["state"] == "firing":
                    break
                await asyncio.sleep(0.5)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        await runner.cleanup()

    assert up and up["result"] and up["result"][0]["value"][1] == "1", (up, (tmp_path / "prometheus.log").read_text()[-2000:])
    assert firing and firing[0]["state"] == "firing", firing
    assert groups is not None and {"gateway", "gateway-order-slo", "probe"} <= set(groups)
    assert all(rule["health"] == "ok" for group in groups.values() for rule in group["rules"]), groups
    assert groups["gateway"]["lastEvaluation"] > "2000"  # the shipped rules were evaluated against real scrapes
