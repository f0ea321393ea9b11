"""Two replicas acting on one case at the same moment: every action that succeeds is kept, each effect is ledgered once.

Each replica is a ``CaseService`` with its own ledger over one control store
(in memory, and on files as two processes would share it). Replica A's
writes go through ``Interleaved``, so replica B's whole action lands between
A's read of the case and A's write, as on two gateways behind one Service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from gateway.audit import MemoryLedger
from gateway.errors import Conflict
from gateway.model import Caller, isoformat
from gateway.services.audit_log import AuditLog
from gateway.services.cases import CaseClosed, CaseService
from gateway.services.documents import Document, Item
from gateway.stores import RecordStore
from tests.services.interleaved import Interleaved
from tests.support import FrozenClock

JUSTIFICATION = "Reviewed the conflict of laws; this is lawful."
OBJECTION = {"ground": "the conduct is not an offence here", "authority": "ie-central-authority", "date": "2026-10-03"}


def legal(name: str) -> Caller:
    return Caller(name, "legal")


@dataclass
class Replica:
    cases: CaseService
    ledger: MemoryLedger
    disclosed: list[str]

    async def kinds(self) -> list[str]:
        return [e["kind"] for e in await self.ledger.entries()]


def replica(control: RecordStore, clock: FrozenClock) -> Replica:
    ledger = MemoryLedger(clock)
    disclosed: list[str] = []

    async def on_disclosed(case: Any) -> None:
        disclosed.append(case["id"])

    return Replica(CaseService(control=control, audit=AuditLog(ledger), clock=clock, on_disclosed=on_disclosed), ledger, disclosed)




def document(clock: FrozenClock, outcome: str) -> Document:
    """An order whose one item needs people: legal review (a deadline in 10 days) or an EU hold (released in 10 days)."""
    due = isoformat(clock() + timedelta(days=10))
    item = Item(
        subject="aoife",
        region="eu-west-1",
        category="content",
        outcome=outcome,
        basis=None,
        reasons=[{"code": "third-country-conflict", "rule": "R7.conflict"}],
        obligations={"deadline": due} if outcome == "legal-review" else {"release_at": due},
        rule="R7.conflict",
        records=[],
        record_count=0,
    )
    return Document(
        id="w-1", authority="us-court-sdny", instrument="us.warrant", subjects=["aoife"], categories=["content"], received_at=isoformat(clock()), items=[item]
    )


async def opened(control: RecordStore, clock: FrozenClock, outcome: str = "legal-review") -> str:
    [case_id] = await replica(control, clock).cases.open_for(document(clock, outcome), submitted_by="portal", traces={})
    return case_id


async def test_two_lawyers_approving_one_case_at_once_on_two_replicas_both_count_and_approve_it_once(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock)
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.decide(case_id, legal("bob"), decision="approve", justification=JUSTIFICATION)), clock)
    case = await a.cases.decide(case_id, legal("alice"), decision="approve", justification=JUSTIFICATION)
    assert case["state"] == "approved"
    assert [x["by"] for x in case["approvals"]] == ["bob", "alice"]
    assert await b.cases.get(case_id) == case
    assert (await b.kinds(), await a.kinds()) == (["case.approval"], ["case.approval", "case.approved"])
    assert (b.disclosed, a.disclosed) == ([], [case_id])


async def test_a_lawyer_whose_approval_landed_on_another_replica_meanwhile_is_refused_as_a_duplicate(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock)
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.decide(case_id, legal("alice"), decision="approve", justification=JUSTIFICATION)), clock)
    with pytest.raises(Conflict) as refused:
        await a.cases.decide(case_id, legal("alice"), decision="approve", justification=JUSTIFICATION)
    assert refused.value.code == "duplicate-approval"
    assert [x["by"] for x in (await b.cases.get(case_id))["approvals"]] == ["alice"]
    assert (await b.kinds(), await a.kinds()) == (["case.approval"], [])


async def test_an_approval_racing_a_denial_that_landed_first_is_refused_as_the_case_is_closed(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock)
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.decide(case_id, legal("bob"), decision="deny", justification=JUSTIFICATION)), clock)
    with pytest.raises(CaseClosed):
        await a.cases.decide(case_id, legal("alice"), decision="approve", justification=JUSTIFICATION)
    assert (await b.cases.get(case_id))["state"] == "denied"
    assert (await b.kinds(), await a.kinds()) == (["case.denied"], [])


async def test_two_objections_to_one_hold_at_once_record_one_and_refuse_the_other(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock, "hold")
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.object(case_id, legal("bob"), **OBJECTION)), clock)
    with pytest.raises(CaseClosed):
        await a.cases.object(case_id, legal("alice"), **OBJECTION)
    case = await b.cases.get(case_id)
    assert (case["state"], [o["recorded_by"] for o in case["objections"]]) == ("objected", ["bob"])
    assert (await b.kinds(), await a.kinds()) == (["case.objection"], [])


async def test_two_assignments_at_once_are_both_in_the_history_and_the_later_write_is_the_assignee(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock)
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.assign(case_id, legal("bob"), "bob")), clock)
    case = await a.cases.assign(case_id, legal("alice"), "alice")
    assert case["assignee"] == "alice"
    assert [h["note"] for h in case["history"] if h["action"] == "assigned"] == ["bob", "alice"]
    assert (await b.kinds(), await a.kinds()) == (["case.assigned"], ["case.assigned"])


async def test_a_hold_released_by_another_replica_during_a_sweep_is_released_and_ledgered_once(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock, "hold")
    clock.advance(days=10)
    b = replica(control, clock)
    a = replica(Interleaved(control, b.cases.sweep), clock)
    assert (await a.cases.sweep())["released"] == 0
    assert (await b.cases.get(case_id))["state"] == "released"
    assert (await b.kinds(), await a.kinds()) == (["case.released"], [])
    assert (b.disclosed, a.disclosed) == ([case_id], [])


async def test_a_case_denied_on_another_replica_while_a_sweep_expires_it_stays_denied(control: RecordStore) -> None:
    clock = FrozenClock()
    case_id = await opened(control, clock)
    clock.advance(days=10)
    b = replica(control, clock)
    a = replica(Interleaved(control, lambda: b.cases.decide(case_id, legal("bob"), decision="deny", justification=JUSTIFICATION)), clock)
    assert (await a.cases.sweep())["expired"] == 0
    assert (await b.cases.get(case_id))["state"] == "denied"
    assert (await b.kinds(), await a.kinds()) == (["case.denied"], [])
