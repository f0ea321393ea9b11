"""The residency decision for internal service reads. Pure: no I/O, no clock.

Rules, first match wins (rule ids appear in the decision's reasons):

1. ``residency.same-jurisdiction``: the caller's region and the data's region
   are in the same jurisdiction → allow.
2. ``residency.free-flow-bloc``: both jurisdictions belong to a bloc configured
   with ``free_flow = true`` → allow.
3. ``residency.transfer-mechanism``: a configured mechanism covers the data's
   origin (its jurisdiction or one of its blocs), the caller's destination, the
   calling service and its declared purpose → allow.
4. ``residency.default-deny``: otherwise refuse, with the closest reason:
   ``purpose-not-covered`` (a mechanism covers the route and the service but
   not the purpose), ``service-not-covered`` (one covers the route but not the
   service) or ``no-transfer-mechanism``.

Which jurisdictions, blocs and mechanisms exist is configuration; nothing here
names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.model import Bloc, Jurisdiction, Reason, ResidencyDecision, TransferMechanism


@dataclass(frozen=True)
class ResidencyPolicy:
    """The configuration compiled into lookups: built once, used for every read."""

    region_jurisdiction: Mapping[str, str]
    places: Mapping[str, frozenset[str]]  # jurisdiction -> itself and its blocs
    free_flow: Mapping[str, frozenset[str]]  # jurisdiction -> its free-flow blocs
    mechanisms: tuple[TransferMechanism, ...]

    @classmethod
    def build(
        cls,
        *,
        regions: Mapping[str, str],
        jurisdictions: Mapping[str, Jurisdiction],
        blocs: Mapping[str, Bloc],
        mechanisms: Mapping[str, TransferMechanism],
    ) -> ResidencyPolicy:
        return cls(
            region_jurisdiction=dict(regions),
            places={code: frozenset({code}) | j.blocs for code, j in jurisdictions.items()},
            free_flow={code: frozenset(b for b in j.blocs if blocs[b].free_flow) for code, j in jurisdictions.items()},
            mechanisms=tuple(mechanisms[name] for name in sorted(mechanisms)),
        )

    def decide(self, *, caller_region: str, service: str, purpose: str, data_region: str, trace: bool = False) -> ResidencyDecision:
        caller_j = self.region_jurisdiction[caller_region]
        data_j = self.region_jurisdiction[data_region]
        lines: list[str] = []

        def done(allowed: bool, code: str, rule: str, detail: str, mechanism: str | None = None) -> ResidencyDecision:
            if trace:
                lines.append(f"{rule}: {'allow' if allowed else 'refuse'} ({code})")
            return ResidencyDecision(
                allowed=allowed,
                reasons=(Reason(code, rule, detail),),
                caller_jurisdiction=caller_j,
                data_region=data_region,
                data_jurisdiction=data_j,
                mechanism=mechanism,
                trace=tuple(lines),
            )

        # (1) same jurisdiction
        if caller_j == data_j:
            return done(True, "same-jurisdiction", "residency.same-jurisdiction", f"caller and data are both in `{data_j}`")
        if trace:
            lines.append(f"residency.same-jurisdiction: no (`{caller_j}` reads `{data_j}`)")

        # (2) free-flow bloc
        shared = self.free_flow[caller_j] & self.free_flow[data_j]
        if shared:
            bloc = min(shared)
            return done(True, "free-flow-bloc", "residency.free-flow-bloc", f"`{caller_j}` and `{data_j}` are both in `{bloc}`")
        if trace:
            lines.append("residency.free-flow-bloc: no shared free-flow bloc")

        # (3) transfer mechanism
        origin, destination = self.places[data_j], self.places[caller_j]
        route = [m for m in self.mechanisms if m.sources & origin and m.destinations & destination]
        for mechanism in route:
            if service in mechanism.services and purpose in mechanism.purposes:
                return done(
                    True,
                    "transfer-mechanism",
                    "residency.transfer-mechanism",
                    f"`{mechanism.id}` covers `{service}` for `{purpose}`",
                    mechanism.id,
                )
        if trace:
            lines.append(f"residency.transfer-mechanism: none of {len(route)} mechanism(s) on this route covers `{service}` for `{purpose}`")

        # (4) default deny, with the closest reason
        for mechanism in route:
            if service in mechanism.services:
                return done(
                    False,
                    "purpose-not-covered",
                    "residency.default-deny",
                    f"`{mechanism.id}` does not cover purpose `{purpose}`",
                    mechanism.id,
                )
        if route:
            names = ", ".join(f"`{m.id}`" for m in route)
            return done(False, "service-not-covered", "residency.default-deny", f"service `{service}` is not registered under {names}")
        return done(False, "no-transfer-mechanism", "residency.default-deny", f"no transfer mechanism from `{data_j}` to `{caller_j}`")
