"""The transparency report over generated ledgers: every kind of entry the gateway writes, as written and damaged.

The entries are real: a gateway is driven through its HTTP API (orders of every
outcome, legal reviews approved, a notification hold objected to, support
access approved, denied and expired, reads, lists, deletes, a package), and
what it wrote to its ledger is the material the ledgers are drawn from. Kinds
that scenario cannot reach without breaking the store or the file are added
in the shapes the services write them.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import date
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gateway.reports.render import FORMATS, render
from gateway.reports.transparency import COUNTS, OUTCOMES, READ, Row, TransparencyReport, build_report
from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.orders_support import download_package, prepare_authorities
from tests.reports.test_report_api import decide_known_orders
from tests.support import Env, make_env

START, END = date(2026, 7, 1), date(2026, 12, 31)
# every kind the gateway's services, runtime and ledger write (grep `_record(`, `record(`, `append(` in gateway/)
KINDS_WRITTEN = frozenset(
    {
        "config.loaded",
        "ledger.checkpoint",
        "ledger.recovered",
        "subject.registered",
        "subject.changed",  # an existing subject's facts changed (or a change refused)
        "subject.resigned",  # an operator signed a stored profile that failed verification
        "record.written",
        "record.write-intent",  # a write's intent, ledgered before the store is touched
        "record.delete-intent",
        "subject.write-intent",
        "record.write-failed",  # an intent that did not take effect
        "record.precondition-failed",  # a conditional write whose If-Match / If-None-Match did not hold
        "record.write",  # a write refused by the residency decision
        "record.deleted",
        "record.delete",  # a delete refused by the residency decision
        "service.read",
        "service.list",
        "support.read",
        "residency.violation",
        "order.received",
        "order.decided",
        "order.rejected",
        "package.produced",
        "package.withheld",  # a record changed or damaged since the decision, left out of a package
        "hold.placed",
        "hold.released",
        "case.opened",
        "case.customer",
        "case.approval",
        "case.approved",
        "case.denied",
        "case.withdrawn",
        "case.objection",
        "case.assigned",
        "case.expired",
        "case.released",
        "notice.scheduled",
        "notice.queued",
    }
)
# kinds the driven scenario does not reach, in the shapes the code writes them
WRITTEN_BY_HAND = [
    {"kind": "ledger.recovered", "data": {"torn_bytes": 17, "torn_sha256": "ab" * 32, "moved_to": "ledger.jsonl.torn-1"}},
    {"kind": "ledger.checkpoint", "data": {"covers": 41, "head": "cd" * 32, "signature": "ef" * 32}},
    {"kind": "residency.violation", "data": {"subject": "alice", "key": "mail-1", "region": "us-east-1", "reason": "tag-missing", "by": "crm"}},
    {"kind": "record.delete", "data": {"by": "analytics", "subject": "aoife", "region": "eu-west-1", "outcome": "refuse", "reasons": [], "key": "k"}},
    {
        "kind": "record.delete-intent",
        "data": {"by": "crm", "subject": "aoife", "region": "eu-west-1", "outcome": "allow", "reasons": [], "key": "k", "replaces": "ab" * 32},
    },
    {"kind": "record.write-failed", "data": {"intent": 12, "code": "write-conflict"}},
    {
        "kind": "record.precondition-failed",
        "data": {"by": "crm", "subject": "aoife", "region": "eu-west-1", "outcome": "allow", "reasons": [], "key": "k", "current": None},
    },
    {"kind": "hold.released", "data": {"region": "ap-southeast-2", "subject": "subject-3", "key": "mail-1"}},
    {
        "kind": "package.withheld",
        "data": {"order": "o", "authority": "us-fbi", "subject": "alice", "region": "us-east-1", "key": "mail-1", "reason": "record-integrity",
                 "detail": "changed"},
    },
    {"kind": "record.write", "data": {"by": "analytics", "subject": "aoife", "region": "eu-west-1", "outcome": "refuse", "reasons": [], "key": "k"}},
    {
        "kind": "subject.changed",
        "data": {"by": "crm", "subject": "aoife", "region": "eu-west-1", "outcome": "allow", "reasons": [], "old_profile_sha256": "ab" * 32,
                 "old_verified": True, "new_profile_sha256": "cd" * 32, "changed": True},
    },
    {
        "kind": "subject.resigned",
        "data": {"subject": "alice", "region": "us-east-1", "by": {"principal": "ops", "role": "operator"}, "reason": "tag-missing",
                 "old_profile_sha256": "ab" * 32, "new_profile_sha256": "cd" * 32},
    },
    {"kind": "case.withdrawn", "data": {"case": "case-0000000000000000", "order": "o", "by": "lena", "categories": ["content"], "state": "withdrawn"}},
    {"kind": "case.released", "data": {"case": "case-0000000000000001", "order": "o"}},
    {"kind": "notice.queued", "data": {"notice": "n-1", "order": "o", "subject": "alice"}},
    {"kind": "notice.scheduled", "data": {"notice": "n-1", "order": "o", "subject": "alice", "not_before": "2026-10-02T00:00:00Z"}},
]
ALICE = {"home_region": "us-east-1", "residence": "US", "us_person": True}
WRITER = ("crm", "us-east-1", "crm")
WHY = "ticket 4411: the customer's mail is stuck in the outbox"


async def _cases(client: TestClient, env: Env) -> list[dict[str, Any]]:
    response = await client.get("/v1/cases", headers=env.person("legal", "lena"))
    assert response.status == 200
    body = await response.json()
    return list(body["cases"] if isinstance(body, Mapping) else body)


async def _support_request(client: TestClient, env: Env) -> str:
    body = {"subject": "alice", "keys": ["mail-1"], "justification": WHY}
    response = await client.post("/v1/support-access", json=body, headers=env.person("support", "sam"))
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def _drive(env: Env) -> list[dict[str, Any]]:
    """Use a gateway as its users would, then return what its ledger holds."""
    prepare_authorities(env)
    app = create_app(env.settings, registry=CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        await decide_known_orders(client, env)
        lawyer = {"decision": "approve", "justification": "the order is lawful and narrow"}
        for case in await _cases(client, env):
            if case["kind"] == "legal-review":
                await client.post(f"/v1/cases/{case['id']}/assignee", json={"assignee": "lena"}, headers=env.person("legal", "lena"))
                for who in ("lena", "marc"):
                    await client.post(f"/v1/cases/{case['id']}/approvals", json=lawyer, headers=env.person("legal", who))
            elif case["kind"] == "hold":
                objection = {"ground": "fundamental rights", "authority": "IE DPC", "date": "2026-10-02"}
                await client.post(f"/v1/cases/{case['id']}/objections", json=objection, headers=env.person("legal", "lena"))
        await download_package(client, env, "report-order-0")
        # support access: approved and used, denied by a lawyer, left to expire
        assert (await client.put("/v1/subjects/alice", json=ALICE, headers=env.service(*WRITER))).status == 201
        await client.put("/v1/subjects/alice/records/mail-1", params={"category": "content"}, data=b"mail", headers=env.service(*WRITER))
        used = await _support_request(client, env)
        await client.post(f"/v1/cases/{used}/customer-approval", json={"decision": "approve"}, headers=env.service("customer-portal", "us-east-1"))
        await client.post(f"/v1/cases/{used}/approvals", json={"decision": "approve", "justification": WHY}, headers=env.person("legal", "lena"))
        await client.get(f"/v1/support-access/{used}/records/mail-1", headers=env.person("support", "sam"))
        env.clock.advance(minutes=1)
        denied = await _support_request(client, env)
        await client.post(f"/v1/cases/{denied}/approvals", json={"decision": "deny", "justification": WHY}, headers=env.person("legal", "lena"))
        env.clock.advance(minutes=1)
        await _support_request(client, env)
        # the data plane: a read allowed and one refused, a list, a delete
        await client.get("/v1/subjects/alice/records/mail-1", headers=env.service(*WRITER))
        await client.get("/v1/subjects/alice/records/mail-1", headers=env.service("analytics", "eu-west-1"))
        await client.get("/v1/subjects/alice/records", headers=env.service(*WRITER))
        await client.delete("/v1/subjects/alice/records/mail-1", headers=env.service(*WRITER))
        # time closes what is due: the support request left open expires, holds and notices move on
        env.clock.advance(days=120)
        rt = client.app[STATE_KEY].rt
        await rt.cases.sweep()
        await rt.orders.sweep()
        await rt.notices.sweep()
        return await rt.ledger.entries()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The entries a driven gateway wrote, then the hand-written ones, each with a time."""
    entries = asyncio.run(_drive(make_env(tmp_path_factory.mktemp("driven"))))
    # in one order from run to run (concurrent appends land in any order), without the chain's fields
    entries = sorted(({k: v for k, v in e.items() if k not in ("prev", "hash", "seq")} for e in entries), key=lambda e: json.dumps(e, sort_keys=True))
    times = [e["time"] for e in entries]
    return entries + [{"time": times[n % len(times)], **e} for n, e in enumerate(WRITTEN_BY_HAND)]


