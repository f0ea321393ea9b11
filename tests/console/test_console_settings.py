"""The `[console]` table of regions.toml: the longest session and the trusted proxies, checked like every other table."""

from __future__ import annotations

import tomllib

import pytest

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from tests.support import SHIPPED_CONFIG


def test_the_shipped_console_settings_trust_no_proxy_and_end_sessions_after_eight_hours() -> None:
    console = load_config(SHIPPED_CONFIG).console
    assert (console.trusted_proxies, console.session_max_age_seconds) == ((), 8 * 3600)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trusted_proxies", ["10.0.0.1/8"], "is not an IP network"),
        ("trusted_proxies", ["ingress.example"], "is not an IP network"),
        ("session_max_age_seconds", 0, "must be between 60 and 86400 seconds"),
        ("session_max_age_seconds", 7 * 86400, "must be between 60 and 86400 seconds"),
    ],
    ids=["host-bits", "a-name", "zero-age", "a-week"],
)
def test_a_bad_console_setting_is_a_config_finding_with_its_key_path(key: str, value: object, message: str) -> None:
    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    raw["console"][key] = value
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    assert [(f.path.split("[")[0], message in f.message) for f in raised.value.findings] == [(f"console.{key}", True)]


def test_trusted_proxies_take_cidr_blocks_and_single_addresses_of_either_family() -> None:
    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    raw["console"]["trusted_proxies"] = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
    assert [str(n) for n in parse_config(raw).console.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]


def test_an_unknown_key_in_the_console_table_is_reported() -> None:
    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    raw["console"]["trusted_proxy"] = ["10.0.0.0/8"]
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    assert [(f.path, f.message) for f in raised.value.findings] == [("console.trusted_proxy", "unknown key")]
