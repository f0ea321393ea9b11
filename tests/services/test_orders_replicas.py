"""Two replicas renewing one preservation at the same moment: one extends it, the other is decided on the extension it made.

Each replica is an ``Intake`` with its own ledger over one set of stores. Replica
A's writes of the renewed order's document go through ``Interleaved``, so
replica B's whole submission lands between A's read of that document and A's
write of it.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import MemoryLedger
from gateway.legal.verify import sign_order
from gateway.services.audit_log import AuditLog
from gateway.services.cases import CaseService
from gateway.services.documents import document_key, read_document
from gateway.services.intake import Intake, Trust
from gateway.services.notices import NoticeService
from gateway.services.records import RecordService
from gateway.stores import MemoryStore, RecordStore
from gateway.tags import TagSigner, TagVerifier
from tests.services.conftest import AOIFE, WRITER, shipped_config
from tests.services.interleaved import Interleaved
from tests.support import CASE_DATE, FrozenClock

CONFIG = shipped_config()
FBI = ed25519.Ed25519PrivateKey.generate()
TAG_KEYS = {r: ed25519.Ed25519PrivateKey.generate() for r in CONFIG.regions}


def replica(stores: dict[str, RecordStore], control: RecordStore, clock: FrozenClock) -> Intake:
    audit = AuditLog(MemoryLedger(clock))
    records = RecordService(
        config=CONFIG,
        stores=stores,
        control=control,
        signer=TagSigner(TAG_KEYS),
        verifier=TagVerifier({r: k.public_key() for r, k in TAG_KEYS.items()}, {r.id: r.jurisdiction for r in CONFIG.regions.values()}),
        audit=audit,
        clock=clock,
    )
    return Intake(
        config=CONFIG,
        records=records,
        cases=CaseService(control=control, audit=audit, clock=clock),
        notices=NoticeService(control=control, audit=audit, clock=clock),
        control=control,
        trust=Trust({"us-fbi": FBI.public_key()}),
        audit=audit,
        clock=clock,
    )


def preservation(clock: FrozenClock, jti: str, renews: str | None = None) -> str:
    """A us.preservation order from `us-fbi` for aoife's content."""
    now = int(clock().timestamp())
    claims: dict[str, Any] = {"jti": jti, "iss": "us-fbi", "iat": now, "exp": now + 30 * 86400, "instrument": "us.preservation"}
    claims |= {"subjects": ["aoife"], "categories": ["content"]} | ({"renews": renews} if renews else {})
    return sign_order(claims, key=FBI, kid="us-fbi")


async def test_of_two_renewals_decided_at_once_on_two_replicas_only_one_extends_the_preservation() -> None:
    clock = FrozenClock(CASE_DATE)
    stores: dict[str, RecordStore] = {r: MemoryStore(r) for r in CONFIG.regions}
    control = MemoryStore("control")
    first = replica(stores, control, clock)
    await first.records.register_subject(WRITER, AOIFE)
    await first.records.put_record(WRITER, "aoife", "mail-1", "content", b"preserve me")
    await first.submit(preservation(clock, "pres-1"), submitted_by="portal")
    clock.advance(days=80)
    b = replica(stores, control, clock)
    slots = "orders/us-fbi/pres-1/extensions/"
    # B's whole renewal lands between A's decision (on one extension left) and A's claim of that extension
    a = replica(stores, Interleaved(control, lambda: b.submit(preservation(clock, "pres-3", "pres-1"), submitted_by="portal"), only=slots), clock)
    document, _ = await a.submit(preservation(clock, "pres-2", "pres-1"), submitted_by="portal")
    other = read_document((await control.get(document_key("us-fbi", "pres-3"))).body)
    codes = sorted(d.items[0].reasons[0]["code"] for d in (document, other))
    assert codes == ["extensions-exhausted", "preservation-extended"]
