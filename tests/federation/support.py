"""Three gateways that own their regions and are each other's peers, as real processes (``tests.faults.harness``).

Americas owns us-east-1, Europe eu-west-1, eu-central-1 and eu-west-2, Asia-Pacific
ap-southeast-2. Each has its own data folder, stores, keys and token key; each
holds the others' federation public keys. The configuration is the shipped one
with every other gateway's regions given an ``owner`` instead of a store.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config import load_config
from gateway.runtime import init_keys
from tests.faults.harness import GatewayProcess, Workdir, free_port
from tests.support import SHIPPED_CONFIG, run_cli

OWNED = {
    "americas": ("us-east-1",),
    "europe": ("eu-west-1", "eu-central-1", "eu-west-2"),
    "apac": ("ap-southeast-2",),
}


def federated_config(own: str, ports: Mapping[str, int]) -> str:
    """The shipped regions.toml for gateway ``own``: its regions keep their stores, the others name their owner."""
    text = SHIPPED_CONFIG.read_text()
    for gateway, regions in OWNED.items():
        if gateway == own:
            continue
        for region in regions:
            local = f'store = {{ kind = "file", path = "stores/{region}" }}\ntag_key = "keys/tags/{region}.key"'
            assert local in text, region
            text = text.replace(local, f'owner = "{gateway}"')
    text += f'\n[federation]\nid = "{own}"\nkey = "keys/federation.key"\n'
    for peer in OWNED:
        if peer != own:
            # short waits, so a test of a dead peer does not wait long
            text += (
                f'\n[peers.{peer}]\nurl = "http://127.0.0.1:{ports[peer]}"\nkey = "keys/peers/{peer}.pub"\n'
                "connect_timeout = 0.5\nread_timeout = 5\n"
            )
    return text


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def call(url: str, method: str = "GET", *, headers: Mapping[str, str] | None = None, body: bytes | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


@dataclass
class Federation:
    """The three gateways: their work folders, ports and running processes."""

    workdirs: dict[str, Workdir]
    ports: dict[str, int]
    processes: dict[str, GatewayProcess]

    def url(self, gateway: str) -> str:
        return f"http://127.0.0.1:{self.ports[gateway]}"

    def start(self, gateway: str) -> GatewayProcess:
        """Start ``gateway`` on its folder and port; its sweeper (which asks peers again for pending order items) runs every second."""
        process = GatewayProcess(self.workdirs[gateway], port=self.ports[gateway], name=gateway, args=("--sweep-seconds", "1"))
        self.processes[gateway] = process.wait_ready()
        return process

    def running(self, gateway: str) -> bool:
        return gateway in self.processes and self.processes[gateway].process.poll() is None

    def kill(self, gateway: str) -> None:
        """SIGKILL."""
        self.processes[gateway].kill()

    def service(self, gateway: str, service: str, region: str, purpose: str | None = None) -> dict[str, str]:
        """A service token that ``gateway`` accepts (each gateway has its own token key)."""
        return self.workdirs[gateway].service(service, region, purpose)

    def person(self, gateway: str, role: str, name: str) -> dict[str, str]:
        return self.workdirs[gateway].person(role, name)

    def entries(self, gateway: str, kind: str | None = None) -> list[dict]:
        return [e for e in self.workdirs[gateway].entries() if kind is None or e["kind"] == kind]


def make_workdirs(root: Path) -> tuple[dict[str, Workdir], dict[str, int]]:
    """A work folder per gateway, with its keys made and the others' federation public keys copied in, and every
    registered authority's public key (a key pair per authority is made in the first folder, to sign orders with)."""
    ports = {gateway: free_port() for gateway in OWNED}
    workdirs = {gateway: Workdir.make(root / gateway, federated_config(gateway, ports)) for gateway in OWNED}
    for workdir in workdirs.values():
        assert run_cli(workdir.root, "keys", "init") == 0
    for gateway, workdir in workdirs.items():
        for peer, other in workdirs.items():
            if peer != gateway:
                target = workdir.data_dir / "keys" / "peers" / f"{peer}.pub"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(other.data_dir / "keys" / "federation.pub", target)
    first = workdirs[next(iter(OWNED))]
    init_keys(load_config(first.config), first.data_dir, demo_authorities=True)
    for workdir in workdirs.values():
        if workdir is not first:
            shutil.copytree(first.data_dir / "keys" / "authorities", workdir.data_dir / "keys" / "authorities", ignore=shutil.ignore_patterns("*.key"))
    return workdirs, ports


def authority_key(federation: Federation, authority: str) -> Path:
    """The private key of a registered authority (the test signs orders as it)."""
    first = federation.workdirs[next(iter(OWNED))]
    public = first.data_dir / load_config(first.config).legal.authorities[authority].public_key
    return public.with_suffix(".key")


@contextlib.contextmanager
def three_gateways(root: Path) -> Iterator[Federation]:
    workdirs, ports = make_workdirs(root)
    federation = Federation(workdirs, ports, {})
    try:
        for gateway in OWNED:
            federation.start(gateway)
        yield federation
    finally:
        for process in federation.processes.values():
            if process.process.poll() is None:
                process.kill()
