"""The runtime trusts tag seals only where the signing key is the one the public key checks."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.config import load_config
from gateway.keys import public_path_for, resolve, write_public_key
from gateway.runtime import Runtime, Settings, init_keys
from tests.support import SHIPPED_CONFIG


async def test_every_region_whose_tag_key_pair_matches_gets_a_seal_key(tmp_path: Path) -> None:
    rt = await Runtime.open(Settings(config_path=SHIPPED_CONFIG, data_dir=tmp_path, sweep_seconds=0, health_monitor_seconds=0))
    try:
        assert set(rt.records.verifier.seal_keys) == set(rt.config.regions)
    finally:
        await rt.close()


async def test_a_region_whose_public_tag_key_is_another_key_gets_no_seal_key(tmp_path: Path) -> None:
    config = load_config(SHIPPED_CONFIG)
    init_keys(config, tmp_path)
    odd = next(iter(config.regions.values()))
    write_public_key(public_path_for(resolve(tmp_path, odd.tag_key)), ed25519.Ed25519PrivateKey.generate().public_key())
    rt = await Runtime.open(Settings(config_path=SHIPPED_CONFIG, data_dir=tmp_path, sweep_seconds=0, health_monitor_seconds=0))
    try:
        assert set(rt.records.verifier.seal_keys) == set(config.regions) - {odd.id}
    finally:
        await rt.close()
