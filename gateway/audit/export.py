"""Closed ledger segments kept off the box, in an S3 bucket with Object Lock.

A closed segment is the lines after one ``ledger.checkpoint`` entry up to and
including the next one; it ends with the provider's signature over its last
hash and links to the segment before it, so it can be checked on its own. Each
is uploaded once as ``segments/<chain>/<first-seq>-<last-seq>.jsonl`` (the
default chain, a ledger from before chain ids, keeps the layout it had:
``segments/<first-seq>-<last-seq>.jsonl``) with Object Lock retention
(``COMPLIANCE`` by default): the store then refuses to delete the locked
version or shorten its retention, and an overwrite only stacks a new version
on top of it (the exporter itself never overwrites: it writes with
``If-None-Match: *``). Every writer's chain has its own folder, so the
bucket holds the whole ledger: every replica's and every worker's chain.

How much of a chain is only on the local disk is bounded by time: with an
export, the writer closes its open segment with a checkpoint at least every
``[audit] export_interval_seconds`` (30 s) while new entries come, and each
checkpoint wakes the uploader. Closing a segment on a timer was chosen over
uploading the open tail as a provisional object: a segment stays what it
was, complete, signed and written once, so nothing is ever replaced in a
bucket where every version is kept for years, and readers never have to tell
a provisional copy from the final one. The cost is one checkpoint entry and
one object per interval with new entries (none while the chain is idle).

boto3 runs in a thread pool owned by the exporter, never on the event loop;
botocore's errors become ``ExportError`` here and nowhere else.

``SegmentUploader`` is the runtime's background side: told of each checkpoint,
it uploads whatever closed segments are new, logs a failure and retries later.
It never blocks an append. ``SegmentBucket`` reads the bucket back: every
chain found there, for ``gateway audit verify --remote`` and the
transparency report, and ``verify_segments`` checks one chain's segments
alone, as a whole chain, for a replica whose disk is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit.chain import CHECKPOINT, DEFAULT_CHAIN, GENESIS, HEAD, ChainReport, check_chain_id, verify_lines
from gateway.config import AuditExport
from gateway.errors import LedgerBroken, StoreError
from gateway.model import Clock
from gateway.s3client import call_off_loop, describe, http_status, make_client

log = logging.getLogger("gateway.audit.export")

T = TypeVar("T")
PREFIX = "segments/"
# segments/<chain>/<first>-<last>.jsonl, or segments/<first>-<last>.jsonl for the default chain
SEGMENT_KEY = re.compile(r"^segments/(?:([A-Za-z0-9][A-Za-z0-9._-]{0,99})/)?([0-9]+)-([0-9]+)\.jsonl\Z")
# Uploads run in the background and never delay a request, so they may wait longer than a
# region's calls: 2 s to connect, 10 s for each read, 3 attempts (the first included), no deadline.
EXPORT_CONNECT_TIMEOUT = 2.0
EXPORT_READ_TIMEOUT = 10.0
EXPORT_MAX_ATTEMPTS = 3


class ExportError(StoreError):
    """The off-box copy of the ledger could not be read or written."""

    code = "audit-export-failed"


@dataclass(frozen=True, slots=True)
class Segment:
    """Lines ``first``..``last`` of a chain (``last`` is a checkpoint entry), with their bytes."""

    first: int
    last: int
    body: bytes
    chain: str = DEFAULT_CHAIN

    @property
    def key(self) -> str:
        return segment_key(self.first, self.last, self.chain)


def chain_prefix(chain: str) -> str:
    """Where a chain's segments are kept: ``segments/<chain>/`` (``segments/`` for the default chain)."""
    return PREFIX if chain == DEFAULT_CHAIN else f"{PREFIX}{check_chain_id(chain)}/"


def segment_key(first: int, last: int, chain: str = DEFAULT_CHAIN) -> str:
    return f"{chain_prefix(chain)}{first}-{last}.jsonl"


def parse_segment_key(key: str) -> tuple[str, int, int] | None:
    """``(chain, first, last)`` of a segment's key, or None if it names none."""
    match = SEGMENT_KEY.match(key)
    if match is None or match.group(1) == DEFAULT_CHAIN:  # the default chain has no folder: one named so is not the exporter's
        return None
    return match.group(1) or DEFAULT_CHAIN, int(match.group(2)), int(match.group(3))


