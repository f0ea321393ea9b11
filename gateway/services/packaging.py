"""Disclosure packages of decided orders: what goes in, read from the stores, ledgered and streamed.

``gateway.packages`` writes the tar; this module chooses its records (those of
the items a viewed decision document lets go now) and reads their bodies, in
bulk per region.

A record that is a chunked object's manifest (``gateway.services.objects``;
its decision names the object's SHA-256 and size, and the manifest's own
SHA-256 as ``manifest_sha256``) is packaged as the object's bytes, never as
its manifest: the manifest record is read and must be the one decided on, then
the object's chunks are read a chunk at a time, each checked against its tag
and the manifest's SHA-256 as an S3 read checks it, twice (``Streamed``: the
whole is checked before its member starts, then each chunk again before any
of its bytes leave). An object whose manifest names no SHA-256 of the whole
(written before manifests carried one) is withheld (``object-sha256-unknown``)
rather than sent unverified.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.aio import all_or_first_error
from gateway.canonical import key_id, sha256_hex
from gateway.errors import NotFound
from gateway.model import Clock, parse_time
from gateway.packages import (
    Body,
    ItemFields,
    PackageError,
    Streamed,
    Unreadable,
    build_manifest,
    manifest_bytes,
    package_size,
    record_path,
    stream_package,
)
from gateway.services.audit_log import AuditLog
from gateway.services.documents import View
from gateway.services.objects import Manifest, read_chunk
from gateway.services.records import RecordService, record_key
from gateway.stores import ObjectCorrupt, ObjectNotFound, RecordStore
from gateway.tags import TagViolation

log = logging.getLogger("gateway.orders")


class Packager:
    def __init__(
        self, *, stores: Mapping[str, RecordStore], records: RecordService, provider_key: ed25519.Ed25519PrivateKey, audit: AuditLog, clock: Clock
    ) -> None:
        self.stores = stores
        self.records = records  # checks the tags of a chunked object's chunks
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
        chunked = {  # path -> the SHA-256 of the manifest decided on, for each record that is a chunked object
            record_path(i.subject, i.region, r["key"]): r["manifest_sha256"]
            for i in (v.item for v in view.released)
            for r in i.records
            if "manifest_sha256" in r
        }
        manifest = build_manifest(document.id, document.authority, self.clock(), items, self.provider_id)
        encoded = manifest_bytes(manifest)
        await self.audit.record(
            "package.produced",
            {"order": document.id, "authority": document.authority, "records": len(items), "manifest_sha256": sha256_hex(encoded)},
        )
        self.audit.observer.order_packaged(seconds=(self.clock() - parse_time(document.received_at)).total_seconds())

        async def fetch(batch: list[dict[str, Any]]) -> list[Body]:
            """The batch's bodies in order: one bulk read per region it spans, those in parallel (a chunked object: ``Streamed``)."""
            bodies: list[Body] = [b""] * len(batch)
            positions: dict[str, list[int]] = {}
            for position, record in enumerate(batch):
                if record["path"] in chunked:
                    bodies[position] = self._object(record, chunked[record["path"]])
                else:
                    positions.setdefault(record["region"], []).append(position)

            async def read(region: str, where: list[int]) -> list[bytes | Unreadable]:
                store = self.stores[region]
                keys = [record_key(batch[i]["subject"], batch[i]["key"]) for i in where]
                try:
                    return list(await store.get_bodies(keys))
                except (ObjectCorrupt, ObjectNotFound):
                    # a bulk read fails whole: read this part one record at a time, so that only the damaged one is withheld
                    return [await _one_body(store, key) for key in keys]

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

    def _object(self, record: dict[str, Any], manifest_sha256: str) -> Streamed:
        """A chunked object's bytes as a package member, read through the manifest decided on (``manifest_sha256``)."""
        region, subject, key = record["region"], record["subject"], record["key"]
        read: list[Manifest] = []  # the manifest ``check`` read, which ``pieces`` reads the chunks of again

        async def check() -> tuple[str, int] | Unreadable:
            try:
                body = (await self.stores[region].get(record_key(subject, key))).body
            except ObjectCorrupt:
                return Unreadable("record-corrupt")
            except ObjectNotFound:
                return Unreadable("record-missing")
            if sha256_hex(body) != manifest_sha256:
                return Unreadable("record-changed")
            manifest = Manifest.parse(body)  # (the one decided on, which was parsed then)
            if manifest.sha256 is None:
                return Unreadable("object-sha256-unknown")
            digest, size = hashlib.sha256(), 0
            for chunk in manifest.chunks:
                try:
                    data = await read_chunk(self.records, region, subject, key, chunk)
                except TagViolation as violation:
                    return Unreadable(violation.code)
                digest.update(data)
                size += len(data)
            read.append(manifest)
            return digest.hexdigest(), size

        async def pieces() -> AsyncIterator[bytes]:
            for chunk in read[0].chunks:
                try:
                    yield await read_chunk(self.records, region, subject, key, chunk)
                except TagViolation as violation:
                    log.warning("a chunk changed while its package streamed", extra={"event": "package.stopped", "region": region})
                    detail = f"a chunk of `{key}` failed its check ({violation.code}) while its package streamed; the package is incomplete"
                    raise PackageError(detail) from None

        return Streamed(check, pieces)


async def _one_body(store: RecordStore, key: str) -> bytes | Unreadable:
    try:
        return (await store.get_bodies([key]))[0]
    except ObjectCorrupt:
        return Unreadable("record-corrupt")
    except ObjectNotFound:
        return Unreadable("record-missing")


