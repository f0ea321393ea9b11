"""Two gateway replicas sharing one S3 endpoint race every shared update of legal review: nothing is lost, each effect happens once.

One S3 endpoint (moto, answering one request at a time so that its conditional
writes are atomic as S3's are: see ``serial_moto``) holds every region's bucket
and the control store. Two real `gateway serve` processes use it, each with its
own data folder and ledger and the same keys. Orders open legal-review cases
and EU notification holds; then two lawyers act on each case at the same
moment, one on each replica. Effects are counted in both replicas' ledgers
together.

Holds due for release are made by the project's own runtime with a clock 11
days behind (a notification hold lasts 10 days); then two replicas start at
once on them, both sweeping every 0.2 s.

``FAULT_SCALE=N`` races N times as many cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.legal.verify import sign_order
from gateway.model import Caller, Subject
from gateway.runtime import Runtime, Settings, init_keys
from tests.console.support import HOLD, JUSTIFICATION, REVIEW
from tests.faults.conftest import scale
from tests.faults.harness import GatewayProcess, MotoProcess, Workdir, config_text, running, s3_store
from tests.orders_support import case_named, claims_of
from tests.support import FrozenClock

pytestmark = pytest.mark.s3

CASES = 12  # cases raced per kind in CI; FAULT_SCALE multiplies it
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-southeast-2")
S3_OPTIONS = "connect_timeout = 5, read_timeout = 20, max_attempts = 1, deadline = 30"
SWEEP = "0.2"  # seconds between sweeps of the replicas that release holds
WRITER = ("crm", "eu-west-1", "crm")  # the subjects of both scenarios live in Dublin
OBJECTION = {"ground": "the conduct is not an offence in Ireland", "authority": "ie-central-authority", "date": "2026-10-03"}
WAIT = 60.0  # seconds the sweepers may take to release what is due


def signed(work: Workdir, name: str, jti: str, subject: str, *, at: datetime) -> str:
    """The order of the decision case ``name``, as ``jti`` about ``subject``, issued at ``at``, signed with its authority's demo key."""
    case = case_named(name)
    claims = claims_of(case) | {"jti": jti, "subjects": [subject], "iat": int(at.timestamp()), "exp": int((at + timedelta(days=30)).timestamp())}
    public = resolve(work.data_dir, load_config(work.config).legal.authorities[case.order.served_by].public_key)
    return sign_order(claims, key=load_private_key(public.with_suffix(".key")), kid=case.order.served_by)


