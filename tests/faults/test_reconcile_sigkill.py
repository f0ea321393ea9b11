"""SIGKILL under concurrent writes: every acknowledged write survives, and after reconciliation nothing stored is unaudited.

Each round, writer threads PUT and DELETE records of a few subjects on a real
`gateway serve` (file stores); the gateway is SIGKILLed at a random moment
while writes are in flight and started again on the same folder with
`reconcile_after_seconds = 0`, so its start-up pass settles every intent the
dead process left open. Then, for every key:
(a) what it holds now is an effect the client may see: the last acknowledged
    write or delete, or one that ended (or was cut off) after that began;
(b) every acknowledged write and delete has its outcome entry, or a
    `record.reconciled` that says it took effect;
(c) every stored record's SHA-256 is in a `record.written`, or a
    `record.reconciled` `written`, for its object: nothing stored unaudited;
(d) no intent stays open;
(e) `gateway audit verify` passes (checked once, after the last round).
CI runs 3 rounds; ``FAULT_SCALE=10`` runs 30. The figures are printed (`-s`).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.conftest import scale
from tests.faults.harness import GatewayProcess, Workdir, config_text
from tests.support import ROOT

SUBJECTS = ("aoife", "brian", "ciara")
KEYS = ("k1", "k2", "k3")
WRITERS = 8
REGION = "eu-west-1"
WRITE_INTENT = "record.write-intent"
DELETE_INTENT = "record.delete-intent"
INTENT_KINDS = {WRITE_INTENT, DELETE_INTENT, "subject.write-intent"}


@dataclass
class Op:
    round: int
    kind: str  # "put" or "delete"
    subject: str
    key: str
    body: bytes | None
    sent: float
    ended: float | None = None  # when its answer came (None: cut off by the kill)
    status: int | None = None  # None: no answer

    @property
    def acknowledged(self) -> bool:
        return self.status in ((200, 201) if self.kind == "put" else (204,))

    @property
    def may_have_effect(self) -> bool:
        """Acknowledged, or cut off without an answer (a refusal or an error answer left nothing stored)."""
        return self.acknowledged or self.status is None

    @property
    def sha256(self) -> str | None:
        return None if self.body is None else hashlib.sha256(self.body).hexdigest()


def _request(url: str, headers: dict[str, str], *, method: str = "GET", data: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _writer(url: str, headers: dict[str, str], round_: int, number: int, stop: threading.Event, ops: list[Op], lock: threading.Lock) -> None:
    rng = random.Random(f"{round_}-{number}")
    i = 0
    while not stop.is_set():
        subject, key = rng.choice(SUBJECTS), rng.choice(KEYS)
        i += 1
        if rng.random() < 0.2:
            op = Op(round_, "delete", subject, key, None, time.monotonic())
        else:
            op = Op(round_, "put", subject, key, f"r{round_}-w{number}-{i}-{rng.random()}".encode(), time.monotonic())
        with lock:
            ops.append(op)
        target = f"{url}/v1/subjects/{subject}/records/{key}"
        try:
            if op.kind == "put":
                status, _ = _request(f"{target}?category=content", headers, method="PUT", data=op.body)
            else:
                status, _ = _request(target, headers, method="DELETE")
        except OSError:
            return  # the gateway is gone: this op has no answer
        op.status, op.ended = status, time.monotonic()


def _wait_for_reconcile(gw: GatewayProcess, timeout: float = 30) -> None:
    """Until the new process has logged its start-up reconcile pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in gw.log_text().splitlines():
            if '"reconcile-pass"' in line and json.loads(line).get("event") == "reconcile-pass":
                return
        time.sleep(0.05)
    raise AssertionError(f"no reconcile pass logged within {timeout}s (log: {gw.log})")


def _possible_states(history: list[Op], kill_times: dict[int, float]) -> set[str | None]:
    """What a key may hold now (a body's SHA-256, or None for absent), from the client's view of its operations."""
    effective = [op for op in history if op.may_have_effect]

    def ended(op: Op) -> float:
        return op.ended if op.ended is not None else kill_times[op.round]

    acknowledged = [op for op in effective if op.acknowledged]
    if not acknowledged:
        return {None} | {op.sha256 for op in effective}
    last = max(acknowledged, key=ended)
    # the last acknowledged effect, or any effect still under way when it began
    return {op.sha256 for op in effective if op is last or ended(op) > last.sent}


def _outcome_index(entries: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], set[int]]:
    """(object, SHA-256) pairs the ledger says were written, and the intents without an outcome."""
    intents = {e["seq"]: e for e in entries if e["kind"] in INTENT_KINDS}
    written: set[tuple[str, str]] = set()
    closed: set[int] = set()
    for e in entries:
        data = e["data"]
        if isinstance(data.get("intent"), int):
            closed.add(data["intent"])
        if e["kind"] == "record.written":
            written.add((f"subjects/{data['subject']}/records/{data['key']}", data["sha256"]))
        if e["kind"] == "record.reconciled" and data.get("result") == "written" and data["intent"] in intents:
            intent = intents[data["intent"]]["data"]
            written.add((intent["object"], intent["sha256"]))
    return written, set(intents) - closed


