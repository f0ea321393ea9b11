"""Helpers shared by tests: a settable clock, a gateway in a temporary folder, tokens."""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.model import Caller
from gateway.runtime import Settings
from gateway.tokens import issue_token

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "regions.toml"
# Debian's Chromium, launched as FACTS.md says works on this closed network (never `playwright install`).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CASE_DATE = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def system_tool(name: str, package: str) -> str:
    """The path of a program a test runs, next to the interpreter (a venv's console scripts) or on PATH.

    Where it is missing the test fails under CI (``CI=true``) and is skipped elsewhere, naming its package."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        reason = f"`{name}` is not installed (`{package}`; scripts/test.sh installs it when run as root)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = CASE_DATE) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Ticks:
    """A monotonic clock (seconds) tests move by hand: ``Settings.monotonic``, for the health cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    settings: Settings
    clock: FrozenClock

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def token(self, caller: Caller, *, ttl: timedelta | None = None) -> str:
        config = load_config(self.settings.config_path)
        key = load_private_key(resolve(self.data_dir, config.identity.token_private_key))
        return issue_token(caller, key=key, identity=config.identity, now=self.clock(), ttl=ttl)

    def service(self, service: str, region: str, purpose: str | None = None) -> dict[str, str]:
        caller = Caller(service, "service", service=service, region=region, purpose=purpose or service)
        return {"Authorization": f"Bearer {self.token(caller)}"}

    def person(self, role: str, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(Caller(name, role))}"}


def make_env(tmp_path: Path, config_text: str | None = None) -> Env:
    config_path = tmp_path / "regions.toml"
    if config_text is None:
        shutil.copy(SHIPPED_CONFIG, config_path)
    else:
        config_path.write_text(config_text)
    clock = FrozenClock()
    # no background timers: tests drive sweeps and health checks themselves
    settings = Settings(config_path=config_path, data_dir=tmp_path / "data", clock=clock, health_monitor_seconds=0)
    return Env(settings, clock)


def run_cli(workdir: Path, *args: str) -> int:
    """`gateway WORDS... --config C --data-dir D OPTIONS...` against the work folder's config and data."""
    from gateway.cli import main

    words, rest = [], list(args)
    while rest and not rest[0].startswith("-"):
        words.append(rest.pop(0))
    return main([*words, "--config", str(workdir / "regions.toml"), "--data-dir", str(workdir / "data"), *rest])


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made for this test run (its own CA, so clients can trust it as a bundle), and its key: (cert.pem, key.pem) in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"
