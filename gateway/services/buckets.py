"""S3 buckets: which exist, where each one's objects live, and who may create and delete them.

A bucket is either subject-routed (its keys are ``SUBJECT/KEY``, each object a
record of that subject, in the subject's home region) or has a home region.
A home-region bucket ``NAME`` is backed by a data holder: the reserved subject
``s3.NAME`` (no person behind it: its residence is its region's jurisdiction,
its other facts unknown), whose home is the bucket's region. Each object of the
bucket is a record of that holder, so every read, write, list and delete of it
goes through the records service like any record: decided by the caller's
jurisdiction against the bucket's region (a refusal has the same reason code as
the REST API's for that region), tagged and sealed in that region's store, and
ledgered. The holder is registered (``subject.registered``) by the first
caller that touches the bucket; its home claim, like every subject's, never
changes, so a bucket name keeps its region for good, even after the bucket is
deleted.

Buckets come from regions.toml (``[s3.buckets.NAME]``) or from CreateBucket.
Created buckets are kept in the control store (``s3/buckets/NAME``), so they
survive restarts and every replica sees the same ones. A service may create a
bucket only in its own region (the region its credentials name), and delete one
only there, and only when it holds no object. An object put into a created
bucket without ``x-amz-meta-category`` has the top category of the ladder
(the most protected: a category no one stated is not assumed harmless); configured buckets are changed
in regions.toml, never through S3. Each creation, deletion and refusal is
ledgered (``s3.bucket-created``, ``s3.bucket-deleted``, ``s3.bucket-refused``).

A copy between two regions (CopyObject) is a transfer of the data from one
region to the other, and is decided as one before anything is read: as if the
caller's service read the source's data from the destination's region (the
data would rest there), with the same rules and reason codes as any read. A
refused transfer is ledgered (``s3.copy-refused``) and refused with its
reason. Then, as for any copy, the read of the source and the write of the
destination are each decided for the caller and ledgered, and the copy itself
is ledgered (``s3.copied``: source, destination, their regions, the transfer's
decision).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from gateway.canonical import canonical
from gateway.config import Config, S3Bucket, is_bucket_name
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.model import Caller, Clock, ResidencyDecision, Subject, isoformat
from gateway.services.audit_log import AuditLog
from gateway.services.objects import ObjectService
from gateway.services.records import NO_PRECONDITION, RESERVED_SUBJECT_PREFIX, Precondition, ReadResult, RecordService, ResidencyRefused, who
from gateway.stores import ObjectNotFound, PreconditionFailed, RecordStore

HOLDER_PREFIX = RESERVED_SUBJECT_PREFIX  # subject ids of buckets' data holders; the REST API refuses to register one
REGISTRY_PREFIX = "s3/buckets/"
MAX_HOME_KEY_BYTES = 80  # the longest S3 key a home-region bucket holds: its record key is at most 128 characters


def holder_of(bucket: str) -> str:
    """The subject that holds a home-region bucket's objects."""
    return HOLDER_PREFIX + bucket


def record_key_of(s3_key: str) -> str:
    """The record key of an S3 key in a home-region bucket: its UTF-8 bytes in unpadded base32hex, which sorts as
    the keys do (so a listing in record-key order is in S3's order) and uses only the characters a record key may."""
    return base64.b32hexencode(s3_key.encode()).decode().rstrip("=")


def s3_key_of(record_key: str) -> str | None:
    """The S3 key a home-region bucket's record key stands for; None for a record key no S3 key encodes to."""
    try:
        return base64.b32hexdecode(record_key + "=" * (-len(record_key) % 8)).decode()
    except (binascii.Error, ValueError):
        return None


class BucketNotFound(NotFound):
    code = "bucket-not-found"


class BucketExists(Conflict):
    code = "bucket-exists"


class BucketNotEmpty(Conflict):
    code = "bucket-not-empty"


class UnknownLocation(InvalidRequest):
    code = "unknown-location"


class BucketRefused(Forbidden):
    code = "bucket-refused"


@dataclass(frozen=True)
class Bucket:
    name: str
    home_region: str | None  # None: subject-routed
    default_category: str | None
    created_at: str  # when CreateBucket made it; "" for a configured bucket
    configured: bool


