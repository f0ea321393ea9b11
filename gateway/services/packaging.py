"""Disclosure packages of decided orders: what goes in, read from the stores, ledgered and streamed.

``gateway.packages`` writes the tar; this module chooses its records (those of
the items a viewed decision document lets go now) and reads their bodies, in
bulk per region.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.aio import all_or_first_error
from gateway.canonical import key_id, sha256_hex
from gateway.errors import NotFound
from gateway.model import Clock, parse_time
from gateway.packages import ItemFields, Unreadable, build_manifest, manifest_bytes, package_size, stream_package
from gateway.services.audit_log import AuditLog
from gateway.services.documents import View
from gateway.services.records import record_key
from gateway.stores import ObjectCorrupt, ObjectNotFound, RecordStore

log = logging.getLogger("gateway.orders")


class Packager:
    def __init__(self, *, stores: Mapping[str, RecordStore], provider_key: ed25519.Ed25519PrivateKey, audit: AuditLog, clock: Clock) -> None:
        self.stores = stores
        self.provider_key = provider_key
        self.provider_id = key_id(provider_key.public_key())
        self.audit = audit
        self.clock = clock

    async def package(self, view: View) -> tuple[dict[str, Any], int, AsyncGenerator[bytes, None]]:
        """The signed manifest, the tar's length and a stream of it, for a document as it stands now (``view``);
        recorded in the ledger before the first byte.

        A record that no longer matches its decision when it is read (or that its store cannot read back) is
        withheld from the package, which says so (its signed withheld.json), and ledgered as ``package.withheld``."""
        document = view.document
        items: list[ItemFields] = [  # plain tuples in PackageItem's order: a third of the cost for thousands of records
            (i.subject, i.region, i.category, r["key"], r["sha256"], r["size"], r["tag"])  # type: ignore[misc]
            for i in (v.item for v in view.released)
            for r in i.records
        ]
        if not items:
            raise NotFound(f"order `{document.id}` has nothing disclosed (yet)", code="nothing-disclosed")
        manifest = build_manifest(document.id, document.authority, self.clock(), items, self.provider_id)
        encoded = manifest_bytes(manifest)
        await self.audit.record(
            "package.produced",
            {"order": document.id, "authority": document.authority, "records": len(items), "manifest_sha256": sha256_hex(encoded)},
        )
        self.audit.observer.order_packaged(seconds=(self.clock() - parse_time(document.received_at)).total_seconds())

        async def fetch(batch: list[dict[str, Any]]) -> list[bytes]:
            """The batch's bodies in order: one bulk read per region it spans, those in parallel."""
            positions: dict[str, list[int]] = {}
            for position, record in enumerate(batch):
                positions.setdefault(record["region"], []).append(position)

            async def read(region: str, where: list[int]) -> list[bytes | Unreadable]:
                store = self.stores[region]
                keys = [record_key(batch[i]["subject"], batch[i]["key"]) for i in where]
                try:
                    return list(await store.get_bodies(keys))
                except (ObjectCorrupt, ObjectNotFound):
                    # a bulk read fails whole: read this part one record at a time, so that only the damaged one is withheld
                    return [await _one_body(store, key) for key in keys]

            bodies: list[bytes | Unreadable] = [b""] * len(batch)
            for where, got in zip(positions.values(), await all_or_first_error(read(r, w) for r, w in positions.items()), strict=True):
                for i, body in zip(where, got, strict=True):
                    bodies[i] = body
            return bodies

        async def withheld(record: dict[str, Any], detail: str) -> None:
            # Not counted as a residency violation: a record rewritten through the gateway since the decision is withheld alike.
            log.warning("record withheld from a package", extra={"event": "package.withheld", "order": document.id})
            await self.audit.record(
                "package.withheld",
                {
                    "order": document.id,
                    "authority": document.authority,
                    "subject": record["subject"],
                    "region": record["region"],
                    "key": record["key"],
                    "reason": "record-integrity",
                    "detail": detail,
                },
            )

        stream = stream_package(manifest, signing_key=self.provider_key, fetch=fetch, manifest_bytes=encoded, on_withheld=withheld)
        return manifest, package_size(manifest, len(encoded)), stream


async def _one_body(store: RecordStore, key: str) -> bytes | Unreadable:
    try:
        return (await store.get_bodies([key]))[0]
    except ObjectCorrupt:
        return Unreadable("record-corrupt")
    except ObjectNotFound:
        return Unreadable("record-missing")


