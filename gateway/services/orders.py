"""Legal orders: the service the runtime builds, over intake, holds and packages.

``gateway.services.intake`` verifies, claims, decides, acts and records an
order (``submit``, and ``explain``, which changes nothing); the documents it
writes are built, read and viewed in ``gateway.services.documents``; holds
are kept by ``gateway.services.holds`` and packages made by
``gateway.services.packaging``. This module finds a stored document by its
order id and returns what it means *now* (a hold whose window closed, a
preservation that expired, the state of its cases); ``sweep`` lifts holds
that are due. A record that no longer matches the decision when its bytes are
read, at package time (or that its store cannot read back), is withheld from
the package, which says so (see ``gateway.packages``), and ledgered as
``package.withheld``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.model import is_identifier
from gateway.services.cases import CaseNotFound, case_id_for
from gateway.services.documents import Document, Explained, View, document_key, read_document, view
from gateway.services.intake import Intake
from gateway.services.packaging import Packager
from gateway.stores import ObjectNotFound


class OrderNotFound(NotFound):
    code = "order-not-found"


class OrderService:
    """Orders as the API and the console see them: intake (``Intake``), reading, holds and packages."""

    def __init__(self, intake: Intake, *, provider_key: ed25519.Ed25519PrivateKey) -> None:
        self.intake = intake
        self.cases = intake.cases
        self.control = intake.control
        self.clock = intake.clock
        self.holds = intake.holds
        self.packager = Packager(stores=intake.stores, records=intake.records, provider_key=provider_key, audit=intake.audit, clock=intake.clock)

    # --- intake ----------------------------------------------------------------

    async def submit(self, token: str, *, submitted_by: str, via: str | None = None) -> tuple[View, bool]:
        """Decide and act on a signed order (``via``: forwarded by that peer gateway, for this gateway's own subjects).
        Returns (the document as it stands now, created)."""
        document, created = await self.intake.submit(token, submitted_by=submitted_by, via=via)
        return await self.view_now(document), created

    async def explain(self, token: str, *, at: datetime | None = None) -> Explained:
        """The decision document with the full trace; changes nothing."""
        return await self.intake.explain(token, at=at)

    async def sweep(self) -> int:
        """Lift every hold whose time has come; returns how many records were released."""
        return await self.holds.sweep()

    async def complete_pending(self) -> int:
        """Ask peer gateways again for the order items that wait for them; returns how many items were completed."""
        return await self.intake.complete_pending()

    # --- reading ---------------------------------------------------------------

    async def _find(self, order_id: str, authority: str | None) -> Document:
        if not is_identifier(order_id) or (authority is not None and not is_identifier(authority)):
            raise InvalidRequest(f"order id `{order_id}` is not a valid identifier", code="invalid-order-id")
        if authority is None:
            owners = [k.rsplit("/", 1)[1] for k in await self.control.list(f"order-ids/{order_id}/")]
            if not owners:
                raise OrderNotFound(f"no order `{order_id}`")
            if len(owners) > 1:
                raise Conflict(
                    f"order id `{order_id}` was used by {', '.join(f'`{o}`' for o in owners)}; add `?authority=ID`", code="ambiguous-order-id"
                )
            authority = owners[0]
        try:
            return read_document((await self.control.get(document_key(authority, order_id))).body)
        except ObjectNotFound:
            raise OrderNotFound(f"no order `{order_id}` from `{authority}`") from None

    async def document(self, order_id: str, authority: str | None = None) -> View:
        return await self.view_now(await self._find(order_id, authority))

    async def view_now(self, document: Document) -> View:
        """The document as it stands now, with the state of its cases."""
        cases: dict[tuple[str, str], dict[str, Any]] = {}
        for item in document.items:
            mine = "peer" not in item.extra  # a peer's item: its case is the peer's
            if mine and item.outcome in ("legal-review", "hold") and item.region and (item.subject, item.region) not in cases:
                with contextlib.suppress(CaseNotFound):
                    cases[(item.subject, item.region)] = await self.cases.get(case_id_for(document.authority, document.id, item.subject, item.region))
        return view(document, now=self.clock(), cases=cases)

    # --- packages --------------------------------------------------------------

    async def package(self, order_id: str, authority: str | None = None) -> tuple[dict[str, Any], int, AsyncGenerator[bytes, None]]:
        """The order's package as it stands now (see ``Packager.package``)."""
        return await self.packager.package(await self.document(order_id, authority))