def closed_segments(
    lines: Iterator[bytes] | list[bytes], *, first_seq: int = 1, signed_only: bool = False, chain: str = DEFAULT_CHAIN
) -> Iterator[tuple[Segment, int]]:
    """Closed segments of ledger ``lines`` that start at entry ``first_seq``, each with its size in bytes.

    Pure: only complete lines count, and a segment ends at a checkpoint entry.
    Lines after the last checkpoint are an open segment and are not returned.
    With ``signed_only`` a segment is returned only once a signed head at or
    after its end has been read: lines after the last signed head may be a
    batch still being written, which a crash would leave without its head
    (and the writer would then move aside).
    """
    seq = first_seq - 1
    start = first_seq
    buffer: list[bytes] = []
    closed: list[tuple[Segment, int]] = []
    for line in lines:
        if not line.endswith(b"\n"):
            return
        seq += 1
        buffer.append(line)
        try:
            value = json.loads(line)
        except ValueError:
            return
        if value.get("kind") == CHECKPOINT:
            body = b"".join(buffer)
            closed.append((Segment(start, seq, body, chain), len(body)))
            buffer, start = [], seq + 1
        if closed and (not signed_only or HEAD in value):
            yield from closed
            closed = []


class SegmentBucket:
    """The Object Lock bucket ``spec.bucket`` of exported segments: every chain's, read back.

    ``client`` lets a caller pass a ready boto3 S3 client (the caller owns it);
    otherwise the bucket makes its own on first use.
    """

    def __init__(self, spec: AuditExport, clock: Clock, *, client: Any = None) -> None:
        self.spec = spec
        self.clock = clock
        self._client: Any = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="audit-export")
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create the bucket with Object Lock if it is missing; refuse one without Object Lock."""

        def ensure(client: Any) -> None:
            try:
                client.head_bucket(Bucket=self.spec.bucket)
            except Exception as exc:
                if http_status(exc) != 404:
                    raise
                params: dict[str, Any] = {"Bucket": self.spec.bucket, "ObjectLockEnabledForBucket": True}
                if self.spec.region_name != "us-east-1":
                    params["CreateBucketConfiguration"] = {"LocationConstraint": self.spec.region_name}
                client.create_bucket(**params)
            answer = client.get_object_lock_configuration(Bucket=self.spec.bucket)
            if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
                raise ExportError(
                    f"bucket `{self.spec.bucket}` has no S3 Object Lock; the ledger's segments must be kept in one that has",
                    code="object-lock-unavailable",
                )

        await self._call("prepare the bucket", ensure)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client and self._client is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- reading back -------------------------------------------------------------------

    async def remote_chains(self) -> dict[str, list[tuple[int, int]]]:
        """``{chain: [(first, last), ...]}`` of every segment in the bucket, each chain's in order."""

        def collect(client: Any) -> dict[str, list[tuple[int, int]]]:
            found: dict[str, list[tuple[int, int]]] = {}
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.spec.bucket, Prefix=PREFIX):
                for item in page.get("Contents", []):
                    parsed = parse_segment_key(item["Key"])
                    if parsed is not None:
                        found.setdefault(parsed[0], []).append(parsed[1:])
            return {chain: sorted(spans) for chain, spans in sorted(found.items())}

        return await self._call("list segments", collect)

    async def chain_segments(self, chain: str) -> list[tuple[int, int]]:
        """``(first, last)`` of every segment of ``chain`` in the bucket, in order (one listing of its folder)."""
        prefix = chain_prefix(chain)
        # the default chain's segments sit at the top of `segments/`: the other chains' folders are left unlisted
        paging: dict[str, str] = {"Delimiter": "/"} if chain == DEFAULT_CHAIN else {}

        def collect(client: Any) -> list[tuple[int, int]]:
            found = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.spec.bucket, Prefix=prefix, **paging):
                for item in page.get("Contents", []):
                    parsed = parse_segment_key(item["Key"])
                    if parsed is not None and parsed[0] == chain:
                        found.append(parsed[1:])
            return sorted(found)

        return await self._call("list segments", collect)

    async def fetch(self, key: str) -> bytes:
        def get(client: Any) -> bytes:
            answer = client.get_object(Bucket=self.spec.bucket, Key=key)
            with answer["Body"] as stream:
                return bytes(stream.read())

        return await self._call(f"read `{key}`", get)

    async def fetch_chain(self, chain: str, spans: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The bytes of the segments ``spans`` of ``chain``, fetched a few at a time."""
        limit = asyncio.Semaphore(4)

        async def one(span: tuple[int, int]) -> bytes:
            async with limit:
                return await self.fetch(segment_key(*span, chain))

        bodies = await asyncio.gather(*(one(span) for span in spans))
        return dict(zip(spans, bodies, strict=True))

    async def retention(self, key: str) -> tuple[str | None, Any]:
        """``(mode, retain_until)`` of the current version (from HEAD: S3's retention call is not needed)."""
        answer = await self._call(f"inspect `{key}`", lambda c: c.head_object(Bucket=self.spec.bucket, Key=key))
        return answer.get("ObjectLockMode"), answer.get("ObjectLockRetainUntilDate")

    # --- boto3 off the loop ---------------------------------------------------------------

    async def _call(self, operation: str, work: Callable[[Any], T]) -> T:
        if self._closed:
            raise ExportError(f"the audit ledger exporter is closed; cannot {operation}")
        return await call_off_loop(self._executor, lambda: work(self._client_now()), lambda exc: self._failed(operation, exc))

    def _failed(self, operation: str, exc: Exception) -> ExportError:
        return ExportError(f"could not {operation} in audit bucket `{self.spec.bucket}`: {describe(exc)}", bucket=self.spec.bucket)

    def _client_now(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(
                    self.spec.region_name,
                    self.spec.endpoint_url,
                    connect_timeout=EXPORT_CONNECT_TIMEOUT,
                    read_timeout=EXPORT_READ_TIMEOUT,
                    max_attempts=EXPORT_MAX_ATTEMPTS,
                )
            return self._client


class SegmentExporter(SegmentBucket):
    """Uploads the closed segments of one chain's ledger file to the bucket."""

    def __init__(self, spec: AuditExport, ledger_path: Path, clock: Clock, *, client: Any = None, chain: str = DEFAULT_CHAIN) -> None:
        super().__init__(spec, clock, client=client)
        self.ledger_path = ledger_path
        self.chain = check_chain_id(chain)
        self._lock = asyncio.Lock()
        self._offset = 0  # bytes of the local file already uploaded (whole segments)
        self._next_seq = 1  # first entry of the next segment to upload
        self._started = False

    # --- uploading ------------------------------------------------------------------

    async def upload_pending(self) -> list[str]:
        """Upload every closed segment not uploaded yet; return their keys.

        The first call lists the bucket to learn where the uploaded segments end.
        """
        async with self._lock:
            if not self._started:
                uploaded = await self.remote_segments()
                self._offset, self._next_seq = 0, 1
                if uploaded:
                    through = max(last for _, last in uploaded)
                    self._offset = await asyncio.to_thread(self._offset_after, through)
                    self._next_seq = through + 1
                self._started = True
            segments = await asyncio.to_thread(self._read_new)
            keys = []
            for segment, size in segments:
                await self._upload(segment)
                self._offset += size
                self._next_seq = segment.last + 1
                keys.append(segment.key)
                log.info("uploaded audit ledger segment %s", segment.key)
            return keys

    def _read_new(self) -> list[tuple[Segment, int]]:
        with open(self.ledger_path, "rb") as handle:
            handle.seek(self._offset)
            return list(closed_segments(iter(handle), first_seq=self._next_seq, signed_only=True, chain=self.chain))

    def _offset_after(self, seq: int) -> int:
        """Bytes of the local file up to and including entry ``seq``."""
        size = 0
        with open(self.ledger_path, "rb") as handle:
            for n, line in enumerate(handle, start=1):
                size += len(line)
                if n == seq:
                    return size
        raise LedgerBroken(f"the off-box copy of the ledger reaches entry {seq}, beyond the local ledger `{self.ledger_path}`")

    async def _upload(self, segment: Segment) -> None:
        retain_until = self.clock() + timedelta(days=self.spec.retention_days)
        md5 = base64.b64encode(hashlib.md5(segment.body, usedforsecurity=False).digest()).decode()
        params = {
            "Bucket": self.spec.bucket,
            "Key": segment.key,
            "Body": segment.body,
            "ContentMD5": md5,
            "ContentType": "application/x-ndjson",
            "IfNoneMatch": "*",
            "ObjectLockMode": self.spec.mode,
            "ObjectLockRetainUntilDate": retain_until,
            "Metadata": {
                "sha256": hashlib.sha256(segment.body).hexdigest(),
                "chain": segment.chain,
                "first-seq": str(segment.first),
                "last-seq": str(segment.last),
            },
        }
        try:
            await self._call(f"upload `{segment.key}`", lambda c: c.put_object(**params))
        except ExportError as exc:
            if http_status(exc.__cause__) != 412:
                raise
            # already there (another process uploaded it): it must be the same bytes
            existing = await self.fetch(segment.key)
            if existing != segment.body:
                raise ExportError(f"segment `{segment.key}` is already in bucket `{self.spec.bucket}` with other content", code="segment-mismatch") from None

    async def remote_segments(self) -> list[tuple[int, int]]:
        """``(first, last)`` of every segment of this exporter's chain in the bucket, in order."""
        return await self.chain_segments(self.chain)


class SegmentUploader:
    """Uploads new closed segments in the background: after each checkpoint, and again after a failure."""

    def __init__(self, exporter: SegmentExporter, *, retry_seconds: float = 30.0) -> None:
        self.exporter = exporter
        self.retry_seconds = retry_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._prepared = False
        self.failures = 0
        self.uploaded: list[str] = []

    def start(self) -> None:
        """Start the background task, which first uploads anything left from before."""
        if self._task is None:
            self._wake.set()
            self._task = asyncio.create_task(self._run(), name="audit-segment-uploader")

    def kick(self, _checkpoint: object = None) -> None:
        """A checkpoint was written: upload soon. Safe to pass as the ledger's ``on_checkpoint``."""
        self._wake.set()

    async def flush(self) -> list[str]:
        """Upload every closed segment not uploaded yet, now, in the caller's task (at shutdown); ``ExportError`` if it cannot."""
        if not self._prepared:
            await self.exporter.prepare()
            self._prepared = True
        keys = await self.exporter.upload_pending()
        self.uploaded.extend(keys)
        return keys

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                self.failures += 1
                log.warning("uploading audit ledger segments failed; retrying in %ss", self.retry_seconds, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.retry_seconds)
                self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.exporter.close()


def compare_with_remote(local: list[bytes], remote: dict[tuple[int, int], bytes], chain: str = DEFAULT_CHAIN) -> dict[str, Any]:
    """Compare the local lines of ``chain`` with its off-box segments ``{(first, last): bytes}``.

    Pure. A segment that reaches past the local end (entries cut off or deleted
    locally) or whose bytes differ from the local lines is a problem, reported at
    the first entry that differs; closed local segments not uploaded yet are
    only listed (uploads are best effort and retried).
    """
    problem: str | None = None
    broken_at: int | None = None
    verified = 0
    for first, last in sorted(remote):
        body = remote[(first, last)]
        key = segment_key(first, last, chain)
        remote_lines = body.splitlines(keepends=True)
        mine = local[first - 1 : last]
        if mine == remote_lines and len(remote_lines) == last - first + 1:
            verified += 1
            continue
        for offset in range(max(len(mine), len(remote_lines), last - first + 1)):
            here = mine[offset] if offset < len(mine) else None
            there = remote_lines[offset] if offset < len(remote_lines) else None
            if here != there or here is None:
                seq = first + offset
                if here is None:
                    problem = f"entry {seq}: missing from the local ledger, which ends at entry {len(local)}, but kept off the box in `{key}`"
                else:
                    problem = f"entry {seq}: differs from the copy kept off the box in `{key}`"
                break
        broken_at = first + offset
        break
    uploaded = {span[1] for span in remote}
    pending = [s.key for s, _ in closed_segments(local, chain=chain) if s.last not in uploaded]
    through = max(uploaded, default=0)  # entries after it are only on the local disk
    return {"segments": len(remote), "verified": verified, "through": through, "not_uploaded": pending, "problem": problem, "broken_at": broken_at}


def verify_segments(
    chain: str, segments: dict[tuple[int, int], bytes], public_key: ed25519.Ed25519PublicKey | None = None
) -> ChainReport:
    """Verify the off-box segments ``{(first, last): bytes}`` of ``chain`` alone, as one chain from its first entry.

    Pure. For a chain whose local file is gone (a replica removed with its
    disk), the bucket is all there is:

    1. the segments follow on from entry 1, with no gap and no overlap;
    2. each holds exactly the lines its key names, the last a checkpoint;
    3. their lines, in order, verify as one chain of ``chain`` (``verify_lines``:
       hashes, links, sequence, checkpoint and head signatures with ``public_key``).

    So with ``public_key`` the chain ends on a checkpoint whose signature
    verified, which covers every entry before it: a chain rebuilt without the
    key has none.
    """
    lines: list[bytes] = []
    expected = 1
    for first, last in sorted(segments):
        key = segment_key(first, last, chain)
        # (1)
        if first != expected:
            return _remote_broken(chain, expected, f"entry {expected}: `{key}` starts at entry {first}, not where the segment before it ends")
        # (2)
        body = segments[(first, last)].splitlines(keepends=True)
        if len(body) != last - first + 1:
            return _remote_broken(chain, first, f"entry {first}: `{key}` holds {len(body)} lines, not {last - first + 1}")
        try:
            closes = json.loads(body[-1]).get("kind") == CHECKPOINT
        except (ValueError, AttributeError):
            closes = False
        if not closes:
            return _remote_broken(chain, last, f"entry {last}: `{key}` does not end on a checkpoint")
        lines += body
        expected = last + 1
    # (3)
    return verify_lines(lines, public_key=public_key, chain=chain)


def _remote_broken(chain: str, at: int, problem: str) -> ChainReport:
    return ChainReport(False, 0, GENESIS, 0, problem, at, chain=chain)