class BucketService:
    def __init__(
        self, *, config: Config, records: RecordService, control: RecordStore, audit: AuditLog, clock: Clock, configured: Mapping[str, S3Bucket]
    ) -> None:
        self.config, self.records, self.control, self.audit, self.clock = config, records, control, audit, clock
        self.configured = {name: Bucket(name, b.home_region, b.default_category, "", True) for name, b in configured.items()}
        self._holders: set[str] = set()  # holders known to be registered, by this process

    async def get(self, name: str) -> Bucket:
        """The bucket ``name``; ``BucketNotFound`` if there is none."""
        if name in self.configured:
            return self.configured[name]
        try:
            held = json.loads((await self.control.get(REGISTRY_PREFIX + name)).body)
        except ObjectNotFound:
            raise BucketNotFound(f"The specified bucket `{name}` does not exist") from None
        return Bucket(name, held["home_region"], self.config.categories[-1], held["created_at"], False)

    async def looked_up(self, caller: Caller, name: str, act: str) -> Bucket:
        """The bucket ``name`` for HeadBucket or GetBucketLocation (``act``: "head", "location"), ledgered as
        ``s3.bucket-read``, found or not: which buckets exist and where is no subject's data, so any service may ask."""
        entry = {"by": who(caller), "bucket": name, "act": act}
        try:
            bucket = await self.get(name)
        except BucketNotFound:
            await self.audit.record("s3.bucket-read", {**entry, "found": False})
            raise
        await self.audit.record("s3.bucket-read", {**entry, "found": True, "home_region": bucket.home_region})
        return bucket

    async def listed(self, caller: Caller) -> list[Bucket]:
        """Every bucket, for ListBuckets, ledgered as ``s3.buckets-listed``."""
        found = await self.all()
        await self.audit.record("s3.buckets-listed", {"by": who(caller), "count": len(found)})
        return found

    async def all(self) -> list[Bucket]:
        created = [await self.get(key[len(REGISTRY_PREFIX) :]) for key in await self.control.list(REGISTRY_PREFIX)]
        return sorted([*self.configured.values(), *(b for b in created if b.name not in self.configured)], key=lambda b: b.name)

    async def holder(self, caller: Caller, bucket: Bucket) -> str:
        """The data holder of a home-region bucket, registered (by ``caller``) if it is not yet."""
        assert bucket.home_region is not None
        subject = holder_of(bucket.name)
        if subject in self._holders:
            return subject
        home = await self.records.home_region(subject)
        if home is None:
            facts = Subject(id=subject, home_region=bucket.home_region, residence=self.config.regions[bucket.home_region].jurisdiction)
            await self.records.register_subject(caller, facts)
        elif home != bucket.home_region:  # the name was once a bucket of another region, whose holder stays there
            raise BucketExists(f"bucket name `{bucket.name}` belongs to region `{home}` for good; choose another name")
        self._holders.add(subject)
        return subject

    async def create(self, caller: Caller, name: str, region: str | None) -> Bucket:
        """Create bucket ``name`` with home ``region`` (None: the caller's region), a region served here and the caller's own."""
        # (1): the name and the region must be ones a bucket can have
        if not is_bucket_name(name) or name.startswith("xn--"):
            raise InvalidRequest(f"`{name}` is not a bucket name: 3 to 63 lower-case letters, digits, `.` or `-`", code="invalid-bucket-name")
        home = region or caller.region
        if home not in self.config.regions or self.config.regions[home].owner is not None:
            raise UnknownLocation(f"`{home}` is not a region this gateway serves; use one of {', '.join(self.config.local_regions)}")
        # (2): a service creates buckets in its own region only
        if home != caller.region:
            await self.audit.record("s3.bucket-refused", {"by": who(caller), "bucket": name, "region": home, "act": "create"})
            raise BucketRefused(f"a service may create buckets only in its own region, `{caller.region}`, not `{home}`")
        # (3): an existing bucket stays as it is
        if name in self.configured:
            raise BucketExists(f"bucket `{name}` already exists")
        bucket = Bucket(name, home, self.config.categories[-1], isoformat(self.clock()), False)
        # (4): its holder first (a name once used elsewhere is refused here), then the bucket, create-only
        await self.holder(caller, bucket)
        entry = {"bucket": name, "home_region": home, "created_at": bucket.created_at}
        try:
            await self.control.put(REGISTRY_PREFIX + name, canonical(entry), {}, if_absent=True)
        except PreconditionFailed:
            raise BucketExists(f"bucket `{name}` already exists") from None
        await self.audit.record("s3.bucket-created", {**entry, "by": who(caller), "holder": holder_of(name)})
        return bucket

    async def delete(self, caller: Caller, name: str) -> None:
        """Delete an empty bucket made by CreateBucket, in the caller's own region."""
        bucket = await self.get(name)
        if bucket.configured:
            raise BucketRefused(f"bucket `{name}` is configured in regions.toml; it is removed there, not through S3")
        assert bucket.home_region is not None
        if bucket.home_region != caller.region:
            await self.audit.record("s3.bucket-refused", {"by": who(caller), "bucket": name, "region": bucket.home_region, "act": "delete"})
            raise BucketRefused(f"a service may delete buckets only in its own region, `{caller.region}`, not `{bucket.home_region}`")
        listing = await self.records.list_records(caller, await self.holder(caller, bucket), limit=1)  # decided and ledgered as a list
        if listing.records or listing.skipped or listing.next_after is not None:
            raise BucketNotEmpty(f"bucket `{name}` holds objects; delete them first")
        try:
            await self.control.delete(REGISTRY_PREFIX + name)
        except ObjectNotFound:
            raise BucketNotFound(f"The specified bucket `{name}` does not exist") from None
        await self.audit.record("s3.bucket-deleted", {"bucket": name, "home_region": bucket.home_region, "by": who(caller)})

    async def copy(
        self,
        caller: Caller,
        source: tuple[str, str],
        destination: tuple[str, str],
        written: Callable[[ReadResult], tuple[str, dict[str, str]]],
        *,
        precondition: Precondition = NO_PRECONDITION,
    ) -> tuple[ReadResult, str]:
        """Copy object ``source`` (subject, key) to ``destination``; ``written`` gives the copy's category and extra
        metadata from the source's read. Returns the source's read and the copy's ETag. An object stored in chunks
        is copied a verified chunk at a time (``gateway.services.objects``)."""
        assert caller.region and caller.service and caller.purpose
        # (1): a copy between regions is a transfer, decided before anything is read
        regions = await self.records.home_region(source[0]), await self.records.home_region(destination[0])
        transfer = None
        if None not in regions and regions[0] != regions[1]:
            assert regions[0] is not None and regions[1] is not None
            transfer = self.records.residency.decide(caller_region=regions[1], service=caller.service, purpose=caller.purpose, data_region=regions[0])
            if not transfer.allowed:
                reason = transfer.reasons[0]
                await self.audit.record("s3.copy-refused", _copy_entry(caller, source, destination, regions, transfer))
                raise ResidencyRefused(
                    f"copying data stored in `{regions[0]}` ({transfer.data_jurisdiction}) into `{regions[1]}` ({transfer.caller_jurisdiction}) "
                    f"is a transfer the rules do not allow: {reason.detail}",
                    reasons=[{"code": r.code, "rule": r.rule, "detail": r.detail} for r in transfer.reasons],
                    region=regions[0],
                )
        # (2): the read of the source and (3) the write of the destination, each decided and ledgered as such
        objects = ObjectService(self.records)
        read, manifest = await objects.read(caller, *source)
        category, extra = written(read)
        pieces = _once(read.body) if manifest is None else objects.chunks(caller, *source, manifest, 0, manifest.size)
        copied = await objects.put_object(caller, *destination, category, pieces, precondition=precondition, extra=extra)
        await self.audit.record("s3.copied", {**_copy_entry(caller, source, destination, regions, transfer), "sha256": read.meta.sha256})
        return read, copied.etag


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _copy_entry(
    caller: Caller, source: tuple[str, str], destination: tuple[str, str], regions: tuple[str | None, str | None], transfer: ResidencyDecision | None
) -> dict[str, object]:
    entry: dict[str, object] = {
        "by": who(caller),
        "source": {"subject": source[0], "key": source[1], "region": regions[0]},
        "destination": {"subject": destination[0], "key": destination[1], "region": regions[1]},
    }
    if transfer is not None:
        entry["transfer"] = {
            "outcome": transfer.outcome,
            "reasons": [{"code": r.code, "rule": r.rule} for r in transfer.reasons],
            "mechanism": transfer.mechanism,
        }
    return entry
