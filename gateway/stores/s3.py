"""``S3Store``: a region's objects in one S3 bucket (boto3; any S3-compatible endpoint).

How it keeps the port's rules:
- Every boto3 call runs in a thread pool owned by the store (one per region,
  so a slow region cannot starve the others' calls), never on the event loop.
- It fails fast: each call has the spec's per-attempt ``connect_timeout`` and
  ``read_timeout``, at most ``max_attempts`` attempts, and a ``deadline`` for
  the whole call, after which the caller gets ``StoreError`` (see
  ``gateway.s3client``).
- botocore's errors become ours here and nowhere else: a missing key is
  ``ObjectNotFound``, a failed ``If-None-Match`` is ``PreconditionFailed``,
  a missing bucket is ``StoreGone`` (so the store is prepared again), and
  anything else (access denied, unreachable endpoint, time-outs,
  unexpected answers) is ``StoreError`` naming the region and the operation,
  always chained to the botocore exception. (S3 answers a HEAD on a missing
  bucket with a bare 404, so ``head`` cannot tell it from a missing key;
  ``check()`` and every other call can.)
- Metadata is S3 user metadata. In addition, entries whose name starts with
  ``residency-`` are mirrored as S3 object tags, so bucket policies and
  lifecycle rules can match on them. S3 allows at most 10 tags of at most 256
  characters from a small alphabet, so an entry is mirrored only if its value
  is at most 256 characters of letters, digits, spaces and ``_ . : / = + - @``,
  and only the first 10 such entries in name order are; the rest stay in the
  metadata alone, which remains the source of truth.
- ``if_absent`` is a conditional write (``If-None-Match: *``), atomic on the
  server. The etag is S3's ETag, quotes included; ``if_match`` is a
  conditional write (``put_object(IfMatch=...)``) or delete
  (``delete_object(IfMatch=...)``), also atomic on the server: a stale etag is
  412, and a put whose key has gone is 404 ``NoSuchKey``, both
  ``PreconditionFailed`` here. S3's ETag of a single-part put is the MD5 of the
  body, so a put of the very same bytes keeps it: a compare-and-swap against it
  compares contents, which is what the gateway's records need (a record names
  the SHA-256 of its body). The hold check before a put or delete (below) reads
  the etag too and refuses a stale one early, but the server's check is the one
  that counts.
- Legal holds are S3 Object Lock legal holds on the current version; the bucket
  must have Object Lock enabled (``object_lock = true`` creates it so), or
  placing a hold is ``StoreError`` ``object-lock-unavailable``. Object Lock
  implies versioning, and in a versioned bucket an overwrite or a delete
  succeeds even when the current version is held (S3 keeps the held version).
  So ``put`` and ``delete`` first read the hold state and refuse with
  ``ObjectLocked``; a hold placed between that read and the write still
  preserves the held version in S3.
- ``delete`` removes the current object: in a versioned bucket that leaves a
  delete marker, and older versions remain until a lifecycle rule expires them.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode

from gateway.aio import all_or_first_error
from gateway.errors import GatewayError, StoreError
from gateway.model import S3StoreSpec
from gateway.s3client import call_off_loop, describe, error_code, http_status, make_client
from gateway.stores.base import (
    ObjectCorrupt,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    PreconditionFailed,
    StoredObject,
    StoreGone,
    validate_conditions,
    validate_key,
    validate_metadata,
    validate_prefix,
)

T = TypeVar("T")

TAG_PREFIX = "residency-"
MAX_TAGS = 10
MAX_TAG_VALUE = 256
TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]*\Z")
MAX_WORKERS = 32  # as many calls in flight as the client's connection pool holds (made this size)
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
NO_OBJECT_LOCK = "object-lock-unavailable"


def residency_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata entries mirrored as object tags (see the module docstring)."""
    eligible = sorted(
        (name, value) for name, value in metadata.items() if name.startswith(TAG_PREFIX) and len(value) <= MAX_TAG_VALUE and TAG_VALUE.match(value)
    )
    return dict(eligible[:MAX_TAGS])