# --- damage ----------------------------------------------------------------------------

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.text(max_size=12),
    st.sampled_from(["", "US", "lockbox", "legal-review", "disclose", "content", "2026-13-45", "9999-12-31T23:59:59-23:59"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
TIMES = st.one_of(
    st.sampled_from(["2026-06-30T23:59:59Z", "2026-07-01T00:00:00Z", "2026-10-01T09:00:00Z", "2026-12-31T23:59:59+00:00", "2027-01-01T00:00:00Z"]),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)).map(lambda d: f"{d.isoformat()}T12:00:00Z"),
)


def _paths(entry: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Every place in an entry a value can be changed or removed: top-level keys, data keys, item keys."""
    paths: list[tuple[Any, ...]] = [(k,) for k in entry]
    data = entry.get("data")
    if isinstance(data, Mapping):
        paths += [("data", k) for k in data]
        items = data.get("items")
        if isinstance(items, list):
            paths += [("data", "items", n) for n in range(len(items))]
            paths += [("data", "items", n, k) for n, i in enumerate(items) if isinstance(i, Mapping) for k in i]
    return paths


@st.composite
def damaged(draw: st.DrawFn, entry: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` with one to three of its values removed or replaced by odd ones."""
    out = copy.deepcopy(dict(entry))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(out)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = out
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD)
    return out


