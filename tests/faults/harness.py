"""Real processes for fault tests: a `gateway serve` and `moto_server`s that a test can kill, freeze and restart.

Nothing here fakes a library: the gateway is the installed entry point in its
own process, each S3 region is its own `moto_server` process (threaded servers
in one process would share one store), and signals are real signals.

A test builds a ``Workdir`` (a config and a data folder), starts a
``GatewayProcess`` on it, drives it over HTTP, and may SIGKILL or SIGTERM it
and start another on the same folder, as an orchestrator would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.model import Caller
from gateway.tokens import issue_token
from tests.support import ROOT, SHIPPED_CONFIG

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
START_TIMEOUT = 60.0  # seconds a process may take to answer (a busy CI machine is slow)

# S3 calls that give up quickly, so a test of a dead or frozen endpoint does not wait long
FAST_S3 = "connect_timeout = 0.3, read_timeout = 0.5, max_attempts = 1, deadline = 1.0"


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, from /proc (empty where there is none)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[bytes], *, timeout: float = START_TIMEOUT, what: str = "process") -> None:
    """Poll ``url`` until it answers anything over HTTP; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # an HTTP answer, whatever its status
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} at {url} did not answer within {timeout}s")


def s3_store(region: str, url: str, *, bucket: str | None = None, options: str = FAST_S3) -> str:
    """A regions.toml inline ``store`` table for an S3 endpoint."""
    return f'store = {{ kind = "s3", bucket = "{bucket or "records-" + region}", region_name = "{region}", endpoint_url = "{url}", {options} }}'


def config_text(stores: Mapping[str, str] | None = None, *, control: str | None = None, extra: str = "") -> str:
    """The shipped regions.toml with some regions' (and the control store's) ``store`` lines replaced, and ``extra`` appended."""
    text = SHIPPED_CONFIG.read_text()
    for region, store in (stores or {}).items():
        local = f'store = {{ kind = "file", path = "stores/{region}" }}'
        assert local in text, region
        text = text.replace(local, store)
    if control is not None:
        local = 'store = { kind = "file", path = "control" }'
        assert local in text
        text = text.replace(local, control)
    return text + extra


@dataclass
class Workdir:
    """A config and a data folder that gateway processes are started on, one after another."""

    root: Path

    @classmethod
    def make(cls, root: Path, text: str | None = None) -> Workdir:
        root.mkdir(parents=True, exist_ok=True)
        config = root / "regions.toml"
        if text is None:
            shutil.copy(SHIPPED_CONFIG, config)
        else:
            config.write_text(text)
        return cls(root)

    @property
    def config(self) -> Path:
        return self.root / "regions.toml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ledger_dir(self) -> Path:
        return self.data_dir / "ledger"

    def chains(self) -> dict[str, Path]:
        """Every ledger chain's file in the data folder, by chain id."""
        return {path.stem: path for path in sorted(self.ledger_dir.glob("*.jsonl"))}

    @property
    def ledger(self) -> Path:
        """The one chain's file, for a workdir only ever served by one process at a time (the host's chain)."""
        chains = list(self.chains().values())
        assert len(chains) <= 1, f"several ledger chains: {chains}"
        return chains[0] if chains else self.ledger_dir / "missing.jsonl"

    def token(self, caller: Caller, *, ttl: timedelta = timedelta(hours=1)) -> str:
        """A token the gateway process accepts: signed with the key it made on its first start, at the real time."""
        config = load_config(self.config)
        key = load_private_key(resolve(self.data_dir, config.identity.token_private_key))
        return issue_token(caller, key=key, identity=config.identity, now=datetime.now(UTC), ttl=ttl)

    def service(self, service: str, region: str, purpose: str | None = None) -> dict[str, str]:
        caller = Caller(service, "service", service=service, region=region, purpose=purpose or service)
        return {"Authorization": f"Bearer {self.token(caller)}"}

    def person(self, role: str, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(Caller(name, role))}"}

    def entries(self, chain: str | None = None) -> list[dict]:
        """Every complete entry of one chain, or of every chain in the data folder as one ledger (a torn last line is not an entry)."""
        import json

        from gateway.audit import merge_chains

        chains = []
        for name, path in self.chains().items():
            if chain is not None and name != chain:
                continue
            out = []
            for line in path.read_bytes().split(b"\n")[:-1]:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
            chains.append(out)
        return [dict(e) for e in merge_chains(chains)]


class GatewayProcess:
    """`gateway serve` on a ``Workdir``, in its own process, logging JSON lines to ``log``."""

    def __init__(
        self, workdir: Workdir, *, args: tuple[str, ...] = (), env: Mapping[str, str] | None = None, name: str = "gateway", port: int | None = None
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()  # a port of its own, or one given (peers that must know it before it starts)
        self.log = workdir.root / f"{name}-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(workdir.config),
            "--data-dir",
            str(workdir.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-format",
            "json",
            *args,
        ]
        environment = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        for name_ in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            environment.pop(name_, None)
        environment.update(env or {})
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=environment)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> GatewayProcess:
        """Wait until ``/healthz`` answers (the runtime is open and the port bound)."""
        wait_until_answering(f"{self.url}/healthz", self.process, timeout=timeout, what=f"gateway (log: {self.log})")
        return self

    def signal(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL to the process and to every process it started (the workers of `serve --workers`), and reap."""
        children = descendants(self.process.pid)
        self.signal(signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within a minute."""
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class MotoProcess:
    """One region's S3 endpoint: a `moto_server` process that can be frozen, thawed, killed and restarted empty on its port.

    ``serial``: moto answering one request at a time (``tests.faults.serial_moto``), so that conditional writes are atomic as in S3.
    """

    def __init__(self, port: int | None = None, *, serial: bool = False) -> None:
        self.port = port or free_port()
        self.serial = serial
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        """Start (or start again, empty) on the same port, and wait until it answers."""
        if self.serial:
            command = [sys.executable, "-m", "tests.faults.serial_moto", "127.0.0.1", str(self.port)]
        elif MOTO_SERVER.exists():
            command = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            raise RuntimeError(f"no moto_server next to {sys.executable}")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_answering(self.url, self.process, what="moto_server")
        return self

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel's backlog) but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process takes SIGKILL anyway; this keeps wait() simple
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def moto_servers(regions: tuple[str, ...]) -> Iterator[dict[str, MotoProcess]]:
    """One `moto_server` per region, all killed at the end."""
    servers: dict[str, MotoProcess] = {}
    try:
        for region in regions:
            servers[region] = MotoProcess()
        yield servers
    finally:
        for server in servers.values():
            server.kill()


@contextlib.contextmanager
def running(process: GatewayProcess) -> Iterator[GatewayProcess]:
    """A gateway that is killed at the end whatever happened (its log is kept in the workdir)."""
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.kill()