class S3Store:
    """One region's objects in the bucket ``spec.bucket``.

    ``client`` lets a caller pass a ready boto3 S3 client (the caller then owns
    it and closes it); otherwise the store makes its own on first use, with
    ``region_name`` and ``endpoint_url`` from the spec, and closes it.
    """

    def __init__(self, region: str, spec: S3StoreSpec, *, client: Any = None) -> None:
        self.region = region
        self.spec = spec
        self.bucket = spec.bucket
        self._client: Any = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix=f"s3-{region}")
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------

    async def ensure_bucket(self) -> None:
        """Create the bucket in ``spec.region_name`` if it is missing.

        With ``create_bucket = false`` only check that it exists. With
        ``object_lock`` the bucket is created with Object Lock, and an existing
        bucket without it is refused (``object-lock-unavailable``).
        """
        if not self.spec.create_bucket:
            await self.check()
            return
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.spec.region_name != "us-east-1":  # S3 rejects us-east-1 as a location constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.spec.region_name}
        if self.spec.object_lock:
            params["ObjectLockEnabledForBucket"] = True
        try:
            await self._call("create bucket", None, lambda c: c.create_bucket(**params))
        except StoreError as exc:
            if error_code(exc.__cause__) != "BucketAlreadyOwnedByYou":
                raise
            if self.spec.object_lock:
                await self._require_object_lock()

    async def check(self) -> None:
        await self._call("check", None, lambda c: c.head_bucket(Bucket=self.bucket))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client and self._client is not None:
            client = self._client
            await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- the port ----------------------------------------------------------------

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        validate_key(key)
        clean = validate_metadata(metadata)
        validate_conditions(if_absent, if_match)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": bytes(body), "Metadata": clean}
        tags = residency_tags(clean)
        if tags:
            params["Tagging"] = urlencode(tags)
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        try:
            info = await self.head(key)
        except ObjectNotFound:
            if if_match is not None:
                raise self._not_at(key, if_match) from None
        else:
            if info.legal_hold:
                raise ObjectLocked(f"object `{key}` in `{self.region}` is under a legal hold")
            if if_absent:
                raise PreconditionFailed(f"object `{key}` already exists in `{self.region}`")
            if if_match is not None and info.etag != if_match:
                raise self._not_at(key, if_match)
        try:
            answer = await self._call("put", key, lambda c: c.put_object(**params))
        except ObjectNotFound:  # IfMatch on a key deleted meanwhile
            raise self._not_at(key, if_match or "") from None
        return str(answer.get("ETag", ""))

    async def get(self, key: str) -> StoredObject:
        validate_key(key)

        def fetch(client: Any) -> StoredObject:
            answer = client.get_object(Bucket=self.bucket, Key=key)
            with answer["Body"] as stream:
                body = stream.read()
            return StoredObject(key, body, dict(answer.get("Metadata", {})), _held(answer), str(answer.get("ETag", "")))

        return await self._call("get", key, fetch)

    async def get_bodies(self, keys: Sequence[str]) -> list[bytes]:
        """One GET per key, all in flight at once on the store's threads (as many as its connection pool);
        the first failure cancels the GETs not yet started."""
        for key in keys:  # all of them before any GET starts
            validate_key(key)
        return [obj.body for obj in await all_or_first_error(self.get(key) for key in keys)]

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        answer = await self._call("head", key, lambda c: c.head_object(Bucket=self.bucket, Key=key))
        return ObjectInfo(key, int(answer.get("ContentLength", 0)), dict(answer.get("Metadata", {})), _held(answer), str(answer.get("ETag", "")))

    async def heads(self, keys: Sequence[str]) -> list[ObjectInfo | ObjectCorrupt | None]:
        """One HEAD per key, at most ``MAX_WORKERS`` of them in flight (so a large call does not queue ahead
        of other requests' calls on the store's threads); S3 has no unreadable header, so no answer is
        ``ObjectCorrupt``. The first store error cancels the HEADs not yet started."""
        for key in keys:  # all of them before any HEAD starts
            validate_key(key)
        limiter = asyncio.Semaphore(MAX_WORKERS)

        async def one(key: str) -> ObjectInfo | None:
            async with limiter:
                try:
                    return await self.head(key)
                except ObjectNotFound:
                    return None

        return list(await all_or_first_error(one(key) for key in keys))

    async def list(self, prefix: str) -> list[str]:
        validate_prefix(prefix)

        def collect(client: Any) -> list[str]:
            keys: list[str] = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
            return sorted(keys)

        return await self._call("list", None, collect)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        info = await self.head(key)  # validates the key; ObjectNotFound if missing
        if info.legal_hold:
            raise ObjectLocked(f"object `{key}` in `{self.region}` is under a legal hold")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            if info.etag != if_match:
                raise self._not_at(key, if_match)
            params["IfMatch"] = if_match
        await self._call("delete", key, lambda c: c.delete_object(**params))

    async def set_legal_hold(self, key: str, on: bool) -> None:
        validate_key(key)
        await self.head(key)  # ObjectNotFound if missing
        status = "ON" if on else "OFF"
        try:
            await self._call(
                "set legal hold",
                key,
                lambda c: c.put_object_legal_hold(Bucket=self.bucket, Key=key, LegalHold={"Status": status}),
            )
        except StoreError as exc:
            if error_code(exc.__cause__) == "InvalidRequest":
                raise self._no_object_lock() from exc.__cause__
            raise

    # --- running boto3 off the loop, translating its errors -----------------

    async def _call(self, operation: str, key: str | None, work: Callable[[Any], T]) -> T:
        if self._closed:
            raise StoreError(f"S3 store of `{self.region}` is closed; cannot {operation}", region=self.region, operation=operation)

        try:
            return await call_off_loop(
                self._executor, lambda: work(self._client_now()), lambda exc: self._translate(exc, operation, key), deadline=self.spec.deadline
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():  # close() cancelled the queued call, not our caller
                raise self._unavailable(operation, key, "the store was closed") from None
            raise

    def _client_now(self) -> Any:
        with self._client_lock:
            if self._client is None:
                spec = self.spec
                self._client = make_client(
                    spec.region_name,
                    spec.endpoint_url,
                    connect_timeout=spec.connect_timeout,
                    read_timeout=spec.read_timeout,
                    max_attempts=spec.max_attempts,
                    max_pool_connections=MAX_WORKERS,
                )
            return self._client

    def _translate(self, exc: Exception, operation: str, key: str | None) -> GatewayError:
        code, status = error_code(exc), http_status(exc)
        if status is None and not code:  # no answer: unreachable, timed out, or the executor shut down by close()
            return self._unavailable(operation, key, describe(exc))
        if key is not None and (code in NOT_FOUND or (status == 404 and code != "NoSuchBucket")):
            return ObjectNotFound(f"object `{key}` does not exist in `{self.region}`")
        if code == "PreconditionFailed" or status == 412:
            if operation == "put" or operation == "delete":
                return PreconditionFailed(f"object `{key}` in `{self.region}` does not meet the condition of the write (it exists, or is at another version)")
            return PreconditionFailed(f"object `{key}` already exists in `{self.region}`")
        if code == "NoSuchBucket" or (key is None and status == 404):
            return self._unavailable(operation, key, f"bucket `{self.bucket}` does not exist", gone=True)
        if code in ("AccessDenied", "403") or status == 403:
            return self._unavailable(operation, key, f"access to bucket `{self.bucket}` is denied")
        return self._unavailable(operation, key, describe(exc))

    def _not_at(self, key: str, etag: str) -> PreconditionFailed:
        return PreconditionFailed(f"object `{key}` in `{self.region}` is not at version {etag}")

    def _unavailable(self, operation: str, key: str | None, why: str, *, gone: bool = False) -> StoreError:
        what = f" `{key}`" if key else ""
        return (StoreGone if gone else StoreError)(
            f"S3 store of `{self.region}` failed to {operation}{what}: {why}",
            region=self.region,
            operation=operation,
            bucket=self.bucket,
        )

    def _no_object_lock(self) -> StoreError:
        return StoreError(
            f"bucket `{self.bucket}` of `{self.region}` has no S3 Object Lock, so it cannot place legal holds; create the bucket with `object_lock = true`",
            code=NO_OBJECT_LOCK,
            region=self.region,
            bucket=self.bucket,
        )

    async def _require_object_lock(self) -> None:
        try:
            answer = await self._call(
                "read object lock configuration",
                None,
                lambda c: c.get_object_lock_configuration(Bucket=self.bucket),
            )
        except StoreError as exc:
            if error_code(exc.__cause__) == "ObjectLockConfigurationNotFoundError":
                raise self._no_object_lock() from exc.__cause__
            raise
        if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise self._no_object_lock()


def _held(answer: Mapping[str, Any]) -> bool:
    return answer.get("ObjectLockLegalHoldStatus") == "ON"