@dataclass
class Replicas:
    """Two gateway processes over one S3 endpoint, and how to drive them."""

    left: GatewayProcess
    right: GatewayProcess

    @property
    def both(self) -> tuple[GatewayProcess, GatewayProcess]:
        return self.left, self.right

    @property
    def work(self) -> Workdir:
        """The left replica's folder: its keys (both replicas' keys) sign orders and tokens."""
        return self.left.workdir

    def call(self, replica: GatewayProcess, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(f"{replica.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def lawyer(self, name: str) -> dict[str, str]:
        return {**self.work.person("legal", name), "Content-Type": "application/json"}

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """The data of every ``kind`` entry in both replicas' ledgers."""
        return [e["data"] for replica in self.both for e in replica.workdir.entries() if e["kind"] == kind]

    def case(self, case_id: str) -> dict[str, Any]:
        status, case = self.call(self.right, "GET", f"/v1/cases/{case_id}", self.lawyer("reader"))
        assert status == 200, case
        return case

    def sweeps(self, replica: GatewayProcess) -> float:
        """How many hold sweeps the replica has completed (its `gateway_hold_sweeps_total`)."""
        with urllib.request.urlopen(f"{replica.url}/metrics", timeout=30) as answer:
            lines = answer.read().decode().splitlines()
        return float(next(line.split()[1] for line in lines if line.startswith("gateway_hold_sweeps_total ")))

    def open_cases(self, name: str, prefix: str) -> list[str]:
        """A subject, a record and an order of the decision case ``name`` per case raced, half through each replica: the cases' ids."""
        case = case_named(name)
        writer = {**self.work.service(*WRITER), "Content-Type": "application/json"}
        intake = {**self.work.person("intake", "portal"), "Content-Type": "application/jose"}
        ids = []
        for n in range(CASES * scale()):
            replica, subject = self.both[n % 2], f"{prefix}-{n}"
            facts = {"home_region": case.stored, "residence": case.subject.residence, "nationality": case.subject.nationality}
            assert self.call(replica, "PUT", f"/v1/subjects/{subject}", writer, facts)[0] == 201
            path = f"/v1/subjects/{subject}/records/rec-{case.category}?category={case.category}"
            assert self.call(replica, "PUT", path, writer, f"{case.category} of {subject}".encode())[0] == 201
            order = signed(self.work, name, f"{prefix}-order-{n}", subject, at=datetime.now(UTC))
            status, document = self.call(replica, "POST", "/v1/orders", intake, order.encode())
            assert status == 201, document
            [item] = [i for i in document["items"] if i["category"] == case.category]
            ids.append(item["case"])
        return ids

    def race(self, requests: list[tuple[GatewayProcess, str, str, dict[str, str], Any]]) -> list[tuple[int, Any]]:
        """Send every request at once; the answers in the same order."""
        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(lambda r: self.call(*r), requests))


@contextlib.contextmanager
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server answering one request at a time (see ``serial_moto``): its URL."""
    s3 = MotoProcess(serial=True)
    try:
        yield s3.url
    finally:
        s3.kill()


def workdirs(tmp: Path, url: str) -> tuple[Workdir, Workdir]:
    """Two replicas' folders: every region and the control store on ``url``, each its own data folder, the same keys."""
    stores = {r: s3_store(r, url, options=f"object_lock = true, {S3_OPTIONS}") for r in REGIONS}
    text = config_text(stores, control=s3_store("us-east-1", url, bucket="gateway-control", options=S3_OPTIONS))
    left, right = Workdir.make(tmp / "left", text), Workdir.make(tmp / "right", text)
    init_keys(load_config(left.config), left.data_dir, demo_authorities=True)
    shutil.copytree(left.data_dir / "keys", right.data_dir / "keys")
    return left, right


@contextlib.contextmanager
def started(left: Workdir, right: Workdir, *, sweep_seconds: str) -> Iterator[Replicas]:
    """Both replicas, started at the same time."""
    args = ("--sweep-seconds", sweep_seconds)
    a, b = GatewayProcess(left, args=args, name="left"), GatewayProcess(right, args=args, name="right")
    with running(a), running(b):
        a.wait_ready()
        b.wait_ready()
        yield Replicas(a, b)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Two replicas that race people's actions (their sweepers off: nothing here is due)."""
    with s3_endpoint() as url, started(*workdirs(tmp_path_factory.mktemp("replicas"), url), sweep_seconds="0") as both:
        yield both


@pytest.fixture(scope="module")
def review_cases(replicas: Replicas) -> list[str]:
    """Legal-review cases (a US warrant for an Irish national's content in Dublin), one order each."""
    return replicas.open_cases(REVIEW, "review")


def test_two_lawyers_approving_each_case_at_once_on_two_replicas_both_count_and_each_case_is_approved_once(replicas: Replicas, review_cases: list[str]) -> None:
    body = {"decision": "approve", "justification": JUSTIFICATION}
    pairs = [(c, r, who) for c in review_cases for r, who in zip(replicas.both, ("alice", "bob"), strict=True)]
    answers = replicas.race([(r, "POST", f"/v1/cases/{c}/approvals", replicas.lawyer(who), body) for c, r, who in pairs])
    assert [status for status, _ in answers] == [201] * len(answers), answers
    for case_id in review_cases:
        case = replicas.case(case_id)
        assert (case["state"], sorted(a["by"] for a in case["approvals"])) == ("approved", ["alice", "bob"])
    assert Counter(e["case"] for e in replicas.entries("case.approval")) == {c: 2 for c in review_cases}
    assert Counter(e["case"] for e in replicas.entries("case.approved")) == {c: 1 for c in review_cases}


def test_two_lawyers_assigning_each_case_at_once_on_two_replicas_both_assignments_are_kept(replicas: Replicas, review_cases: list[str]) -> None:
    pairs = [(c, r, who) for c in review_cases for r, who in zip(replicas.both, ("lee", "kim"), strict=True)]
    answers = replicas.race([(r, "POST", f"/v1/cases/{c}/assignee", replicas.lawyer(who), {"assignee": who}) for c, r, who in pairs])
    assert [status for status, _ in answers] == [200] * len(answers), answers
    for case_id in review_cases:
        case = replicas.case(case_id)
        assigned = [h["note"] for h in case["history"] if h["action"] == "assigned"]
        assert sorted(assigned) == ["kim", "lee"] and case["assignee"] == assigned[-1]
    assert Counter(e["case"] for e in replicas.entries("case.assigned")) == {c: 2 for c in review_cases}


def test_two_objections_to_each_hold_at_once_on_two_replicas_record_one_and_refuse_the_other(replicas: Replicas) -> None:
    cases = replicas.open_cases(HOLD, "object")
    pairs = [(c, r, who) for c in cases for r, who in zip(replicas.both, ("alice", "bob"), strict=True)]
    answers = replicas.race([(r, "POST", f"/v1/cases/{c}/objections", replicas.lawyer(who), OBJECTION) for c, r, who in pairs])
    for pair in zip(answers[::2], answers[1::2], strict=True):
        assert sorted((status, body["code"] if status == 409 else "") for status, body in pair) == [(201, ""), (409, "case-closed")], pair
    for case_id in cases:
        case = replicas.case(case_id)
        assert (case["state"], len(case["objections"])) == ("objected", 1)
    assert Counter(e["case"] for e in replicas.entries("case.objection")) == {c: 1 for c in cases}


def test_holds_due_when_two_replicas_start_sweeping_are_released_once_each(tmp_path: Path, aws_credentials: None) -> None:
    with s3_endpoint() as url:
        left, right = workdirs(tmp_path, url)
        cases, subjects = asyncio.run(_held_in_the_past(left, tmp_path / "past", datetime.now(UTC) - timedelta(days=11)))
        with started(left, right, sweep_seconds=SWEEP) as replicas:
            deadline = time.monotonic() + WAIT
            while any(replicas.case(c)["state"] != "released" for c in cases):
                assert time.monotonic() < deadline, "the sweepers did not release every due hold"
                time.sleep(0.2)
            # each replica sweeps twice more: a second release of anything would be in the ledgers by then
            swept = {r.port: replicas.sweeps(r) for r in replicas.both}
            while any(replicas.sweeps(r) < swept[r.port] + 2 for r in replicas.both):
                assert time.monotonic() < deadline + WAIT, "the sweepers stopped"
                time.sleep(0.2)
            released, unheld = replicas.entries("case.released"), replicas.entries("hold.released")
            reader = replicas.work.service(*WRITER)
            holds = [replicas.call(replicas.both[n % 2], "GET", f"/v1/subjects/{s}/records", reader)[1] for n, s in enumerate(subjects)]
    assert Counter(e["case"] for e in released) == {c: 1 for c in cases}
    assert Counter(e["subject"] for e in unheld) == {s: 1 for s in subjects}
    assert [[r["legal_hold"] for r in listed["records"]] for listed in holds] == [[False]] * len(subjects)


async def _held_in_the_past(work: Workdir, data: Path, past: datetime) -> tuple[list[str], list[str]]:
    """Notification holds decided at ``past`` by the project's runtime with its clock there, on ``work``'s stores: (case ids, subjects)."""
    shutil.copytree(work.data_dir / "keys", data / "keys")
    case = case_named(HOLD)
    runtime = await Runtime.open(Settings(config_path=work.config, data_dir=data, clock=FrozenClock(past), init_keys=False, health_monitor_seconds=0))
    writer = Caller(WRITER[0], "service", service=WRITER[0], region=WRITER[1], purpose=WRITER[2])

    async def held(n: int) -> tuple[str, str]:
        subject, facts = f"release-{n}", case.subject
        await runtime.records.register_subject(writer, Subject(subject, case.stored, facts.residence, facts.nationality, facts.us_person, facts.location))
        await runtime.records.put_record(writer, subject, f"rec-{case.category}", case.category, f"{case.category} of {subject}".encode())
        view, _ = await runtime.orders.submit(signed(work, HOLD, f"release-order-{n}", subject, at=past), submitted_by="portal")
        [item] = [i for i in view.to_json()["items"] if i["category"] == case.category]
        assert item["outcome"] == "hold", item
        return item["case"], subject

    try:
        made = await asyncio.gather(*(held(n) for n in range(CASES * scale())))
    finally:
        await runtime.close()
    return [c for c, _ in made], [s for _, s in made]
