"""Legal review: cases that need people, four-eyes approval, objections, deadlines, notices.

A case is opened for every (order, subject, region) whose decision needs a
person: ``legal-review`` (a cross-border exception, an emergency from abroad,
a third-country conflict...) or ``hold`` (an EU notification window). Cases
live in the control store as JSON documents; every action on one is written
to the ledger.

Every replica of the gateway acts on the same cases: each action is a
compare-and-swap (``gateway.services.shared.update``), decided again on the
case as it is stored whenever another replica changed it first, and ledgered
once it is written. Two lawyers approving at the same moment on two replicas
both count; a denial and an approval racing each other leave one of them
standing and refuse the other as the case is closed.

State machine::

    legal-review:  open ──approve×2──▶ approved      hold:  holding ──window ends──▶ released
                     ├──deny─────────▶ denied                  └──objection─────────▶ objected
                     ├──deadline─────▶ expired
                     └──withdraw─────▶ withdrawn

Approval needs two distinct legal principals, neither of whom submitted the
order; one denial is enough. An approval is scoped (categories) and expires;
a case is approved only by two approvals valid at the same moment, and the
disclosure it allows lasts until the earlier of the two expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.model import Caller, Clock, is_country, is_identifier, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.shared import update
from gateway.stores import ObjectNotFound, PreconditionFailed, RecordStore

if TYPE_CHECKING:  # documents build on the case states defined here
    from gateway.services.documents import Document, Item

log = logging.getLogger("gateway.cases")

OPEN, APPROVED, DENIED, EXPIRED, WITHDRAWN = "open", "approved", "denied", "expired", "withdrawn"
HOLDING, RELEASED, OBJECTED = "holding", "released", "objected"
STATES = (OPEN, APPROVED, DENIED, EXPIRED, WITHDRAWN, HOLDING, RELEASED, OBJECTED)
ACTIVE = (OPEN, HOLDING)
DECISIONS = ("approve", "deny", "withdraw")
MIN_JUSTIFICATION = 10


class CaseNotFound(NotFound):
    code = "case-not-found"


class CaseClosed(Conflict):
    code = "case-closed"


class ConsentRelayNotAllowed(Forbidden):
    code = "consent-relay-not-allowed"


class SupportAccessOff(Forbidden):
    code = "support-access-off"


@dataclass(frozen=True)
class ReviewSettings:
    approval_ttl: timedelta = timedelta(hours=72)
    lockbox_ttl: timedelta = timedelta(hours=12)  # human support access: request, approvals and reads all within this
    emergency_notice_delay: timedelta = timedelta(hours=48)
    warn_before: tuple[timedelta, ...] = (timedelta(hours=72), timedelta(hours=24))
    consent_relays: tuple[str, ...] = ()  # services that relay a customer's consent (`support_access.consent_relays`)




def case_id_for(authority: str, order_id: str, subject: str, region: str) -> str:
    digest = hashlib.sha256(f"{authority}\0{order_id}\0{subject}\0{region}".encode()).hexdigest()
    return f"case-{digest[:16]}"


def case_position(case: Mapping[str, Any]) -> tuple[bool, str, str]:
    """Where a case sorts in the queue: active before closed, then soonest deadline (none last), then id."""
    return (case["state"] not in ACTIVE, case["deadline"] or "9999", case["id"])


def _case_key(case_id: str) -> str:
    return f"cases/{case_id}"


def _checked(case_id: str) -> str:
    if not case_id.startswith("case-") or not case_id[5:].isalnum():
        raise InvalidRequest(f"`{case_id}` is not a case id", code="invalid-case-id")
    return case_id


class CaseService:
    def __init__(
        self,
        *,
        control: RecordStore,
        audit: AuditLog,
        clock: Clock,
        settings: ReviewSettings | None = None,
        on_disclosed: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.control = control
        self.audit = audit
        self.clock = clock
        self.settings = settings or ReviewSettings()
        self._lock = asyncio.Lock()
        # called once when a case lets data go (two approvals, or a hold's window closing): customer notices
        self.on_disclosed = on_disclosed

    # --- opening ----------------------------------------------------------------

    async def open_for(self, document: Document, *, submitted_by: str, traces: Mapping[tuple[str, str | None], list[str]]) -> list[str]:
        """Open a case for each (subject, region) of a decided order whose items need people; returns case ids."""
        now = self.clock()
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in document.items:
            if item.outcome in ("legal-review", "hold") and item.region:
                groups.setdefault((item.subject, item.region), []).append(item)
        opened = []
        for (subject, region), items in groups.items():
            kind = "hold" if any(i.outcome == "hold" for i in items) else "legal-review"
            first = items[0]
            obligations = first.obligations
            deadline = obligations.get("release_at") if kind == "hold" else (obligations.get("deadline") or obligations.get("motion_to_quash_by"))
            case_id = case_id_for(document.authority, document.id, subject, region)
            case = {
                "id": case_id,
                "kind": kind,
                "state": HOLDING if kind == "hold" else OPEN,
                "order": document.id,
                "authority": document.authority,
                "served_by": document.served_by,
                "instrument": document.instrument,
                "issuer_jurisdiction": document.extra.get("issuer_jurisdiction"),
                "subject": subject,
                "region": region,
                "categories": [i.category for i in items],
                "outcome": first.outcome,
                "rule": first.rule,
                "reasons": first.reasons,
                "obligations": obligations,
                "deadline": deadline,
                "records": [{k: r[k] for k in ("key", "category", "sha256", "size")} for i in items for r in i.records],
                "trace": traces.get((subject, region), []),
                "submitted_by": submitted_by,
                "nondisclosure_until": document.nondisclosure_until,
                "assignee": None,
                "approvals": [],
                "objections": [],
                "history": [{"at": isoformat(now), "by": "gateway", "action": "opened", "note": f"{first.outcome}: {first.reasons[0]['code']}"}],
                "created_at": isoformat(now),
            }
            try:
                await self.control.put(_case_key(case_id), json.dumps(case).encode(), {}, if_absent=True)
            except PreconditionFailed:
                continue  # opened already (an identical resubmission)
            await self.audit.record(
                "case.opened", {"case": case_id, "order": document.id, "authority": document.authority, "kind": kind, "deadline": deadline}
            )
            opened.append(case_id)
        return opened

    async def open_support_request(self, caller: Caller, *, subject: str, region: str, keys: list[str], justification: str) -> dict[str, Any]:
        """A support engineer asks to see a customer's content (the Customer Lockbox pattern).

        The case needs the customer's approval (relayed by a service of
        ``consent_relays``, the customer portal) and one lawyer's; access ends
        ``lockbox_ttl`` after the request. With no relay configured nobody could
        give that approval, so the request is refused (``support-access-off``).
        """
        if caller.role != "support":
            raise Forbidden("only the `support` role may request access to customer content")
        if not self.settings.consent_relays:
            raise SupportAccessOff("support access is off: no service may relay the customer's consent; name one in `support_access.consent_relays`")
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise InvalidRequest("`keys` must list the records to be seen", code="invalid-support-request")
        if not isinstance(justification, str) or len(justification.strip()) < MIN_JUSTIFICATION:
            raise InvalidRequest(f"a written `justification` of at least {MIN_JUSTIFICATION} characters is required", code="invalid-support-request")
        now = self.clock()
        case_id = case_id_for("support", f"{caller.principal}@{isoformat(now)}", subject, region)
        case = {
            "id": case_id,
            "kind": "lockbox",
            "state": OPEN,
            "order": None,
            "authority": None,
            "served_by": None,
            "instrument": "support-access",
            "issuer_jurisdiction": None,
            "subject": subject,
            "region": region,
            "categories": [],
            "keys": sorted(set(keys)),
            "outcome": "legal-review",
            "rule": "lockbox.customer-approval",
            "reasons": [{"code": "customer-approval-required", "rule": "lockbox.customer-approval", "detail": justification.strip()}],
            "obligations": {"deadline": isoformat(now + self.settings.lockbox_ttl)},
            "deadline": isoformat(now + self.settings.lockbox_ttl),
            "records": [],
            "trace": [],
            "submitted_by": caller.principal,
            "requested_by": caller.principal,
            "customer": None,
            "assignee": None,
            "approvals": [],
            "objections": [],
            "history": [{"at": isoformat(now), "by": caller.principal, "action": "requested", "note": justification.strip()}],
            "created_at": isoformat(now),
        }
        await self.control.put(_case_key(case_id), json.dumps(case).encode(), {}, if_absent=True)
        await self.audit.record(
            "case.opened", {"case": case_id, "kind": "lockbox", "by": caller.principal, "subject": subject, "region": region, "deadline": case["deadline"]}
        )
        return case

    async def customer_decision(self, case_id: str, caller: Caller, *, decision: str) -> dict[str, Any]:
        """The customer's answer to a support-access request, relayed by a service of ``consent_relays`` (the customer portal).

        Only those services speak for the customer: any other caller is refused and the case is
        left as it was. The case and the ledger name the relay (service, region, principal).
        """
        relays = self.settings.consent_relays
        if caller.role != "service" or caller.service not in relays:
            who = f"service `{caller.service}`" if caller.role == "service" else f"`{caller.principal}` ({caller.role})"
            allowed = ", ".join(f"`{r}`" for r in relays) if relays else "no service (support access is off)"
            raise ConsentRelayNotAllowed(
                f"{who} may not relay a customer's consent; `support_access.consent_relays` allows {allowed}",
            )
        if decision not in ("approve", "deny"):
            raise InvalidRequest("`decision` must be `approve` or `deny`", code="invalid-approval")
        now = self.clock()
        relay = {"service": caller.service, "region": caller.region, "principal": caller.principal}

        def answer(case: dict[str, Any]) -> dict[str, Any]:
            if case["kind"] != "lockbox":
                raise Conflict(f"case `{case_id}` is not a support-access request", code="not-a-support-request")
            if case["state"] != OPEN or now >= parse_time(case["deadline"]):
                raise CaseClosed(f"case `{case_id}` is {case['state']} or past its deadline")
            case["customer"] = {"decision": decision, "via": caller.principal, "relay": relay, "at": isoformat(now)}
            if decision == "deny":
                case["state"] = DENIED
                case["denied"] = {"by": "customer", "reason": "the customer declined", "at": isoformat(now)}
            else:
                self._approve_lockbox_if_ready(case, now)
            case["history"].append({"at": isoformat(now), "by": caller.principal, "action": f"customer-{decision}", "note": ""})
            return case

        case, _ = await self._update(case_id, answer)
        await self.audit.record("case.customer", {"case": case_id, "decision": decision, "via": caller.principal, "relay": relay, "state": case["state"]})
        return case

    def _approve_lockbox_if_ready(self, case: dict[str, Any], now: datetime) -> None:
        lawyers = [a for a in case["approvals"] if a["decision"] == "approve" and a["by"] != case["requested_by"]]
        customer = case.get("customer") or {}
        if lawyers and customer.get("decision") == "approve" and now < parse_time(case["deadline"]):
            case["state"] = APPROVED
            case["approved"] = {"by": [lawyers[-1]["by"], "customer"], "categories": [], "at": isoformat(now), "until": case["deadline"]}

    def lockbox_allows(self, case: Mapping[str, Any], caller: Caller, key: str, now: datetime) -> bool:
        """Whether this support engineer may see this record now."""
        return (
            case["kind"] == "lockbox"
            and case["state"] == APPROVED
            and caller.role == "support"
            and caller.principal == case["requested_by"]
            and key in case["keys"]
            and now < parse_time(case["deadline"])
        )

    # --- reading ----------------------------------------------------------------

    async def get(self, case_id: str) -> dict[str, Any]:
        try:
            return json.loads((await self.control.get(_case_key(_checked(case_id)))).body)
        except ObjectNotFound:
            raise CaseNotFound(f"no case `{case_id}`") from None

    async def list(
        self, *, state: str | None = None, jurisdiction: str | None = None, region: str | None = None, instrument: str | None = None
    ) -> list[dict[str, Any]]:
        """Cases, soonest deadline first, filtered by state, issuing jurisdiction, region and instrument."""
        if state is not None and state not in STATES:
            raise InvalidRequest(f"unknown state `{state}`; use one of {', '.join(STATES)}", code="invalid-filter")
        if jurisdiction is not None and not is_country(jurisdiction):
            raise InvalidRequest(f"`{jurisdiction}` is not a country code", code="invalid-filter")
        cases = []
        for key in await self.control.list("cases/"):
            try:
                case = json.loads((await self.control.get(key)).body)
            except ObjectNotFound:
                continue
            if state and case["state"] != state:
                continue
            if jurisdiction and case.get("issuer_jurisdiction") != jurisdiction:
                continue
            if region and case["region"] != region:
                continue
            if instrument and case["instrument"] != instrument:
                continue
            cases.append(case)
        return sorted(cases, key=case_position)

    async def page(
        self, *, after: tuple[bool, str, str] | None = None, limit: int = 100, **filters: str | None
    ) -> tuple[list[dict[str, Any]], tuple[bool, str, str] | None]:
        """One page of ``list``: up to ``limit`` cases after the position ``after``, and the position to ask from next (``None`` at the end).

        Positions are ``case_position``s, so a page boundary stays put while cases come and go; a case whose
        state or deadline changes between two pages moves in the order and may be seen twice or not at all.
        """
        cases = await self.list(**filters)
        if after is not None:
            cases = [c for c in cases if case_position(c) > after]
        page = cases[:limit]
        return page, case_position(page[-1]) if len(cases) > limit else None

    # --- acting on a case ---------------------------------------------------------

    async def _update(self, case_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> tuple[dict[str, Any], bool]:
        """The case as ``change`` left it and True, written over the version it was decided on; or as it is and False.

        ``change`` edits the stored case in place and returns it, returns None to leave it, or raises to refuse.
        It runs again on a fresh read whenever another replica changed the case first (``shared.update``);
        within this process one action at a time, so only other replicas' writes race it.
        """

        def existing(case: dict[str, Any] | None) -> dict[str, Any] | None:
            if case is None:
                raise CaseNotFound(f"no case `{case_id}`")
            return change(case)

        async with self._lock:
            updated = await update(self.control, _case_key(_checked(case_id)), existing)
        return cast(dict[str, Any], updated.value), updated.written  # a missing case raised: never None

    async def decide(
        self, case_id: str, caller: Caller, *, decision: str, justification: str, categories: list[str] | None = None
    ) -> dict[str, Any]:
        """Record one lawyer's approval, denial or withdrawal; returns the case as it now stands."""
        if caller.role != "legal":
            raise Forbidden("only the `legal` role may decide cases")
        if decision not in DECISIONS:
            raise InvalidRequest(f"`decision` must be one of {', '.join(DECISIONS)}", code="invalid-approval")
        if not isinstance(justification, str) or len(justification.strip()) < MIN_JUSTIFICATION:
            raise InvalidRequest(f"a written `justification` of at least {MIN_JUSTIFICATION} characters is required", code="invalid-approval")
        now = self.clock()
        at = isoformat(now)

        def record(case: dict[str, Any]) -> dict[str, Any]:
            if case["kind"] == "hold":
                raise Conflict(f"case `{case_id}` is an EU notification hold; record an objection or let the window close", code="not-reviewable")
            if case["state"] != OPEN:
                raise CaseClosed(f"case `{case_id}` is {case['state']}; it can no longer be decided")
            if caller.principal == case["submitted_by"]:
                raise Forbidden(f"`{caller.principal}` submitted this order and may not decide it")
            scope = sorted(set(categories or case["categories"]))
            if not set(scope) <= set(case["categories"]):
                raise InvalidRequest(f"approval scope {scope} is wider than the case's categories {case['categories']}", code="invalid-scope")
            entry = {
                "by": caller.principal,
                "decision": decision,
                "justification": justification.strip(),
                "categories": scope,
                "at": at,
                "expires_at": isoformat(now + self.settings.approval_ttl),
            }
            if decision == "approve":
                if any(a["by"] == caller.principal and a["decision"] == "approve" and parse_time(a["expires_at"]) > now for a in case["approvals"]):
                    raise Conflict(f"`{caller.principal}` has already approved this case; a second, different lawyer must approve", code="duplicate-approval")
                case["approvals"].append(entry)
                valid = [a for a in case["approvals"] if a["decision"] == "approve" and parse_time(a["expires_at"]) > now]
                approvers = {a["by"] for a in valid}
                if case["kind"] == "lockbox":
                    self._approve_lockbox_if_ready(case, now)
                elif len(approvers) >= 2:
                    pair = _latest_per_person(valid)[-2:]
                    case["state"] = APPROVED
                    case["approved"] = {
                        "by": [a["by"] for a in pair],
                        "categories": sorted(set(pair[0]["categories"]) & set(pair[1]["categories"])),
                        "at": at,
                        "until": min(a["expires_at"] for a in pair),
                    }
            elif decision == "deny":
                case["approvals"].append(entry)
                case["state"] = DENIED
                case["denied"] = {"by": caller.principal, "reason": entry["justification"], "at": at}
            else:
                case["approvals"].append(entry)
                case["state"] = WITHDRAWN
            case["history"].append({"at": at, "by": caller.principal, "action": decision, "note": entry["justification"]})
            return case

        case, _ = await self._update(case_id, record)
        scope = case["approvals"][-1]["categories"]  # this decision's: the one just appended
        kind = {"approve": "case.approval", "deny": "case.denied", "withdraw": "case.withdrawn"}[decision]
        await self.audit.record(kind, {"case": case_id, "order": case["order"], "by": caller.principal, "categories": scope, "state": case["state"]})
        if case["state"] == APPROVED and decision == "approve":
            approved = case["approved"]
            await self.audit.record("case.approved", {"case": case_id, "order": case["order"], "by": approved["by"], "categories": approved["categories"]})
            if self.on_disclosed is not None:
                await self.on_disclosed(case)
        return case

    async def object(self, case_id: str, caller: Caller, *, ground: str, authority: str, date: str) -> dict[str, Any]:
        """Record an enforcing-state objection; a hold becomes a refusal."""
        if caller.role != "legal":
            raise Forbidden("only the `legal` role may record objections")
        for name, value in (("ground", ground), ("authority", authority), ("date", date)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidRequest(f"`{name}` is required", code="invalid-objection")
        try:
            objected_on = parse_time(date)
        except ValueError:
            raise InvalidRequest(f"`date` must be an RFC 3339 date, not `{date}`", code="invalid-objection") from None
        now = self.clock()

        def record(case: dict[str, Any]) -> dict[str, Any]:
            if case["kind"] != "hold":
                raise Conflict(f"case `{case_id}` is not a notification hold; objections apply to holds", code="not-objectionable")
            if case["state"] != HOLDING:
                raise CaseClosed(f"case `{case_id}` is {case['state']}; the window for objections has closed")
            window_end = case["obligations"].get("objection_window_until") or case["deadline"]
            if window_end and now >= parse_time(window_end):
                raise CaseClosed(f"the objection window of case `{case_id}` closed at {window_end}")
            objection = {
                "ground": ground.strip(),
                "authority": authority.strip(),
                "date": isoformat(objected_on),
                "recorded_by": caller.principal,
                "at": isoformat(now),
            }
            case["objections"].append(objection)
            case["state"] = OBJECTED
            case["history"].append({"at": objection["at"], "by": caller.principal, "action": "objection", "note": f"{authority}: {ground}"})
            return case

        case, _ = await self._update(case_id, record)
        await self.audit.record("case.objection", {"case": case_id, "order": case["order"], "by": caller.principal, "authority": authority.strip()})
        return case

    async def assign(self, case_id: str, caller: Caller, assignee: str) -> dict[str, Any]:
        if caller.role != "legal":
            raise Forbidden("only the `legal` role may assign cases")
        if not is_identifier(assignee):
            raise InvalidRequest(f"assignee `{assignee}` must be a principal id (letters, digits, `.`, `_`, `-`)", code="invalid-assignee")
        at = isoformat(self.clock())

        def record(case: dict[str, Any]) -> dict[str, Any]:
            case["assignee"] = assignee
            case["history"].append({"at": at, "by": caller.principal, "action": "assigned", "note": assignee})
            return case

        case, _ = await self._update(case_id, record)
        await self.audit.record("case.assigned", {"case": case_id, "by": caller.principal, "assignee": assignee})
        return case

    # --- time ----------------------------------------------------------------------

    async def sweep(self) -> dict[str, int]:
        """Close what time has decided: holds whose window ended are released, open cases past their deadline expire.

        Safe with several replicas: a transition is a compare-and-swap from the state the
        sweep saw, so whichever replica writes it first makes it (and records it), once.
        """
        now = self.clock()
        counts = {"released": 0, "expired": 0}
        for case in await self.list():
            due = case["deadline"] is not None and parse_time(case["deadline"]) <= now
            if not due or case["state"] not in ACTIVE:
                continue
            new = RELEASED if case["state"] == HOLDING else EXPIRED
            if await self._transition(case["id"], case["state"], new, now):
                counts["released" if new == RELEASED else "expired"] += 1
        return counts

    async def _transition(self, case_id: str, old: str, new: str, now: datetime) -> bool:
        def close(case: dict[str, Any]) -> dict[str, Any] | None:
            if case["state"] != old:
                return None  # another replica, or a person, changed it since the sweep's read
            case["state"] = new
            case["history"].append({"at": isoformat(now), "by": "gateway", "action": new, "note": "deadline reached"})
            return case

        case, written = await self._update(case_id, close)
        if not written:
            return False
        await self.audit.record(f"case.{new}", {"case": case_id, "order": case["order"]})
        if new == RELEASED and self.on_disclosed is not None:
            await self.on_disclosed(case)
        return True


def _latest_per_person(approvals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for approval in approvals:
        latest[approval["by"]] = approval
    return sorted(latest.values(), key=lambda a: a["at"])


def disclosure_allowed(case: Mapping[str, Any], category: str, now: datetime) -> bool:
    """Whether an approved case lets this category's records go, at ``now``."""
    approved = case.get("approved")
    return (
        case["state"] == APPROVED
        and approved is not None
        and category in approved["categories"]
        and now < parse_time(approved["until"])
    )