def _deletes_audited(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Per object, how many deletes the ledger says took effect (record.deleted, or reconciled as deleted)."""
    intents = {e["seq"]: e["data"] for e in entries if e["kind"] == DELETE_INTENT}
    counts: dict[str, int] = {}
    for e in entries:
        data = e["data"]
        if e["kind"] == "record.deleted":
            obj = f"subjects/{data['subject']}/records/{data['key']}"
        elif e["kind"] == "record.reconciled" and data.get("result") == "deleted" and data.get("intent") in intents:
            obj = intents[data["intent"]]["object"]
        else:
            continue
        counts[obj] = counts.get(obj, 0) + 1
    return counts


def test_sigkill_under_concurrent_writes_loses_no_acknowledged_write_and_leaves_nothing_unaudited(tmp_path: Path) -> None:
    text = config_text().replace("reconcile_after_seconds = 30", "reconcile_after_seconds = 0")
    assert "reconcile_after_seconds = 0" in text
    work = Workdir.make(tmp_path / "w", text)
    rounds = 3 * scale()
    rng = random.Random(16)
    ops: list[Op] = []
    kill_times: dict[int, float] = {}
    checked = 0
    gw = GatewayProcess(work).wait_ready()
    try:
        headers = work.service("crm", REGION, "crm")
        for subject in SUBJECTS:
            body = json.dumps({"home_region": REGION, "residence": "IE"}).encode()
            status, _ = _request(f"{gw.url}/v1/subjects/{subject}", {**headers, "Content-Type": "application/json"}, method="PUT", data=body)
            assert status in (200, 201)
        for round_ in range(rounds):
            stop, lock = threading.Event(), threading.Lock()
            threads = [threading.Thread(target=_writer, args=(gw.url, headers, round_, n, stop, ops, lock)) for n in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.2, 0.6))
            gw.kill()
            kill_times[round_] = time.monotonic()
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            gw = GatewayProcess(work, name=f"gateway-{round_ + 1}").wait_ready()
            _wait_for_reconcile(gw)
            checked += _check(work, gw, headers, ops, kill_times)
    finally:
        if gw.process.poll() is None:
            gw.kill()
    _verify_ledger(work)
    acknowledged = sum(1 for op in ops if op.acknowledged)
    cut_off = sum(1 for op in ops if op.status is None)
    results: dict[str, int] = {}
    for entry in work.entries():
        if entry["kind"] == "record.reconciled":
            results[entry["data"]["result"]] = results.get(entry["data"]["result"], 0) + 1
    print(
        f"\nsigkill rounds: {rounds}; writes and deletes sent: {len(ops)}; acknowledged: {acknowledged}; "
        f"cut off by the kill: {cut_off}; key checks: {checked}; intents reconciled: {results}"
    )
    assert acknowledged > 0


def _check(work: Workdir, gw: GatewayProcess, headers: dict[str, str], ops: list[Op], kill_times: dict[int, float]) -> int:
    entries = work.entries()
    written, still_open = _outcome_index(entries)
    # (d) no intent stays open
    assert still_open == set(), f"intents left open after reconciliation: {sorted(still_open)}"
    checked = 0
    for subject in SUBJECTS:
        status, listing = _request(f"{gw.url}/v1/subjects/{subject}/records", headers)
        assert status == 200
        stored = {r["key"]: r["sha256"] for r in json.loads(listing)["records"]}
        # (c) nothing stored without its audited write
        for key, sha in stored.items():
            assert (f"subjects/{subject}/records/{key}", sha) in written, f"{subject}/{key} holds a write the ledger does not say took effect"
        for key in KEYS:
            history = [op for op in ops if op.subject == subject and op.key == key]
            status, body = _request(f"{gw.url}/v1/subjects/{subject}/records/{key}", headers)
            assert status in (200, 404), body
            now = hashlib.sha256(body).hexdigest() if status == 200 else None
            # (a) every acknowledged write is readable, or overtaken by a later effect
            assert now in _possible_states(history, kill_times), f"{subject}/{key} holds {now}, which no acknowledged write explains"
            # (b) every acknowledged write has its audit entry
            for op in history:
                if op.acknowledged and op.kind == "put":
                    assert (f"subjects/{subject}/records/{key}", op.sha256) in written, f"an acknowledged write to {subject}/{key} is not audited"
            checked += 1
    deletes = _deletes_audited(entries)
    for op in ops:
        if op.acknowledged and op.kind == "delete":
            assert deletes.get(f"subjects/{op.subject}/records/{op.key}", 0) > 0, "an acknowledged delete is not audited"
    return checked


def _verify_ledger(work: Workdir) -> None:
    """(e) `gateway audit verify` passes (the ledger only grows: once, after the last round, covers every round)."""
    verify = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--config", str(work.config), "--data-dir", str(work.data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_possible_states_of_a_key_are_its_last_acknowledged_effect_and_those_still_under_way() -> None:
    ops = [
        Op(0, "put", "s", "k", b"a", sent=1.0, ended=2.0, status=201),
        Op(0, "put", "s", "k", b"b", sent=3.0, ended=4.0, status=200),
        Op(0, "put", "s", "k", b"c", sent=3.5, ended=None, status=None),  # cut off while b was under way
        Op(0, "delete", "s", "k", None, sent=3.2, ended=3.4, status=503),  # refused: no effect
    ]
    assert _possible_states(ops, {0: 5.0}) == {hashlib.sha256(b"b").hexdigest(), hashlib.sha256(b"c").hexdigest()}
