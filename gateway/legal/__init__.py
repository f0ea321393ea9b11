"""Legal orders: the policy schema (rules as data), order types and the pure disclosure engine.

- ``policy``: ``parse_legal`` turns regions.toml's legal tables into a frozen ``LegalPolicy``
- ``orders``: ``Authority``, ``Offence``, ``Order``, ``Objection``, ``PriorPreservation``
- ``engine``: ``Engine(policy).decide(...)`` / ``decide(...)`` -> ``Decision``; ``refusal`` for R0
- ``decision_cases``: decision cases as TOML data (``load_cases``, ``run_case``)
- ``diff``: every point of the decision space of two policies, decided under both (``gateway policy diff``)
"""

from gateway.legal.engine import (
    BASES,
    OUTCOMES,
    Decision,
    Engine,
    Obligations,
    compile_policy,
    decide,
    refusal,
)
from gateway.legal.orders import Authority, Objection, Offence, Order, PriorPreservation
from gateway.legal.policy import TABLES, LegalPolicy, parse_legal

__all__ = [
    "BASES",
    "OUTCOMES",
    "TABLES",
    "Authority",
    "Decision",
    "Engine",
    "LegalPolicy",
    "Objection",
    "Obligations",
    "Offence",
    "Order",
    "PriorPreservation",
    "compile_policy",
    "decide",
    "parse_legal",
    "refusal",
]
