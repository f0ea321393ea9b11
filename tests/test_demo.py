"""The demo starts again on its own data, and its tour's commands run from any shell."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from gateway.cli import demo_tour, gateway_command
from gateway.config import load_config
from gateway.demo import seed
from gateway.runtime import Runtime, init_keys
from gateway.services.records import record_key
from tests.support import make_env


async def test_seeding_the_demo_again_after_a_record_was_put_under_a_legal_hold_succeeds(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    init_keys(load_config(env.settings.config_path), env.data_dir, demo_authorities=True)
    rt = await Runtime.open(env.settings)
    try:
        assert await seed(rt.records) > 0
        await rt.stores["ap-southeast-2"].set_legal_hold(record_key("mia", "inbox-0001"), True)  # as the tour's preservation order does
        assert await seed(rt.records) == 0
    finally:
        await rt.close()


def test_the_tour_runs_the_gateway_by_a_path_that_works_without_an_activated_virtualenv(tmp_path: Path) -> None:
    shown = subprocess.run([*shlex.split(gateway_command()), "--help"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=True)
    assert shown.stdout.startswith("usage: gateway")


def test_the_tour_names_the_legal_console_and_how_to_sign_in(tmp_path: Path) -> None:
    args = argparse.Namespace(host="127.0.0.1", port=8080, config=Path("regions.toml"), data_dir=Path("data"))
    tour = demo_tour(args, 20, {"us-warrant-alice": (Path("data/demo-orders/us-warrant-alice.jws"), "order-1")})
    assert "http://127.0.0.1:8080/console/" in tour
    assert "$(gateway token" not in tour