@st.composite
def ledgers(draw: st.DrawFn, written: list[dict[str, Any]], *, damage: bool) -> list[Any]:
    """A ledger of entries drawn from ``written``, retimed across the report's edges, some damaged when ``damage``."""
    out: list[Any] = []
    for seq, entry in enumerate(draw(st.lists(st.sampled_from(written), max_size=40)), start=1):
        entry = {**copy.deepcopy(entry), "seq": seq}
        if draw(st.booleans()):
            entry["time"] = draw(TIMES)
        if damage and draw(st.integers(0, 3)) == 0:
            entry = draw(damaged(entry))
        out.append(entry)
    if damage:
        junk = st.one_of(ODD, st.fixed_dictionaries({"kind": st.text(max_size=10), "time": TIMES, "data": ODD}))
        for _ in range(draw(st.integers(0, 2))):
            out.insert(draw(st.integers(0, len(out))), draw(junk))
    return out


# --- what must hold of every report ------------------------------------------------------


def _rows(report: TransparencyReport) -> list[Row]:
    return [*report.rows, *report.totals, report.total]


def _assert_consistent(report: TransparencyReport) -> None:
    for row in _rows(report):
        assert all(getattr(row, name) >= 0 for name in COUNTS), row
        assert sum(getattr(row, o) for o in OUTCOMES) == row.requests, row
        assert row.legal_review == row.review_open + row.review_approved + row.review_denied, row
        assert max(row.mlat, row.legal_review, row.emergency, row.extraterritorial) <= row.requests, row
        assert all(0 <= row.share(o) <= 100 for o in OUTCOMES) if row.requests else all(row.share(o) is None for o in OUTCOMES)
        assert row.accounts is not None or row.country is None, row
    for period in report.periods():
        total = next(t for t in report.totals if t.period == period)
        assert all(sum(getattr(r, n) for r in report.rows_of(period)) == getattr(total, n) for n in COUNTS)
    assert all(sum(getattr(t, n) for t in report.totals) == getattr(report.total, n) for n in COUNTS)
    for fmt in FORMATS:
        assert render(report, fmt)


