"""Objects of any size, and multipart uploads: sealed, tagged chunks and a manifest, in the subject's home region.

A record holds at most ``max_record_bytes``, read whole. An object written
through the S3 front that is larger than one chunk (``CHUNK_BYTES``, 8 MiB), or
that was uploaded in parts, is stored as chunks and a manifest instead, so
that memory does not grow with its size:

- each chunk is an object of at most ``CHUNK_BYTES`` under
  ``subjects/S/uploads/UPLOAD/...`` with a residency tag and seal of its own,
  bound to that exact key (a chunk copied or moved elsewhere fails its tag);
- the manifest is the record ``subjects/S/records/KEY`` itself, marked
  ``object-manifest``: canonical JSON of the object's size, SHA-256, ETag and
  its chunks' keys, sizes and SHA-256s, tagged, sealed, decided and ledgered
  like any record write (``record.write-intent``, ``record.written``).
  The object's SHA-256 (of all its bytes) is what an order's decision and its
  disclosure package name (``gateway.services.packaging``): a single put hashes
  the body as it streams, beside the MD5; completing a multipart upload reads
  the chosen parts' chunks back in order, each checked against its tag and
  SHA-256 as a read checks it, and hashes them (SHA-256 cannot be joined from
  the parts' own digests). A manifest written before it carried the SHA-256
  has none (``Manifest.sha256`` is None), and such an object is withheld from
  packages rather than sent unverified.
  The REST API sees the manifest as the record's body; legal holds and
  preservation orders hold the record, and so the object.

A read is decided and ledgered as a record read (the manifest's), then sends
the chunks in order, each read whole and checked against its tag and the
manifest's SHA-256 before any of its bytes is sent; a chunk that fails is a
residency violation (ledgered, counted) and the transfer stops there.

A multipart upload keeps its state in the same region: ``.../UPLOAD/upload``
(the object key, category, who began it and when) and one record per part
(``.../UPLOAD/part-NNNNN``: its MD5, size, checksums and chunks). Nothing is
kept in a process, so an upload survives a restart and may be continued
through any replica. Completing writes the manifest over the parts' chunks and
removes the upload's state; aborting removes the state and every chunk.
An upload that is never completed nor aborted keeps its chunks until it is
aborted: by its client (``ListMultipartUploads`` finds it), or by an operator
for every upload older than some age (``gateway s3 abort-uploads``).

Every act is decided first (the residency decision of a write to the subject,
or of a read for the listings) and ledgered before it takes effect, as record
writes are: ``s3.upload-intent`` / ``s3.upload-created``, ``s3.part-intent`` /
``s3.part-written``, ``s3.abort-intent`` / ``s3.upload-aborted``,
``s3.chunks-intent`` (a large single put) and ``s3.upload-completed``.
A body that fails its checks part-way leaves no visible object: the chunks
already written are removed and the intent is closed with ``record.write-failed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.canonical import canonical, sha256_hex
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.model import Caller, ResidencyDecision, ResidencyTag, Subject, isoformat
from gateway.services.records import (
    ETAG_METADATA,
    MANIFEST_METADATA,
    NO_PRECONDITION,
    Precondition,
    ReadResult,
    RecordService,
    _read_entry,
    _require_service,
    record_key,
    subject_prefix,
    who,
)
from gateway.stores import ObjectCorrupt, ObjectNotFound, RecordStore
from gateway.tags import TagViolation

log = logging.getLogger("gateway.objects")

CHUNK_BYTES = 8 * 1024 * 1024  # the most one stored chunk holds, and so about the memory one transfer needs
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
MAX_PARTS = 10_000
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\Z")


class NoSuchUpload(NotFound):
    code = "no-such-upload"


class InvalidPart(InvalidRequest):
    """A part list that names a part not uploaded, or with another ETag (S3 ``InvalidPart``)."""

    code = "invalid-part"


class InvalidPartOrder(InvalidRequest):
    code = "invalid-part-order"


class EntityTooSmall(InvalidRequest):
    code = "entity-too-small"


@dataclass(frozen=True)
class Chunk:
    key: str  # the store key
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    size: int
    etag: str  # as S3 clients check it: the MD5 of the body, or the multipart form (MD5 of the parts' MD5s, "-N")
    chunks: tuple[Chunk, ...]
    sha256: str | None = None  # of the whole object's bytes; None in a manifest written before manifests carried it

    def to_bytes(self) -> bytes:
        data = {"object": "chunked", "size": self.size, "etag": self.etag, "chunks": [c.to_json() for c in self.chunks]}
        return canonical(data if self.sha256 is None else {**data, "sha256": self.sha256})

    @classmethod
    def parse(cls, body: bytes) -> Manifest:
        data = json.loads(body)
        chunks = tuple(Chunk(str(c["key"]), str(c["sha256"]), int(c["size"])) for c in data["chunks"])
        return cls(int(data["size"]), str(data["etag"]), chunks, None if data.get("sha256") is None else str(data["sha256"]))


@dataclass(frozen=True)
class Part:
    number: int
    md5: str  # hex
    size: int
    checksums: Mapping[str, str]  # x-amz-checksum-* header name -> base64 value, as verified on upload
    chunks: tuple[Chunk, ...]
    at: str

    def to_bytes(self) -> bytes:
        chunks = [c.to_json() for c in self.chunks]
        return canonical({"part": self.number, "md5": self.md5, "size": self.size, "checksums": dict(self.checksums), "chunks": chunks, "at": self.at})

    @classmethod
    def parse(cls, body: bytes) -> Part:
        data = json.loads(body)
        chunks = tuple(Chunk(str(c["key"]), str(c["sha256"]), int(c["size"])) for c in data["chunks"])
        return cls(int(data["part"]), str(data["md5"]), int(data["size"]), dict(data["checksums"]), chunks, str(data["at"]))


@dataclass(frozen=True)
class Upload:
    id: str
    key: str
    category: str
    initiated: str
    extra: Mapping[str, str] = field(default_factory=dict)  # what the object's record stores beside its tag (S3 user metadata)

    @classmethod
    def parse(cls, upload: str, body: bytes) -> Upload:
        data = json.loads(body)
        return cls(upload, str(data["key"]), str(data["category"]), str(data["initiated"]), {str(k): str(v) for k, v in data.get("extra", {}).items()})


@dataclass(frozen=True)
class Written:
    etag: str  # quoted, as the ETag header carries it
    size: int


def uploads_prefix(subject: str) -> str:
    return f"{subject_prefix(subject)}uploads/"


def _upload_key(subject: str, upload: str) -> str:
    return f"{uploads_prefix(subject)}{upload}/upload"


def _part_key(subject: str, upload: str, number: int) -> str:
    return f"{uploads_prefix(subject)}{upload}/part-{number:05d}"


async def read_chunk(records: RecordService, region: str, subject: str, key: str, chunk: Chunk) -> bytes:
    """A chunk of the object ``key``, checked against its tag (bound to its own key) and the SHA-256 its manifest names;
    ``TagViolation`` if it fails or is gone (``chunk-missing``)."""
    try:
        obj = await records._op(region, "get", lambda: records.stores[region].get(chunk.key))
    except ObjectNotFound:
        raise TagViolation("chunk-missing", f"chunk `{chunk.key}` of `{key}` is missing") from None
    except ObjectCorrupt:
        raise TagViolation("chunk-corrupt", f"chunk `{chunk.key}` of `{key}` cannot be read back") from None
    records.check_tag(obj.metadata, region=region, subject=subject, key=chunk.key, body=obj.body)
    if sha256_hex(obj.body) != chunk.sha256:
        raise TagViolation("tag-content-mismatch", f"chunk `{chunk.key}` is not the one the manifest of `{key}` names")
    return obj.body


def multipart_etag(md5s: list[str]) -> str:
    return f'"{hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"'


@dataclass(frozen=True)
class _Act:
    """An allowed act on a subject's data: who, on what, where, under which decision and facts."""

    caller: Caller
    subject: Subject
    decision: ResidencyDecision
    profile_sha256: str

    @property
    def region(self) -> str:
        return self.subject.home_region

    def entry(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        return _read_entry(self.caller, self.subject, self.decision, extra, profile_sha256=self.profile_sha256)


class ObjectService:
    def __init__(self, records: RecordService) -> None:
        self.records = records
        self.audit = records.audit

    # --- shared ---------------------------------------------------------------

    async def _act(self, caller: Caller, subject_id: str, kind: str, extra: Mapping[str, Any]) -> _Act:
        """The decision for an act on the subject's data; a refusal is ledgered and raised (451, as for records)."""
        _require_service(caller)
        await self.records._live_profile(subject_id)
        profile, decision = await self.records._governed(caller, subject_id, kind, extra)
        return _Act(caller, profile.subject, decision, profile.sha256)

    def _store(self, region: str) -> RecordStore:
        return self.records.stores[region]

    async def _intent(self, kind: str, data: Mapping[str, Any]) -> int:
        return int((await self.audit.record(kind, data))["seq"])

    async def _write_chunks(
        self, act: _Act, category: str, prefix: str, pieces: AsyncIterator[bytes], written: list[Chunk], before_first: Callable[[], Awaitable[None]]
    ) -> tuple[str, str, int, bytes]:
        """Store ``pieces`` as chunks of ``CHUNK_BYTES`` named ``prefix/NNNNN``, appending each to ``written`` once stored,
        after awaiting ``before_first`` once; (MD5 hex, SHA-256 hex, size, the bytes after the last full chunk, not stored yet)."""
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        size = 0
        buffer = bytearray()
        async for piece in pieces:
            md5.update(piece)
            sha256.update(piece)
            size += len(piece)
            buffer += piece
            while len(buffer) > CHUNK_BYTES:  # more than a chunk: store one, keep the rest until the body ends
                if not written:
                    await before_first()
                await self._put_chunk(act, category, f"{prefix}/{len(written):05d}", bytes(memoryview(buffer)[:CHUNK_BYTES]), written)
                del buffer[:CHUNK_BYTES]
        return md5.hexdigest(), sha256.hexdigest(), size, bytes(buffer)

    async def _put_chunk(self, act: _Act, category: str, key: str, data: bytes, written: list[Chunk]) -> None:
        tag, metadata = self.records._tagged(act.region, act.subject.id, key, category, data)
        await self.records._op(act.region, "put", lambda: self._store(act.region).put(key, data, metadata, if_absent=True))
        written.append(Chunk(key, tag.sha256, tag.size))

    async def _discard(self, region: str, keys: list[str]) -> None:
        """Remove chunks or state that nothing refers to any more (best effort: what stays is under its upload's prefix)."""
        for key in keys:
            with contextlib.suppress(GatewayError):
                await self.records._op(region, "delete", lambda key=key: self._store(region).delete(key))

    async def _stored_manifest(self, region: str, subject: str, key: str) -> Manifest | None:
        """The manifest the record holds now, if it is one (to remove its chunks once it is replaced or deleted)."""
        try:
            obj = await self.records._op(region, "get", lambda: self._store(region).get(record_key(subject, key)))
        except GatewayError:
            return None
        if obj.metadata.get(MANIFEST_METADATA) != "1":
            return None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return Manifest.parse(obj.body)
        return None

    async def _replace(
        self, act: _Act, key: str, category: str, body: bytes, manifest: Manifest | None, precondition: Precondition, extra: Mapping[str, str]
    ) -> None:
        """Write the record (``body``, or ``manifest`` for a chunked object; decided, ledgered; over the version
        ``precondition`` names), then remove the chunks of a manifest it replaced."""
        old = await self._stored_manifest(act.region, act.subject.id, key)
        if manifest is None:
            await self.records.put_record(act.caller, act.subject.id, key, category, body, precondition=precondition, extra=extra)
        else:
            written = manifest.to_bytes()
            await self.records.put_record(
                act.caller, act.subject.id, key, category, written, precondition=precondition, extra=extra, object_size=manifest.size
            )
        if old is not None:
            await self._discard(act.region, [c.key for c in old.chunks])

    async def _failed(self, intent: int | None, error: BaseException, region: str, written: list[Chunk]) -> None:
        """A body that failed part-way, or a store that failed: remove its chunks and close the intent."""
        await self._discard(region, [c.key for c in written])
        if intent is not None:
            await self.records._failed(intent, error.code if isinstance(error, GatewayError) else "body-refused")

    # --- whole objects ------------------------------------------------------------

    async def put_object(
        self,
        caller: Caller,
        subject_id: str,
        key: str,
        category: str,
        pieces: AsyncIterator[bytes],
        *,
        precondition: Precondition = NO_PRECONDITION,
        extra: Mapping[str, str] | None = None,
    ) -> Written:
        """Store an object of any size: a record when it fits in one chunk (and the record limit), else chunks and a manifest.

        ``pieces`` may raise part-way (a body that fails its checks): then no object is visible and the chunks stored are
        removed. ``precondition`` is checked when the record is written, after the body; ``extra`` is stored beside the tag.
        """
        act = await self._act(caller, subject_id, "record.write", {"key": key})
        upload = secrets.token_hex(16)
        written: list[Chunk] = []
        intent: int | None = None

        async def announce() -> None:
            nonlocal intent
            intent = await self._intent("s3.chunks-intent", act.entry({"key": key, "category": category, "upload": upload}))

        try:
            md5, sha256, size, tail = await self._write_chunks(act, category, f"{uploads_prefix(act.subject.id)}{upload}/whole", pieces, written, announce)
        except BaseException as error:
            await self._failed(intent, error, act.region, written)
            raise
        etag = f'"{md5}"'
        extra = {**(extra or {}), ETAG_METADATA: etag}  # for listings
        if not written and size <= self.records.config.limits.max_record_bytes:
            await self._replace(act, key, category, tail, None, precondition, extra)
            return Written(etag, size)
        try:
            if not written:
                await announce()
            if tail:
                await self._put_chunk(act, category, f"{uploads_prefix(act.subject.id)}{upload}/whole/{len(written):05d}", tail, written)
            await self._replace(act, key, category, b"", Manifest(size, etag, tuple(written), sha256), precondition, extra)
        except BaseException as error:
            await self._failed(intent, error, act.region, written)
            raise
        return Written(etag, size)

    async def read(self, caller: Caller, subject_id: str, key: str) -> tuple[ReadResult, Manifest | None]:
        """The record read (decided, ledgered as ``service.read``), and its manifest when it is a chunked object."""
        result = await self.records.get_record(caller, subject_id, key)
        if not result.manifest:
            return result, None
        try:
            return result, Manifest.parse(result.body)
        except (ValueError, KeyError, TypeError):
            subject = await self.records.subject(subject_id, caller)
            violation = TagViolation("manifest-malformed", f"the manifest of `{key}` cannot be read")
            raise await self.records._violation(caller, subject, key, subject.home_region, violation) from None

    async def chunks(self, caller: Caller, subject_id: str, key: str, manifest: Manifest, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of a chunked object, a chunk at a time; each chunk is checked against its tag
        and the manifest before any of it is yielded. A chunk that fails is a ledgered residency violation, raised."""
        subject = await self.records.subject(subject_id, caller)
        region = subject.home_region
        offset = 0
        for chunk in manifest.chunks:
            first, offset = offset, offset + chunk.size
            if offset <= start or first >= end:
                continue
            try:
                body = await read_chunk(self.records, region, subject.id, key, chunk)
            except TagViolation as violation:
                raise await self.records._violation(caller, subject, key, region, violation) from None
            if start <= first and offset <= end:
                yield body  # the whole chunk: no copy
            else:
                yield body[max(start - first, 0) : min(end - first, chunk.size)]

    async def delete(self, caller: Caller, subject_id: str, key: str, *, precondition: Precondition = NO_PRECONDITION) -> None:
        """Delete an object: the record (decided, ledgered; a legal hold refuses it), then the chunks of its manifest."""
        act = await self._act(caller, subject_id, "record.delete", {"key": key})
        manifest = await self._stored_manifest(act.region, act.subject.id, key)
        await self.records.delete_record(caller, act.subject.id, key, precondition=precondition)
        if manifest is not None:
            await self._discard(act.region, [c.key for c in manifest.chunks])
            await self.audit.record("s3.chunks-deleted", act.entry({"key": key, "chunks": len(manifest.chunks)}))

    async def put_record(
        self, caller: Caller, subject_id: str, key: str, category: str | None, body: bytes, *, precondition: Precondition = NO_PRECONDITION
    ) -> tuple[ResidencyTag, bool]:
        """``RecordService.put_record`` (the HTTP API's write), then the chunks of a chunked object it replaced are removed:
        a record written over a large S3 object leaves none of the object's bytes behind."""
        region = await self.records.home_region(subject_id)
        old = None if region is None else await self._stored_manifest(region, subject_id, key)
        written = await self.records.put_record(caller, subject_id, key, category, body, precondition=precondition)
        if old is not None and region is not None:
            await self._discard(region, [c.key for c in old.chunks])
        return written

    # --- multipart uploads ----------------------------------------------------------

    async def create_upload(self, caller: Caller, subject_id: str, key: str, category: str, extra: Mapping[str, str] | None = None) -> str:
        """Begin an upload of ``key``; ``extra``: what its record will store beside the tag once completed."""
        act = await self._act(caller, subject_id, "record.write", {"key": key})
        upload = secrets.token_hex(16)
        initiated = isoformat(self.records.clock())
        state = canonical({"upload": upload, "key": key, "category": category, "by": who(caller), "initiated": initiated, "extra": dict(extra or {})})
        object_key = _upload_key(act.subject.id, upload)
        intent = await self._intent("s3.upload-intent", {**act.entry({"key": key, "category": category, "upload": upload}), "object": object_key})
        put = self._store(act.region).put
        await self.records._in_store(intent, lambda: self.records._op(act.region, "put", lambda: put(object_key, state, {}, if_absent=True)))
        await self.records._outcome("s3.upload-created", {"intent": intent, "upload": upload, "subject": act.subject.id, "key": key}, act.region)
        return upload

    async def _upload(self, act: _Act, upload: str, key: str) -> Upload:
        """The upload's state, which must be for ``key``; ``NoSuchUpload`` otherwise."""
        if not UPLOAD_ID.match(upload):
            raise NoSuchUpload(f"no upload `{upload}`")
        try:
            obj = await self.records._op(act.region, "get", lambda: self._store(act.region).get(_upload_key(act.subject.id, upload)))
        except ObjectNotFound:
            raise NoSuchUpload(f"no upload `{upload}` of `{key}`: it was completed or aborted, or never begun") from None
        state = Upload.parse(upload, obj.body)
        if state.key != key:
            raise NoSuchUpload(f"upload `{upload}` is not of `{key}`")
        return state

    async def _parts(self, act: _Act, upload: str) -> dict[int, Part]:
        prefix = f"{uploads_prefix(act.subject.id)}{upload}/"
        keys = await self.records._op(act.region, "list", lambda: self._store(act.region).list(prefix))
        wanted = [k for k in keys if re.fullmatch(r"part-\d{5}", k[len(prefix) :])]
        found: dict[int, Part] = {}
        for object_key in wanted:
            with contextlib.suppress(ObjectNotFound):
                obj = await self.records._op(act.region, "get", lambda object_key=object_key: self._store(act.region).get(object_key))
                part = Part.parse(obj.body)
                found[part.number] = part
        return found

    async def upload_part(
        self, caller: Caller, subject_id: str, key: str, upload: str, number: int, pieces: AsyncIterator[bytes], checksums: Callable[[], Mapping[str, str]]
    ) -> Part:
        """Store one part (a part uploaded again replaces the earlier one); ``checksums()`` gives the verified checksums
        once ``pieces`` has ended."""
        if not 1 <= number <= MAX_PARTS:
            raise InvalidRequest(f"a part number is 1 to {MAX_PARTS}", code="invalid-part-number")
        act = await self._act(caller, subject_id, "record.write", {"key": key})
        state = await self._upload(act, upload, key)
        part_key = _part_key(act.subject.id, upload, number)
        intent = await self._intent("s3.part-intent", {**act.entry({"key": key, "upload": upload, "part": number}), "object": part_key})
        written: list[Chunk] = []

        async def nothing() -> None:
            return None

        attempt = secrets.token_hex(4)  # a part sent again writes its chunks beside the earlier ones', then replaces them
        prefix = f"{part_key}-{attempt}"
        try:
            md5, _, size, tail = await self._write_chunks(act, state.category, prefix, pieces, written, nothing)
            if tail or not written:
                await self._put_chunk(act, state.category, f"{prefix}/{len(written):05d}", tail, written)
            part = Part(number, md5, size, dict(checksums()), tuple(written), isoformat(self.records.clock()))
            store = self._store(act.region)
            try:
                old = Part.parse((await self.records._op(act.region, "get", lambda: store.get(part_key))).body)
            except ObjectNotFound:
                old = None
            await self.records._op(act.region, "put", lambda: store.put(part_key, part.to_bytes(), {}))
        except BaseException as error:
            await self._failed(intent, error, act.region, written)
            raise
        if old is not None:
            await self._discard(act.region, [c.key for c in old.chunks])
        outcome = {"intent": intent, "upload": upload, "part": number, "md5": md5, "size": size, "chunks": [c.sha256 for c in written]}
        await self.records._outcome("s3.part-written", outcome, act.region)
        return part

    async def complete(self, caller: Caller, subject_id: str, key: str, upload: str, listed: list[tuple[int, str]]) -> Written:
        """Join the listed parts (number, ETag), in ascending order, into the object; every part but the last at least 5 MiB."""
        act = await self._act(caller, subject_id, "record.write", {"key": key})
        state = await self._upload(act, upload, key)
        if not listed:
            raise InvalidRequest("the part list is empty", code="malformed-xml")
        numbers = [n for n, _ in listed]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder("the list of parts was not in ascending order; parts must be listed in order by part number")
        parts = await self._parts(act, upload)
        chosen: list[Part] = []
        for number, etag in listed:
            part = parts.get(number)
            if part is None or etag.strip('"') != part.md5:
                raise InvalidPart(f"part {number} was not uploaded, or its ETag is not `{etag}`")
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise EntityTooSmall(f"part {part.number} is {part.size} bytes; every part but the last must be at least {MIN_PART_BYTES}")
        etag = multipart_etag([p.md5 for p in chosen])
        size = sum(p.size for p in chosen)
        chunks = tuple(c for p in chosen for c in p.chunks)
        manifest = Manifest(size, etag, chunks, await self._whole_sha256(act, key, chunks))
        await self._replace(act, key, state.category, b"", manifest, NO_PRECONDITION, {**state.extra, ETAG_METADATA: etag})
        unused = [c.key for n, p in parts.items() if n not in set(numbers) for c in p.chunks]
        await self._discard(act.region, [*unused, *(_part_key(act.subject.id, upload, n) for n in parts), _upload_key(act.subject.id, upload)])
        await self.audit.record("s3.upload-completed", act.entry({"key": key, "upload": upload, "parts": len(chosen), "size": size, "etag": etag}))
        return Written(etag, size)

    async def _whole_sha256(self, act: _Act, key: str, chunks: tuple[Chunk, ...]) -> str:
        """The SHA-256 of the object the chunks make, read back in order, a chunk at a time, each checked as a read checks it
        (a chunk that fails is a ledgered residency violation, raised, and the upload stays as it was)."""
        digest = hashlib.sha256()
        for chunk in chunks:
            try:
                digest.update(await read_chunk(self.records, act.region, act.subject.id, key, chunk))
            except TagViolation as violation:
                raise await self.records._violation(act.caller, act.subject, key, act.region, violation) from None
        return digest.hexdigest()

    async def abort(self, caller: Caller, subject_id: str, key: str, upload: str) -> None:
        """Abort an upload: its parts' chunks, its parts and its state are removed (intent first, outcome after)."""
        act = await self._act(caller, subject_id, "record.delete", {"key": key})
        await self._upload(act, upload, key)
        await self._remove_upload(act.region, act.subject.id, upload, act.entry({"key": key, "upload": upload}))

    async def abort_older(self, older_than: timedelta, *, by: str) -> list[Upload]:
        """Abort every upload begun more than ``older_than`` ago, in every region (an operator's act; lists every store).

        Each is ledgered as an abort (``s3.abort-intent`` naming the operator, then ``s3.upload-aborted``); the
        uploads aborted are returned."""
        operator = {"principal": by, "role": "operator"}
        cutoff = self.records.clock() - older_than
        aborted: list[Upload] = []
        for region, store in self.records.stores.items():
            for object_key in await self.records._op(region, "list", lambda store=store: store.list("subjects/")):
                parts = object_key.split("/")
                if len(parts) != 5 or parts[2] != "uploads" or parts[4] != "upload":
                    continue
                try:
                    obj = await self.records._op(region, "get", lambda object_key=object_key, store=store: store.get(object_key))
                    upload = Upload.parse(parts[3], obj.body)
                    stale = datetime.fromisoformat(upload.initiated) < cutoff
                except ObjectNotFound:
                    continue  # completed or aborted meanwhile
                except (ValueError, KeyError, TypeError):
                    upload, stale = Upload(parts[3], "", "", ""), True  # an unreadable state is no upload anyone can finish
                if stale:
                    entry = {"subject": parts[1], "region": region, "key": upload.key, "upload": upload.id, "by": operator, "initiated": upload.initiated}
                    await self._remove_upload(region, parts[1], upload.id, entry)
                    aborted.append(upload)
        return aborted

    async def _remove_upload(self, region: str, subject: str, upload: str, entry: Mapping[str, Any]) -> None:
        """Remove an upload's chunks, parts and, last, its state: intent first, outcome after."""
        prefix = f"{uploads_prefix(subject)}{upload}/"
        intent = await self._intent("s3.abort-intent", {**entry, "object": prefix})
        store = self._store(region)
        keys = await self.records._op(region, "list", lambda: store.list(prefix))
        state = _upload_key(subject, upload)
        await self._discard(region, [k for k in keys if k != state])
        with contextlib.suppress(ObjectNotFound):  # aborted meanwhile by another request
            await self.records._in_store(intent, lambda: self.records._op(region, "delete", lambda: store.delete(state)))
        await self.records._outcome("s3.upload-aborted", {"intent": intent, "upload": upload, "subject": subject, "key": entry.get("key")}, region)

    async def list_parts(self, caller: Caller, subject_id: str, key: str, upload: str) -> tuple[Upload, list[Part]]:
        act = await self._act(caller, subject_id, "service.list", {"key": key, "upload": upload})
        state = await self._upload(act, upload, key)
        parts = await self._parts(act, upload)
        await self.audit.record("s3.parts-listed", act.entry({"key": key, "upload": upload, "count": len(parts)}))
        return state, [parts[n] for n in sorted(parts)]

    async def list_uploads(self, caller: Caller, subject_id: str) -> list[Upload]:
        """The subject's uploads in progress, by key then start time."""
        act = await self._act(caller, subject_id, "service.list", {})
        prefix = uploads_prefix(act.subject.id)
        keys = await self.records._op(act.region, "list", lambda: self._store(act.region).list(prefix))
        found: list[Upload] = []
        for object_key in keys:
            upload, _, rest = object_key[len(prefix) :].partition("/")
            if rest != "upload":
                continue
            with contextlib.suppress(NoSuchUpload, ObjectNotFound):
                obj = await self.records._op(act.region, "get", lambda object_key=object_key: self._store(act.region).get(object_key))
                found.append(Upload.parse(upload, obj.body))
        await self.audit.record("s3.uploads-listed", act.entry({"count": len(found)}))
        return sorted(found, key=lambda u: (u.key, u.initiated))
