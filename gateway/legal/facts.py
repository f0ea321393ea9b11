"""Decisions about a subject whose stored facts cannot be proven.

Pure, like the engine. Residence, nationality, US-person status and location
decide targeting restrictions, notification holds and serious-crime channels;
when the signed tag over them does not verify, the engine decides with them
unknown, and no outcome that would let data go rests on them: ``disclose``,
``hold`` and ``legal-review`` become ``legal-review`` with
``subject-facts-unverified`` first. Outcomes that let nothing go
(``preserve``, ``refuse``, ``route-mlat``, ``no-data``) stand: a preservation
keeps evidence whoever the subject is.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from gateway.legal.engine import DISCLOSE, HOLD, LEGAL_REVIEW, Decision, Obligations
from gateway.model import Reason

SUBJECT_FACTS_UNVERIFIED = "subject-facts-unverified"
RULE = "R0.subject-facts"


def with_unverified_facts(decision: Decision, *, received: datetime, review_days: int, detail: str) -> Decision:
    """``decision`` as it must stand when the subject's facts did not verify (see the module docstring)."""
    if decision.outcome not in (DISCLOSE, HOLD, LEGAL_REVIEW):
        return decision
    deadline = decision.obligations.deadline if decision.outcome == LEGAL_REVIEW else None
    obligations = Obligations(
        deadline=deadline or received + timedelta(days=review_days),
        nondisclosure_until=decision.obligations.nondisclosure_until,
    )
    trace = (*decision.trace, f"{RULE}: decides {LEGAL_REVIEW} ({SUBJECT_FACTS_UNVERIFIED}): {detail}") if decision.trace else ()
    return replace(
        decision,
        outcome=LEGAL_REVIEW,
        basis=None,
        reasons=(Reason(SUBJECT_FACTS_UNVERIFIED, RULE, detail), *decision.reasons),
        obligations=obligations,
        rule=RULE,
        trace=trace,
    )