def _without_counts_of(row: Row, *names: str) -> Row:
    return replace(row, **{n: 0 for n in names})


# no example database: the material comes from a driven gateway, and a stored example would replay against other material
PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(data=st.data())
def test_a_report_over_any_ledger_the_gateway_could_write_counts_consistently(written: list[dict[str, Any]], data: st.DataObject) -> None:
    _assert_consistent(build_report(data.draw(ledgers(written, damage=True)), START, END))


@PROPERTY
@given(data=st.data())
def test_a_report_over_undamaged_entries_counts_every_order_in_the_period_and_skips_none(
    written: list[dict[str, Any]], data: st.DataObject
) -> None:
    ledger = data.draw(ledgers(written, damage=False))
    report = build_report(ledger, START, END)
    in_period = [e for e in ledger if e["kind"] in ("order.decided", "order.rejected") and START.isoformat() <= e["time"][:10] <= END.isoformat()]
    assert report.skipped == ()
    assert report.total.requests + report.total.preservation == len(in_period)
    _assert_consistent(report)


@PROPERTY
@given(data=st.data())
def test_entries_the_report_does_not_read_change_nothing_in_it(written: list[dict[str, Any]], data: st.DataObject) -> None:
    ledger = data.draw(ledgers(written, damage=True))
    read = [e for e in ledger if not (isinstance(e, Mapping) and isinstance(e.get("kind"), str) and e["kind"] not in READ)]
    assert build_report(read, START, END) == build_report(ledger, START, END)


@PROPERTY
@given(data=st.data())
def test_support_access_cases_change_nothing_in_the_report(written: list[dict[str, Any]], data: st.DataObject) -> None:
    ledger = data.draw(ledgers(written, damage=False))
    lockbox = {e["data"]["case"] for e in written if e["kind"] == "case.opened" and e["data"].get("kind") == "lockbox"}
    legal = [e for e in ledger if e["data"].get("case") not in lockbox]
    assert build_report(legal, START, END) == build_report(ledger, START, END)


@PROPERTY
@given(data=st.data())
def test_preservation_orders_add_to_preservation_and_to_nothing_else(written: list[dict[str, Any]], data: st.DataObject) -> None:
    ledger = data.draw(ledgers(written, damage=True))
    others = [e for e in ledger if not (isinstance(e, Mapping) and isinstance(e.get("data"), Mapping) and e["data"].get("preservation") is True)]
    with_them, without = build_report(ledger, START, END), build_report(others, START, END)
    assert _without_counts_of(with_them.total, "preservation") == without.total


def test_the_generated_ledgers_hold_every_kind_of_entry_the_gateway_writes(written: list[dict[str, Any]]) -> None:
    assert {e["kind"] for e in written} >= KINDS_WRITTEN
    assert {f.name for f in fields(Row)} >= set(COUNTS)


def test_the_driven_gateway_wrote_support_access_cases_without_an_authority_or_an_order(written: list[dict[str, Any]]) -> None:
    lockbox = [e["data"] for e in written if e["kind"] == "case.opened" and e["data"].get("kind") == "lockbox"]
    assert len(lockbox) == 3 and all("authority" not in d and "order" not in d for d in lockbox)


def test_the_report_of_the_driven_gateway_skips_nothing(written: list[dict[str, Any]]) -> None:
    report = build_report(written, START, END)
    assert report.skipped == () and report.total.requests == 7 and report.total.review_approved == 1

