"""Subjects and records: routing to the home region, residency tags, read decisions.

Every read is decided before any byte is fetched, recorded in the ledger
before any byte is served, and refused if the ledger cannot be written.

Writes are audited before their effect. A write or delete of a record, and a
write of a subject's profile (registered, changed, re-signed), first appends
an intent entry (``record.write-intent``, ``record.delete-intent``,
``subject.write-intent``: the object, its region, the SHA-256 it will hold,
the version it replaces, the caller and the decision), durable before the
store is touched; then the store acts; then the outcome entry
(``record.written``, ``record.deleted``, ``subject.registered``,
``subject.changed``, ``subject.resigned``) names its intent's ``seq``. So:
- the ledger cannot take the intent: 503 ``ledger-unavailable``, and the
  store is not touched (a 503 from the ledger means not stored);
- the store fails or refuses: a ``record.write-failed`` entry names the
  intent and the error's code (best effort: the ledger may be failing too),
  and the caller gets the store's error. A refusal (``write-conflict``,
  ``legal-hold``, ``key-conflict``, ``invalid-*``) changed nothing; a
  ``store-unavailable`` failure says only that the store did not confirm the
  act (an S3 call past its deadline may still land), so reconciliation checks
  the store for it as for an intent without an outcome;
- the store acted but the ledger cannot take the outcome: the act is
  acknowledged with its success, because its intent is already durable; a
  warning is logged, and reconciliation writes the missing outcome by reading
  the intent's ``object`` in its ``region`` and comparing the stored body's
  SHA-256 with the intent's ``sha256`` (none for a delete).

One writer per key, in ledger order. In this process, the writes and deletes
of one object are serialized from the intent to the outcome entry (a lock per
object key, dropped when no one holds or waits for it), so the ledger's order
of outcomes for a key is the store's. Across processes sharing a store, each
write reads the current version (its etag, and the SHA-256 of its tag), names
it in the intent's ``replaces``, and writes only over that version (the
store's ``if_match``, or ``if_absent`` when there was none): a writer that
lost the race appends ``record.write-failed`` with code ``write-conflict`` and
tries again from the current version, up to ``WRITE_TRIES`` times (then 409
``write-conflict``). So ``201 Created`` is answered exactly once per creation,
and every ``record.written`` names the version it replaced: following
``replaces`` from a key's creation gives the version it holds, even where two
processes' outcome entries reached the ledger in the other order. A
subject's profile is changed or re-signed only over the version the change
was decided on: where another process changed it meanwhile, the cached facts
are dropped and the change is 409 ``write-conflict`` (a retry decides on the
current facts).

Subjects are found through the directory: each subject's home region is
claimed create-only in the control store at registration
(``home_claim_key``), so a lookup reads that claim and then the profile in
that one region, never every region. A subject without a claim (registered
before claims existed) is looked for in every region and given its claim
when found, until the control store holds ``DIRECTORY_KEY``: written by
``index_subjects`` (``gateway subjects index``) once every stored subject has
a claim, and at start-up on a control store that holds nothing yet, it makes
the claims authoritative (no claim: no such subject, asking no region).
A subject claimed by a region that has no profile for it is looked for in
every region, so that facts moved out of their region are found, refused and
counted as a residency violation rather than reported unknown.
Verified profiles are cached per process for ``cache_seconds`` at most
(``[subjects] cache_seconds``), so a change made through another process is
seen within that time; a legal order's decision and a registration read the
profile afresh.

Conditional requests (``If-Match``, ``If-None-Match: *``) are evaluated
against the same current version, after the residency decision; a mismatch is
412 ``precondition-failed``, ledgered as ``record.precondition-failed``.

A damaged record harms only itself: one whose stored metadata cannot be read
(``record-corrupt``) or that fails its residency tag (``tag-*``, a body that no
longer matches it: ``tag-content-mismatch``) is a residency violation of that
record alone (refused with 451 on a read, skipped by a list, which says how
many it skipped), ledgered and counted; the subject's other records are served
as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from gateway.canonical import canonical, sha256_hex
from gateway.config import SUBJECT_CACHE_SECONDS, Config
from gateway.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidRequest,
    LegalRefusal,
    NotFound,
    PayloadTooLarge,
    PreconditionError,
    StoreError,
)
from gateway.model import Caller, Clock, Reason, RecordMeta, ResidencyDecision, ResidencyTag, Subject, is_country, is_identifier, isoformat
from gateway.residency.decision import ResidencyPolicy
from gateway.services.audit_log import AuditLog
from gateway.stores import ObjectCorrupt, ObjectInfo, ObjectNotFound, PreconditionFailed, RecordStore
from gateway.stores.base import validate_metadata
from gateway.tags import TagSigner, TagVerifier, TagViolation

log = logging.getLogger("gateway.records")

T = TypeVar("T")

TAG_METADATA = "residency-tag"
SEAL_METADATA = "tag-seal"  # the gateway's own HMAC seal of the tag (see gateway.tags); not mirrored as an S3 object tag
# A record whose body is the manifest of a chunked object (gateway.services.objects) carries this, set to "1",
# and the object's size (for listings; reads rest on the manifest, which the tag covers)
MANIFEST_METADATA = "object-manifest"
OBJECT_SIZE_METADATA = "object-size"
ETAG_METADATA = "s3-etag"  # the ETag an object written through the S3 front has, for its listings (``RecordMeta.etag``)
PROFILE = "profile"
RESERVED_SUBJECT_PREFIX = "s3."  # the data holders of S3 buckets with a home region (gateway.services.buckets)
# A profile's residency tag is bound to this key, which no record can have (record keys are identifiers),
# and to this category, which is not on the ladder: a record's tag can never pass for a profile's.
PROFILE_TAG_KEY = "@profile"
PROFILE_CATEGORY = "profile"
SUBJECT_FIELDS = {"home_region", "residence", "nationality", "us_person", "location"}
WRITE_TRIES = 8  # a write that loses this many races with other processes' writes of its key is 409 write-conflict
RETRY_PAUSE = 0.005  # seconds; a write that lost a race waits up to this, doubled after each loss, before it tries again
WRITE_FAILED = "record.write-failed"


class ResidencyRefused(LegalRefusal):
    code = "residency-refused"


class ResidencyViolation(LegalRefusal):
    code = "residency-violation"


class UnknownSubject(NotFound):
    code = "unknown-subject"


class NotRegionOwner(Forbidden):
    """The subject's home region is served by a peer gateway, not this one (federation): nothing here may touch it."""

    code = "not-region-owner"


def not_region_owner(region: str, owner: str) -> NotRegionOwner:
    return NotRegionOwner(
        f"region `{region}` is served by peer gateway `{owner}`, not by this one; a request a peer forwards reaches only the region's own gateway",
        region=region,
    )


class RecordNotFound(NotFound):
    code = "record-not-found"


class RecordPreconditionFailed(PreconditionError):
    """A conditional write or delete whose condition does not hold (412); ``etag`` is the record's current one, if any."""

    code = "precondition-failed"

    def __init__(self, message: str, *, etag: str | None) -> None:
        super().__init__(message)
        self.etag = etag


@dataclass(frozen=True)
class Precondition:
    """A data-plane write's conditions on the record's current version, named by the SHA-256 of its body.

    ``if_match``: the write acts only if the record exists and its SHA-256 is one of these (``*``: any).
    ``if_none_match``: the write acts only if the record does not exist (``If-None-Match: *``).
    """

    if_match: frozenset[str] | None = None
    if_none_match: bool = False

    def holds(self, current: str | None) -> bool:
        if self.if_none_match and current is not None:
            return False
        if self.if_match is None:
            return True
        return current is not None and ("*" in self.if_match or current in self.if_match)


NO_PRECONDITION = Precondition()


@dataclass(frozen=True)
class Version:
    """The stored version of an object: the store's etag and the SHA-256 of its body."""

    etag: str
    sha256: str


class KeyLocks:
    """One ``asyncio.Lock`` per key, kept only while someone holds or waits for it (no unbounded dict)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def subject_prefix(subject: str) -> str:
    return f"subjects/{subject}/"


def record_key(subject: str, key: str) -> str:
    return f"subjects/{subject}/records/{key}"


def profile_key(subject: str) -> str:
    return f"subjects/{subject}/{PROFILE}"


def home_claim_key(subject: str) -> str:
    """Where the control store records a subject's one home region (written create-only at registration)."""
    return f"subjects/{subject}/home"


# In the control store: present once every subject has a home claim, so the claims are the whole directory.
DIRECTORY_KEY = "directory/complete"


class _NoDirectory(Exception):
    """The subject has no home claim and the directory is not known to be complete: look in every region."""


class SubjectFactsUnverified(ResidencyViolation):
    """A subject's stored facts do not verify against their signed tag: nothing rests on them."""


@dataclass(frozen=True)
class Profile:
    """A subject's facts as stored in its home region, and whether their signed tag verified.

    ``sha256`` is the hash of the stored bytes: decisions name it, so an auditor
    can show which facts a disclosure rested on. An unverified profile keeps
    only the region it was found in (records' own tags prove where they are);
    its other facts are unknown, never the stored values.
    """

    subject: Subject
    sha256: str
    violation: TagViolation | None = None

    @property
    def verified(self) -> bool:
        return self.violation is None


def corrupt_record(key: str, region: str) -> TagViolation:
    """The violation of a record whose stored metadata (and so its residency tag) cannot be read."""
    return TagViolation("record-corrupt", f"record `{key}` in `{region}` is unreadable: its stored metadata is corrupt")


def size_mismatch(key: str, size: int, tagged: int) -> TagViolation:
    """The violation of a record whose stored size is not its tag's: its body was changed."""
    return TagViolation("tag-content-mismatch", f"content of `{key}` does not match its residency tag (size {size}, tagged {tagged})")


@dataclass(frozen=True)
class Listing:
    """A subject's records that prove their residency, and how many others were skipped as violations.

    ``next_after`` is the last key of a page that has more after it (list again from there), else ``None``."""

    records: list[RecordMeta]
    decision: ResidencyDecision
    skipped: int
    next_after: str | None = None


@dataclass(frozen=True)
class ReadResult:
    body: bytes
    meta: RecordMeta
    decision: ResidencyDecision
    ledger_seq: int
    extra: Mapping[str, str] = field(default_factory=dict)  # the metadata its writer stored beside the tag (``put_record``'s ``extra``)
    manifest: bool = False  # the body is the manifest of a chunked object (gateway.services.objects)


def extra_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Stored metadata without what the gateway keeps there itself (the tag, its seal, the fields it mirrors, a manifest's marks)."""
    own = (TAG_METADATA, SEAL_METADATA, MANIFEST_METADATA, OBJECT_SIZE_METADATA)
    return {name: value for name, value in metadata.items() if name not in own and not name.startswith("residency-")}


class RecordService:
    def __init__(
        self,
        *,
        config: Config,
        stores: Mapping[str, RecordStore],
        control: RecordStore,
        signer: TagSigner,
        verifier: TagVerifier,
        audit: AuditLog,
        clock: Clock,
        cache_seconds: float = SUBJECT_CACHE_SECONDS,
    ) -> None:
        self.config = config
        self.stores = stores
        self.control = control  # where each subject's one home region is claimed
        self.signer = signer
        self.verifier = verifier
        self.audit = audit
        self.observer = audit.observer
        self.clock = clock
        self.residency = ResidencyPolicy.build(
            regions={r.id: r.jurisdiction for r in config.regions.values()},
            jurisdictions=config.jurisdictions,
            blocs=config.blocs,
            mechanisms=config.transfer_mechanisms,
        )
        self.cache_seconds = cache_seconds
        self._complete = False  # whether the directory is known complete (``_directory_complete``)
        self._profiles: dict[str, tuple[Profile, datetime]] = {}  # verified profiles only, and when they were read
        self.key_locks = KeyLocks()  # one writer per object key in this process (see the module docstring)

    # --- store access, timed and observed ----------------------------------

    async def _op(self, region: str, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        ok = False
        try:
            result = await call()
            ok = True
            return result
        except ObjectNotFound:
            ok = True  # an answer, not a failure of the store
            raise
        finally:
            self.observer.store_operation(region=region, operation=operation, seconds=time.perf_counter() - started, ok=ok)

    def check_tag(self, metadata: Mapping[str, str], *, region: str, subject: str, key: str, body: bytes | None = None) -> ResidencyTag:
        """The residency tag in a record's metadata, checked (with its seal) against where the record was found,
        and against ``body`` when given; ``TagViolation`` if it does not hold."""
        return self.verifier.verify(
            metadata.get(TAG_METADATA),
            store_region=region,
            subject=subject,
            key=key,
            sha256=None if body is None else sha256_hex(body),
            size=None if body is None else len(body),
            seal=metadata.get(SEAL_METADATA),
        )

    def check_head(self, info: ObjectInfo, *, region: str, subject: str, key: str) -> ResidencyTag:
        """``check_tag`` of an object read without its body, and its stored size against the tag's
        (a body rewritten to another length fails here; one of the same length only when it is read)."""
        tag = self.check_tag(info.metadata, region=region, subject=subject, key=key)
        if info.size != tag.size:
            raise size_mismatch(key, info.size, tag.size)
        return tag

    def tag_is_quick(self, metadata: Mapping[str, str], region: str) -> bool:
        """``check_tag`` of this metadata needs no signature check (see ``TagVerifier.is_quick``)."""
        return self.verifier.is_quick(metadata.get(TAG_METADATA), metadata.get(SEAL_METADATA), region)

    # --- audit before effect ------------------------------------------------

    async def _failed(self, intent: int, code: str) -> None:
        """Ledger that an intent did not take effect (best effort: the ledger may be what failed)."""
        try:
            await self.audit.record(WRITE_FAILED, {"intent": intent, "code": code})
        except GatewayError:
            log.warning("could not ledger a failed write", extra={"event": "write-failed-unledgered", "code": code})

    async def _outcome(self, kind: str, data: Mapping[str, Any], region: str) -> None:
        """Ledger an act that took effect. Its intent is durable already, so a ledger that fails now does
        not undo the act: the caller is answered with its success and reconciliation writes the outcome."""
        try:
            await self.audit.record(kind, data)
        except GatewayError as error:
            # no subject ids or keys in logs (see gateway.logs): the intent's seq finds the entry
            log.warning(
                "an acknowledged write has no outcome entry yet; reconciliation adds it",
                extra={"event": "outcome-unledgered", "code": error.code, "region": region, "outcome": kind, "audit_seq": data.get("intent")},
            )

    async def _in_store(self, intent: int, act: Callable[[], Awaitable[T]]) -> T:
        """Run a store act for an intent; if the store answers with an error, ledger that the intent failed
        (``write-conflict`` when it lost a race). A cancelled or crashed act is left without an entry: whether
        it took effect is not known here, so reconciliation settles it like an intent without an outcome."""
        try:
            return await act()
        except PreconditionFailed:
            await self._failed(intent, "write-conflict")
            raise
        except GatewayError as error:
            await self._failed(intent, error.code)
            raise

    # --- subjects ------------------------------------------------------------

    def parse_subject(self, subject_id: str, body: Any) -> Subject:
        if not is_identifier(subject_id):
            raise InvalidRequest(f"subject id `{subject_id}` must be letters, digits, `.`, `_` or `-`", code="invalid-subject")
        if subject_id.startswith(RESERVED_SUBJECT_PREFIX):
            raise InvalidRequest(f"subject ids beginning `{RESERVED_SUBJECT_PREFIX}` hold S3 buckets' objects; choose another id", code="invalid-subject")
        if not isinstance(body, dict):
            raise InvalidRequest("subject must be a JSON object", code="invalid-subject")
        unknown = sorted(set(body) - SUBJECT_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown subject field `{unknown[0]}`; allowed: {', '.join(sorted(SUBJECT_FIELDS))}", code="invalid-subject")
        home = body.get("home_region")
        if not isinstance(home, str):
            raise InvalidRequest("`home_region` is required", code="invalid-subject")
        if home not in self.config.regions:
            raise InvalidRequest(f"unknown region `{home}`; configured: {', '.join(self.config.regions)}", code="unknown-region")
        for name in ("residence", "nationality", "location"):
            value = body.get(name)
            if value is None and name != "residence":
                continue
            if not is_country(value):
                raise InvalidRequest(f"`{name}` must be an ISO 3166-1 alpha-2 country code such as `IE`", code="invalid-subject")
        us_person = body.get("us_person")
        if us_person is not None and not isinstance(us_person, bool):
            raise InvalidRequest("`us_person` must be true, false or absent (unknown)", code="invalid-subject")
        return Subject(
            id=subject_id,
            home_region=home,
            residence=body["residence"],
            nationality=body.get("nationality"),
            us_person=us_person,
            location=body.get("location"),
        )

    def _tagged(self, region_id: str, subject_id: str, key: str, category: str, body: bytes) -> tuple[ResidencyTag, dict[str, str]]:
        """The residency tag of ``body`` stored as ``key`` in ``region_id``, and the metadata that carries it (tag, seal, mirrored fields)."""
        region = self.config.regions[region_id]
        tag = ResidencyTag(
            region=region.id,
            jurisdiction=region.jurisdiction,
            subject=subject_id,
            key=key,
            category=category,
            sha256=sha256_hex(body),
            size=len(body),
            written_at=isoformat(self.clock()),
        )
        blob = self.signer.sign(tag)
        metadata = {
            TAG_METADATA: blob,
            SEAL_METADATA: self.signer.seal(region.id, blob),
            "residency-region": region.id,
            "residency-jurisdiction": region.jurisdiction,
            "residency-category": category,
        }
        return tag, metadata

    def _signed_profile(self, subject: Subject) -> tuple[bytes, dict[str, str]]:
        """A profile's stored bytes and metadata: canonical JSON of the facts, with a residency tag and seal over exactly them."""
        body = canonical(subject.to_json())
        _, metadata = self._tagged(subject.home_region, subject.id, PROFILE_TAG_KEY, PROFILE_CATEGORY, body)
        return body, metadata

    async def register_subject(self, caller: Caller, subject: Subject) -> tuple[Subject, bool]:
        """Register a new subject (open to any service), or change an existing one's facts (decided like a read).

        A new subject's id is first claimed create-only in the control store, so
        two regions registering it at once cannot both win (409
        ``subject-region-conflict`` for the loser). A change is decided against
        the subject's home region before anything else: a caller that may not
        read the subject gets the same 451 whatever it sent.
        """
        _require_service(caller)
        owner = self.config.regions[subject.home_region].owner
        if owner is not None:
            raise not_region_owner(subject.home_region, owner)
        existing = await self._find_profile(subject.id, missing_ok=True, fresh=True)
        if existing is None:
            if await self._register_new(caller, subject):
                return subject, True
            existing = await self._find_profile(subject.id, missing_ok=False, fresh=True)  # registered meanwhile in the same region
            assert existing is not None
        await self._change(caller, existing, subject)
        return subject, False

    async def _claim_home(self, subject_id: str, region: str) -> None:
        """Claim the subject's id for ``region`` in the control store; ``subject-region-conflict`` if another region holds it."""
        claim = canonical({"subject": subject_id, "home_region": region, "claimed_at": isoformat(self.clock())})
        try:
            await self.control.put(home_claim_key(subject_id), claim, {}, if_absent=True)
            return
        except PreconditionFailed:
            pass
        held = json.loads((await self.control.get(home_claim_key(subject_id))).body)
        if held.get("home_region") != region:
            raise Conflict(
                f"subject `{subject_id}` is already claimed by `{held.get('home_region')}`; a subject has one home region",
                code="subject-region-conflict",
            )

    async def _write_profile(self, subject: Subject, body: bytes, metadata: Mapping[str, str], *, by: Mapping[str, Any], act: str, over: Version | None) -> int:
        """The intent of a profile write, then the put over version ``over`` (create-only when None); the intent's seq.

        Call with the profile's key lock held. ``PreconditionFailed`` if the stored profile is not ``over`` (or,
        for a create, exists) any more.
        """
        replaces = None if over is None else over.sha256
        region = subject.home_region
        key = profile_key(subject.id)
        intent = await self.audit.record(
            "subject.write-intent",
            {"subject": subject.id, "region": region, "by": dict(by), "object": key, "sha256": sha256_hex(body), "replaces": replaces, "act": act},
        )
        seq = int(intent["seq"])
        store = self.stores[region]
        if over is None:
            put = functools.partial(store.put, key, body, metadata, if_absent=True)
        else:
            put = functools.partial(store.put, key, body, metadata, if_match=over.etag)
        await self._in_store(seq, functools.partial(self._op, region, "put", put))
        return seq

    async def _profile_over(self, subject_id: str, region: str, sha256: str) -> Version:
        """The stored profile's version, which must be the one (``sha256``) a change was decided on; else the cached
        facts are stale (another process changed them): the cache entry is dropped and the change is 409 ``write-conflict``."""
        store = self.stores[region]
        try:
            obj = await self._op(region, "get", lambda: store.get(profile_key(subject_id)))
        except ObjectNotFound:
            obj = None
        if obj is None or sha256_hex(obj.body) != sha256:
            raise self._profile_conflict(subject_id)
        return Version(obj.etag, sha256)

    def _profile_conflict(self, subject_id: str) -> Conflict:
        self._profiles.pop(subject_id, None)
        return Conflict(f"the facts of subject `{subject_id}` were changed by another request meanwhile; retry the request", code="write-conflict")

    async def _register_new(self, caller: Caller, subject: Subject) -> bool:
        """Store a new subject's signed profile; False if one appeared meanwhile in the same region."""
        await self._claim_home(subject.id, subject.home_region)
        body, metadata = self._signed_profile(subject)
        digest = sha256_hex(body)
        async with self.key_locks.hold(f"{subject.home_region}/{profile_key(subject.id)}"):
            try:
                intent = await self._write_profile(subject, body, metadata, by=_who(caller), act="registered", over=None)
            except PreconditionFailed:
                return False
            await self._outcome(
                "subject.registered",
                {"subject": subject.id, "region": subject.home_region, "by": _who(caller), "profile_sha256": digest, "intent": intent},
                subject.home_region,
            )
        self._remember(Profile(subject, digest))
        return True

    async def _change(self, caller: Caller, existing: Profile, subject: Subject) -> None:
        """Replace an existing subject's facts: decided like a read, ledgered with the old and new profile hashes."""
        old = existing.subject
        facts = {"old_profile_sha256": existing.sha256, "old_verified": existing.verified}
        decision = await self._decided(caller, old, "subject.changed", facts)
        if old.home_region != subject.home_region:
            raise Conflict(
                f"subject `{subject.id}` already lives in `{old.home_region}`; moving a subject between regions is a migration, not a registration",
                code="subject-region-conflict",
            )
        await self._claim_home(subject.id, subject.home_region)  # a subject registered before home claims gets one now
        body, metadata = self._signed_profile(subject)
        digest = sha256_hex(body)
        changed = not existing.verified or old != subject
        entry = {**_read_entry(caller, old, decision, facts, profile_sha256=None), "changed": changed}
        if not changed:
            await self.audit.record("subject.changed", {**entry, "new_profile_sha256": existing.sha256})
            self._remember(Profile(subject, existing.sha256))
            return
        async with self.key_locks.hold(f"{subject.home_region}/{profile_key(subject.id)}"):
            over = await self._profile_over(subject.id, subject.home_region, existing.sha256)
            try:
                intent = await self._write_profile(subject, body, metadata, by=_who(caller), act="changed", over=over)
            except PreconditionFailed:
                raise self._profile_conflict(subject.id) from None
            await self._outcome("subject.changed", {**entry, "new_profile_sha256": digest, "intent": intent}, subject.home_region)
        self._remember(Profile(subject, digest))

    async def resign_profile(self, subject_id: str, *, by: str) -> bool:
        """Sign a stored profile that carries no valid tag, as it stands (an operator's act); False if it already verifies.

        For profiles written before facts were signed, or restored from a copy:
        the operator vouches for the stored facts, which must still parse as a
        subject of the region they were found in. The act is ledgered with both hashes.
        """
        found = await self._find_profile(subject_id, missing_ok=False)
        assert found is not None
        if found.verified:
            return False
        region = found.subject.home_region
        stored = await self._op(region, "get", lambda: self.stores[region].get(profile_key(subject_id)))
        try:
            data = json.loads(stored.body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(f"the stored profile of `{subject_id}` is not JSON; register the subject again instead", code="invalid-subject") from None
        if not isinstance(data, dict) or data.get("subject", subject_id) != subject_id or data.get("home_region", region) != region:
            raise InvalidRequest(f"the stored profile of `{subject_id}` names another subject or region; it is not signed", code="invalid-subject")
        subject = self.parse_subject(subject_id, {k: v for k, v in data.items() if k in SUBJECT_FIELDS} | {"home_region": region})
        await self._claim_home(subject_id, region)
        body, metadata = self._signed_profile(subject)
        digest = sha256_hex(body)
        operator = {"principal": by, "role": "operator"}
        async with self.key_locks.hold(f"{region}/{profile_key(subject_id)}"):
            over = Version(stored.etag, sha256_hex(stored.body))
            try:
                intent = await self._write_profile(subject, body, metadata, by=operator, act="resigned", over=over)
            except PreconditionFailed:
                raise self._profile_conflict(subject_id) from None
            await self._outcome(
                "subject.resigned",
                {
                    "subject": subject_id,
                    "region": region,
                    "by": operator,
                    "reason": found.violation.code if found.violation else "",
                    "old_profile_sha256": found.sha256,
                    "new_profile_sha256": digest,
                    "intent": intent,
                },
                region,
            )
        self._remember(Profile(subject, digest))
        return True

    async def subject_ids(self) -> list[str]:
        """Every subject with a profile in any region (for operators' commands; lists every store)."""
        found: set[str] = set()
        for region, store in self.stores.items():
            for key in await self._op(region, "list", lambda store=store: store.list("subjects/")):
                parts = key.split("/")
                if len(parts) == 3 and parts[2] == PROFILE:
                    found.add(parts[1])
        return sorted(found)

    async def profile(self, subject_id: str, *, fresh: bool = False) -> Profile:
        """The subject's stored facts, verified or not (``UnknownSubject`` if it has none); ``fresh``: not from the cache."""
        found = await self._find_profile(subject_id, missing_ok=False, fresh=fresh)
        assert found is not None
        return found

    async def subject(self, subject_id: str, caller: Caller | None = None) -> Subject:
        """The subject's verified facts; a profile that fails verification is a ledgered, counted violation."""
        found = await self.profile(subject_id)
        if found.violation is not None:
            raise await self._profile_violation(caller, found)
        return found.subject

    async def _profile_violation(self, caller: Caller | None, profile: Profile) -> SubjectFactsUnverified:
        assert profile.violation is not None
        subject = profile.subject
        await self._violation(caller, subject, PROFILE_TAG_KEY, subject.home_region, profile.violation)
        return SubjectFactsUnverified(
            f"the facts of subject `{subject.id}` cannot be proven (its stored profile fails verification); nothing that rests on them is served. "
            f"An operator who has checked them can sign them again with `gateway subjects resign {subject.id}`",
            reasons=[{"code": profile.violation.code, "rule": "residency.profile", "detail": profile.violation.detail}],
            region=subject.home_region,
        )

    async def _load_profile(self, region: str, store: RecordStore, subject_id: str) -> Profile | None:
        unknown = Subject(id=subject_id, home_region=region, residence="")
        try:
            obj = await self._op(region, "get", lambda: store.get(profile_key(subject_id)))
        except ObjectNotFound:
            return None
        except ObjectCorrupt:
            return Profile(unknown, "", corrupt_record(PROFILE_TAG_KEY, region))
        digest = sha256_hex(obj.body)
        try:
            tag = self.check_tag(obj.metadata, region=region, subject=subject_id, key=PROFILE_TAG_KEY, body=obj.body)
            if tag.category != PROFILE_CATEGORY:
                raise TagViolation("tag-binding-mismatch", f"the tag of `{subject_id}`'s profile is not a profile's tag")
            data = json.loads(obj.body)
            if data.get("subject") != subject_id or data.get("home_region") != region:
                raise TagViolation("tag-binding-mismatch", f"the profile of `{subject_id}` names another subject or region")
            subject = Subject(
                id=subject_id,
                home_region=region,
                residence=data["residence"],
                nationality=data.get("nationality"),
                us_person=data.get("us_person"),
                location=data.get("location"),
            )
        except TagViolation as violation:
            return Profile(unknown, digest, violation)
        except (ValueError, UnicodeDecodeError, AttributeError, KeyError):
            return Profile(unknown, digest, TagViolation("tag-malformed", f"the profile of `{subject_id}` cannot be read"))
        return Profile(subject, digest)

    def _remember(self, profile: Profile) -> None:
        """Cache a verified profile (an unverified one is read again next time, so a re-signed profile counts at once)."""
        if profile.verified:
            self._profiles[profile.subject.id] = (profile, self.clock())

    def _cached(self, subject_id: str) -> Profile | None:
        """The cached profile, if read less than ``cache_seconds`` ago."""
        found = self._profiles.get(subject_id)
        if found is None:
            return None
        profile, at = found
        if (self.clock() - at).total_seconds() >= self.cache_seconds or self.clock() < at:
            if self._profiles.get(subject_id) is found:
                del self._profiles[subject_id]
            return None
        return profile

    async def _find_profile(self, subject_id: str, *, missing_ok: bool, fresh: bool = False) -> Profile | None:
        """The subject's profile: cached (unless ``fresh``), else from the region its home claim names (see the module docstring)."""
        if not is_identifier(subject_id):
            raise InvalidRequest(f"subject id `{subject_id}` must be letters, digits, `.`, `_` or `-`", code="invalid-subject")
        cached = None if fresh else self._cached(subject_id)
        if cached is not None:
            return cached
        try:
            region = await self._claimed_region(subject_id)
        except _NoDirectory:
            found = await self._search_profile(subject_id)
        else:
            found = None if region is None else await self._load_profile(region, self.stores[region], subject_id)
            if region is not None and found is None:
                # claimed but not in its home region: a registration cut short, or facts moved out of their region,
                # which every region is asked about, so that a copy found elsewhere is a counted violation
                found = await self._search_profile(subject_id)
        if found is not None:
            self._remember(found)
            return found
        if missing_ok:
            return None
        raise UnknownSubject(f"subject `{subject_id}` is not registered; register it with PUT /v1/subjects/{subject_id}")

    async def _claimed_region(self, subject_id: str) -> str | None:
        """The region the subject's home claim names; None if it has none and the directory is complete.

        ``_NoDirectory`` when there is no claim and the directory may be incomplete, or when the control store
        cannot be read (the regions are asked instead, as before the directory)."""
        try:
            held = json.loads((await self.control.get(home_claim_key(subject_id))).body)
        except ObjectNotFound:
            if not await self._directory_complete():
                raise _NoDirectory from None
            return None
        except (GatewayError, ValueError, UnicodeDecodeError):
            raise _NoDirectory from None
        region = held.get("home_region") if isinstance(held, dict) else None
        owner = self.config.regions[region].owner if isinstance(region, str) and region in self.config.regions else None
        if owner is not None:
            raise not_region_owner(region, owner)  # a peer's subject (federation): its gateway answers for it
        if region not in self.stores:
            raise _NoDirectory  # a claim this configuration cannot follow: look everywhere, as without one
        return str(region)

    async def _search_profile(self, subject_id: str) -> Profile | None:
        """The subject's profile, looked for in every region (a subject without a home claim); its claim is written when found."""
        results = await asyncio.gather(*(self._load_profile(r, s, subject_id) for r, s in self.stores.items()), return_exceptions=True)
        found = [r for r in results if isinstance(r, Profile)]
        failed = {region: r for region, r in zip(self.stores, results, strict=True) if isinstance(r, BaseException)}
        if len(found) > 1:
            regions = ", ".join(f"`{p.subject.home_region}`" for p in found)
            raise Conflict(f"subject `{subject_id}` is registered in several regions ({regions}); resolve before use", code="subject-ambiguous")
        if found:
            if found[0].verified:
                with contextlib.suppress(GatewayError):  # best effort: the next lookup tries again
                    await self._claim_home(subject_id, found[0].subject.home_region)
            return found[0]
        if failed and await self._may_live_in(subject_id, failed):
            # A region we could not ask may hold the subject: do not guess.
            error = next(iter(failed.values()))
            if isinstance(error, GatewayError):
                raise error
            raise StoreError(f"could not look up subject `{subject_id}` in every region") from error
        return None

    async def claimed_home(self, subject_id: str) -> str | None:
        """The region the subject's home claim names, whichever gateway serves it (None: no claim);
        ``GatewayError`` when the control store cannot be read. Claims never change, so callers may keep the answer."""
        try:
            held = json.loads((await self.control.get(home_claim_key(subject_id))).body)
        except ObjectNotFound:
            return None
        except (ValueError, UnicodeDecodeError):
            return None
        region = held.get("home_region") if isinstance(held, dict) else None
        return region if isinstance(region, str) and region in self.config.regions else None

    async def home_region(self, subject_id: str) -> str | None:
        """The home region of a subject this gateway serves (by its claim, or found in its stores); None for
        any other id: unknown, or a peer's."""
        try:
            found = await self._find_profile(subject_id, missing_ok=True)
        except NotRegionOwner:
            return None
        return None if found is None else found.subject.home_region

    async def claim_peer_home(self, subject_id: str, region: str) -> None:
        """Note in the directory (create-only, as at registration) that a subject lives in a peer's ``region``;
        ``subject-region-conflict`` if a claim names another region."""
        assert self.config.regions[region].owner is not None
        await self._claim_home(subject_id, region)

    async def index_subjects(self) -> tuple[int, int]:
        """Give every stored subject without a home claim its claim, then mark the directory complete.

        Lists every region's store (an operator's command, run once after upgrading). Returns (claims written,
        subjects seen). A subject stored in several regions stops it (``subject-ambiguous``): resolve that first.
        """
        seen: dict[str, str] = {}
        for region, store in self.stores.items():
            for key in await self._op(region, "list", lambda store=store: store.list("subjects/")):
                parts = key.split("/")
                if len(parts) == 3 and parts[2] == PROFILE:
                    if parts[1] in seen:
                        raise Conflict(
                            f"subject `{parts[1]}` is stored in `{seen[parts[1]]}` and `{region}`; resolve before indexing", code="subject-ambiguous"
                        )
                    seen[parts[1]] = region
        written = 0
        for subject_id, region in sorted(seen.items()):
            try:
                await self.control.head(home_claim_key(subject_id))
            except ObjectNotFound:
                await self._claim_home(subject_id, region)
                written += 1
        await self.mark_directory_complete()
        return written, len(seen)

    async def open_directory(self) -> bool:
        """At start-up: whether the directory is complete, marking it so on a deployment that stores no subject yet.

        False (subjects without a claim are looked for in every region) when stored subjects predate it and
        ``gateway subjects index`` has not run, or when a store cannot be asked now."""
        if await self._directory_complete():
            return True
        try:
            stored = [await self.control.list("subjects/")] + [await store.list("subjects/") for store in self.stores.values()]
        except GatewayError:
            return False
        if any(stored):
            return False
        await self.mark_directory_complete()
        return True

    async def mark_directory_complete(self) -> None:
        """Make the home claims authoritative: a subject without one is unknown, and no region is asked for it."""
        marker = canonical({"complete": True, "at": isoformat(self.clock())})
        with contextlib.suppress(PreconditionFailed):
            await self.control.put(DIRECTORY_KEY, marker, {}, if_absent=True)
        self._complete = True

    async def _directory_complete(self) -> bool:
        """Whether ``DIRECTORY_KEY`` is in the control store. Once seen it is remembered: the marker is never
        removed, so an unknown id costs one read of its claim, not a second read of the marker every time."""
        if not self._complete:
            try:
                await self.control.head(DIRECTORY_KEY)
                self._complete = True
            except GatewayError:  # not there yet, or the control store cannot say: asked again next time
                pass
        return self._complete

    async def _may_live_in(self, subject_id: str, regions: Mapping[str, BaseException]) -> bool:
        """Whether the subject may live in one of ``regions`` (that could not be asked), by its home claim.

        Every subject registered since home claims exist has one in the control
        store, so a region that is down cannot hold a subject whose claim names
        another region or who has no claim: the other regions go on registering
        and serving while it is down. If the control store cannot be read
        either, it may (fail closed).
        """
        try:
            held = json.loads((await self.control.get(home_claim_key(subject_id))).body)
        except ObjectNotFound:
            return False
        except (GatewayError, ValueError, UnicodeDecodeError):
            return True
        return not isinstance(held, dict) or held.get("home_region") in regions

    async def _live_profile(self, subject_id: str) -> bool:
        """Whether a cached profile is still in its home store (one head); if not, its cache entry is dropped.

        A store that lost its contents (a bucket re-created empty) no longer has
        the profile the cache remembers. Writes and deletes call this before
        they are decided, so the subject is looked up afresh (``unknown-subject``
        when it is gone); a read calls it only when its record is missing, so
        the common read costs nothing more. True when nothing is cached.
        """
        cached = self._profiles.get(subject_id)
        if cached is None:
            return True
        region = cached[0].subject.home_region
        try:
            await self._op(region, "head", lambda: self.stores[region].head(profile_key(subject_id)))
        except ObjectNotFound:
            if self._profiles.get(subject_id) is cached:
                del self._profiles[subject_id]
            return False
        return True

    # --- records -------------------------------------------------------------

    async def put_record(
        self,
        caller: Caller,
        subject_id: str,
        key: str,
        category: str | None,
        body: bytes,
        *,
        precondition: Precondition = NO_PRECONDITION,
        extra: Mapping[str, str] | None = None,
        object_size: int | None = None,
    ) -> tuple[ResidencyTag, bool]:
        """Store a record in the subject's home region: (its tag, whether this write created it).

        Decided first, then written as the module docstring says: intent, a put
        over the version the intent names, outcome. ``extra``: more metadata to
        store beside the tag (the S3 front's user metadata), read back as
        ``ReadResult.extra``; it is not covered by the tag, and may not use the
        tag's names. ``object_size``: the body is the manifest of a chunked
        object of that size, and the record is marked so.
        """
        _require_service(caller)
        _check_key(key)
        if category is None:
            raise InvalidRequest(f"query parameter `category` is required: one of {', '.join(self.config.categories)}", code="invalid-category")
        if category not in self.config.rank:
            raise InvalidRequest(f"unknown category `{category}`; use one of {', '.join(self.config.categories)}", code="invalid-category")
        if len(body) > self.config.limits.max_record_bytes:
            raise PayloadTooLarge(f"record is {len(body)} bytes; the limit is {self.config.limits.max_record_bytes}")
        if extra and extra_metadata(extra) != extra:
            raise InvalidRequest("extra metadata may not use the names of the residency tag", code="invalid-metadata")
        # decided before anything about the record is looked at: a refused caller learns nothing of it
        await self._live_profile(subject_id)  # a subject whose profile is gone is unknown, not written to
        profile, decision = await self._governed(caller, subject_id, "record.write", {"key": key})
        subject = profile.subject
        region = self.config.regions[subject.home_region]
        store = self.stores[region.id]
        tag, metadata = self._tagged(region.id, subject.id, key, category, body)
        if object_size is not None:
            metadata |= {MANIFEST_METADATA: "1", OBJECT_SIZE_METADATA: str(object_size)}
        metadata = validate_metadata({**(extra or {}), **metadata})  # too much extra metadata is refused before any intent
        object_key = record_key(subject.id, key)
        about = _read_entry(
            caller, subject, decision, {"key": key, "category": category, "sha256": tag.sha256, "size": tag.size}, profile_sha256=profile.sha256
        )
        async with self.key_locks.hold(f"{region.id}/{object_key}"):
            for attempt in range(WRITE_TRIES):
                current = await self._current(caller, subject, key)
                await self._require(precondition, current, caller, subject, decision, profile, key, "record.write")
                replaces = None if current is None else current.sha256
                intent = int((await self.audit.record("record.write-intent", {**about, "object": object_key, "replaces": replaces}))["seq"])
                if current is None:
                    put = functools.partial(store.put, object_key, body, metadata, if_absent=True)
                else:
                    put = functools.partial(store.put, object_key, body, metadata, if_match=current.etag)
                try:
                    await self._in_store(intent, functools.partial(self._op, region.id, "put", put))
                except PreconditionFailed:  # another process wrote the key meanwhile: start again from its version
                    await _pause(attempt)
                    continue
                written = {
                    "subject": subject.id,
                    "key": key,
                    "region": region.id,
                    "category": category,
                    "sha256": tag.sha256,
                    "size": tag.size,
                    "by": _who(caller),
                    "profile_sha256": profile.sha256,
                    "replaces": replaces,
                    "intent": intent,
                }
                await self._outcome("record.written", written, region.id)
                return tag, current is None
        raise _conflict(key)

    async def delete_record(self, caller: Caller, subject_id: str, key: str, *, precondition: Precondition = NO_PRECONDITION) -> None:
        """Erase a record, under the same residency decision as a read; a legal hold refuses it (409 `legal-hold`)."""
        _require_service(caller)
        _check_key(key)
        await self._live_profile(subject_id)  # a subject whose profile is gone is unknown
        profile, decision = await self._governed(caller, subject_id, "record.delete", {"key": key})
        subject = profile.subject
        region = subject.home_region
        store = self.stores[region]
        object_key = record_key(subject.id, key)
        async with self.key_locks.hold(f"{region}/{object_key}"):
            for attempt in range(WRITE_TRIES):
                current = await self._current(caller, subject, key)
                await self._require(precondition, current, caller, subject, decision, profile, key, "record.delete")
                if current is None:
                    raise RecordNotFound(f"subject `{subject.id}` has no record `{key}`")
                entry = _read_entry(caller, subject, decision, {"key": key}, profile_sha256=profile.sha256)
                intent = int((await self.audit.record("record.delete-intent", {**entry, "object": object_key, "replaces": current.sha256}))["seq"])
                delete = functools.partial(store.delete, object_key, if_match=current.etag)
                try:
                    await self._in_store(intent, functools.partial(self._op, region, "delete", delete))
                except (PreconditionFailed, ObjectNotFound):  # changed or deleted meanwhile by another process: look again
                    await _pause(attempt)
                    continue
                await self._outcome("record.deleted", {**entry, "intent": intent}, region)
                return
        raise _conflict(key)

    async def _current(self, caller: Caller, subject: Subject, key: str) -> Version | None:
        """The record's stored version (None: there is none). A record whose stored header is unreadable is a
        residency violation, as on a read: it cannot be said which version a write would replace."""
        region = subject.home_region
        store = self.stores[region]
        object_key = record_key(subject.id, key)
        try:
            info = await self._op(region, "head", lambda: store.head(object_key))
            try:
                return Version(info.etag, self.check_head(info, region=region, subject=subject.id, key=key).sha256)
            except TagViolation:  # a damaged record: name the body it holds, whatever its tag says
                obj = await self._op(region, "get", lambda: store.get(object_key))
                return Version(obj.etag, sha256_hex(obj.body))
        except ObjectNotFound:
            return None
        except ObjectCorrupt:
            raise await self._violation(caller, subject, key, region, corrupt_record(key, region)) from None

    async def _require(
        self,
        precondition: Precondition,
        current: Version | None,
        caller: Caller,
        subject: Subject,
        decision: ResidencyDecision,
        profile: Profile,
        key: str,
        kind: str,
    ) -> None:
        """412 (ledgered) unless the request's conditions hold for the record's current version."""
        sha256 = None if current is None else current.sha256
        if precondition.holds(sha256):
            return
        await self.audit.record(
            "record.precondition-failed",
            _read_entry(caller, subject, decision, {"key": key, "act": kind, "current": sha256}, profile_sha256=profile.sha256),
        )
        state = "does not exist" if sha256 is None else "exists" if precondition.if_none_match else "is at another version"
        raise RecordPreconditionFailed(
            f"record `{key}` {state}, so the request's `If-Match` / `If-None-Match` does not hold; read it again and retry with its current `ETag`",
            etag=None if sha256 is None else f'"{sha256}"',
        )

    def decide_read(self, caller: Caller, subject: Subject) -> ResidencyDecision:
        assert caller.region and caller.service and caller.purpose
        return self.residency.decide(caller_region=caller.region, service=caller.service, purpose=caller.purpose, data_region=subject.home_region)

    async def _governed(self, caller: Caller, subject_id: str, kind: str, extra: Mapping[str, Any]) -> tuple[Profile, ResidencyDecision]:
        """The residency decision for ``caller`` on a subject's data, then the subject's facts, verified.

        Every data-plane act (read, list, write, delete) goes through here: a
        refusal (451 ``residency-refused``) comes first and reads the same
        whatever exists, then facts that fail verification are a ledgered,
        counted violation (451 ``residency-violation``).
        """
        profile = await self.profile(subject_id)
        decision = await self._decided(caller, profile.subject, kind, extra)
        if not profile.verified:
            raise await self._profile_violation(caller, profile)
        return profile, decision

    async def _decided(self, caller: Caller, subject: Subject, kind: str, extra: Mapping[str, Any]) -> ResidencyDecision:
        decision = self.decide_read(caller, subject)
        reason = decision.reasons[0]
        self.observer.residency_decision(
            outcome=decision.outcome, caller_jurisdiction=decision.caller_jurisdiction, data_region=decision.data_region, reason=reason.code
        )
        if not decision.allowed:
            await self.audit.record(kind, _read_entry(caller, subject, decision, extra, profile_sha256=None))
            raise ResidencyRefused(
                f"`{decision.caller_jurisdiction}` callers may not read data stored in `{decision.data_region}` "
                f"({decision.data_jurisdiction}): {reason.detail}",
                reasons=[{"code": r.code, "rule": r.rule, "detail": r.detail} for r in decision.reasons],
                region=decision.data_region,
            )
        return decision

    async def _violation(self, caller: Caller | None, subject: Subject, key: str, region: str, violation: TagViolation) -> ResidencyViolation:
        self.observer.residency_violation(region=region, reason=violation.code)
        # ids of subjects and records stay out of the logs (see gateway.logs); the ledger entry names them
        log.warning("residency violation", extra={"event": "residency-violation", "region": region, "reason": violation.code})
        await self.audit.record(
            "residency.violation",
            {"subject": subject.id, "key": key, "region": region, "reason": violation.code, "by": None if caller is None else _who(caller)},
        )
        return ResidencyViolation(
            f"record `{key}` cannot be proven to belong in `{region}`; it is not served",
            reasons=[{"code": violation.code, "rule": "residency.tag", "detail": violation.detail}],
            region=region,
        )

    async def get_record(self, caller: Caller, subject_id: str, key: str) -> ReadResult:
        _require_service(caller)
        _check_key(key)
        profile, decision = await self._governed(caller, subject_id, "service.read", {"key": key})
        subject = profile.subject
        region = subject.home_region
        store = self.stores[region]
        try:
            obj = await self._op(region, "get", lambda: store.get(record_key(subject.id, key)))
        except ObjectNotFound:
            if not await self._live_profile(subject.id):
                raise UnknownSubject(f"subject `{subject.id}` is not registered; register it with PUT /v1/subjects/{subject.id}") from None
            raise RecordNotFound(f"subject `{subject.id}` has no record `{key}`") from None
        except ObjectCorrupt:
            raise await self._violation(caller, subject, key, region, corrupt_record(key, region)) from None
        try:
            tag = self.check_tag(obj.metadata, region=region, subject=subject.id, key=key, body=obj.body)
        except TagViolation as violation:
            raise await self._violation(caller, subject, key, region, violation) from None
        entry = await self.audit.record(
            "service.read", _read_entry(caller, subject, decision, {"key": key, "sha256": tag.sha256}, profile_sha256=profile.sha256)
        )
        manifest = obj.metadata.get(MANIFEST_METADATA) == "1"
        meta = _meta(tag, obj.legal_hold, obj.metadata)
        return ReadResult(
            body=obj.body, meta=meta, decision=decision, ledger_seq=int(entry.get("seq", 0)), extra=extra_metadata(obj.metadata), manifest=manifest
        )

    async def read_under_case(self, caller: Caller, subject: Subject, key: str, *, case_id: str) -> ReadResult:
        """A record read whose legal basis is an approved case (human support access), not the residency rules.

        The residency tag is still verified, and the read is in the ledger before any byte is served.
        """
        store = self.stores[subject.home_region]
        try:
            obj = await self._op(subject.home_region, "get", lambda: store.get(record_key(subject.id, key)))
        except ObjectNotFound:
            raise RecordNotFound(f"subject `{subject.id}` has no record `{key}`") from None
        except ObjectCorrupt:
            raise await self._violation(caller, subject, key, subject.home_region, corrupt_record(key, subject.home_region)) from None
        try:
            tag = self.check_tag(obj.metadata, region=subject.home_region, subject=subject.id, key=key, body=obj.body)
        except TagViolation as violation:
            raise await self._violation(caller, subject, key, subject.home_region, violation) from None
        decision = ResidencyDecision(
            allowed=True,
            reasons=(Reason("approved-case", "lockbox.case", f"case `{case_id}`"),),
            caller_jurisdiction="",
            data_region=subject.home_region,
            data_jurisdiction=tag.jurisdiction,
        )
        profile = self._cached(subject.id)
        entry = await self.audit.record(
            "support.read",
            {**_read_entry(caller, subject, decision, {"key": key, "sha256": tag.sha256}, profile_sha256=profile and profile.sha256), "case": case_id},
        )
        return ReadResult(body=obj.body, meta=_meta(tag, obj.legal_hold), decision=decision, ledger_seq=int(entry.get("seq", 0)))

    async def list_records(self, caller: Caller, subject_id: str, *, after: str | None = None, limit: int | None = None) -> Listing:
        """The metadata of the subject's records, by key; a record that cannot prove its residency (an unreadable
        header, a tag that fails, a size other than its tag's) is skipped as a violation, and counted in ``skipped``.

        With ``after`` and ``limit``, one page: the first ``limit`` keys after ``after`` (skipped ones included,
        so a page may hold fewer records than ``limit``); only that page's records are read."""
        _require_service(caller)
        profile, decision = await self._governed(caller, subject_id, "service.list", {})
        subject = profile.subject
        region = subject.home_region
        store = self.stores[region]
        prefix = f"{subject_prefix(subject.id)}records/"
        keys = sorted(await self._op(region, "list", lambda: store.list(prefix)))
        if after is not None:
            keys = [k for k in keys if k[len(prefix) :] > after]
        next_after = None
        if limit is not None and len(keys) > limit:
            keys = keys[:limit]
            next_after = keys[-1][len(prefix) :]
        limiter = asyncio.Semaphore(16)

        async def one(object_key: str) -> RecordMeta | TagViolation | None:
            key = object_key[len(prefix) :]
            async with limiter:
                try:
                    info = await self._op(region, "head", lambda: store.head(object_key))
                except ObjectNotFound:
                    return None  # deleted while listing
                except ObjectCorrupt:
                    violation = corrupt_record(key, region)
                else:
                    try:
                        return _meta(self.check_head(info, region=region, subject=subject.id, key=key), info.legal_hold, info.metadata)
                    except TagViolation as failed:
                        violation = failed
            await self._violation(caller, subject, key, region, violation)
            return violation

        found = await asyncio.gather(*(one(k) for k in keys))
        metas = [m for m in found if isinstance(m, RecordMeta)]
        skipped = sum(1 for m in found if isinstance(m, TagViolation))
        await self.audit.record(
            "service.list", _read_entry(caller, subject, decision, {"count": len(metas), "skipped": skipped}, profile_sha256=profile.sha256)
        )
        return Listing(metas, decision, skipped, next_after)


async def _pause(attempt: int) -> None:
    """A random wait before a write that lost a race tries again, so two processes' writers do not keep colliding."""
    await asyncio.sleep(random.uniform(0, RETRY_PAUSE * 2**attempt))


def _conflict(key: str) -> Conflict:
    return Conflict(
        f"record `{key}` was changed by other writers {WRITE_TRIES} times while this request tried to write it; retry the request",
        code="write-conflict",
    )


def who(caller: Caller) -> dict[str, Any]:
    """The caller as the ledger names it; ``via``: the peer gateway that forwarded its request (federation)."""
    found: dict[str, Any] = {"principal": caller.principal, "role": caller.role}
    if caller.role == "service":
        found |= {"service": caller.service, "region": caller.region, "purpose": caller.purpose}
    if caller.via is not None:
        found["via"] = caller.via
    return found


_who = who


def _read_entry(caller: Caller, subject: Subject, decision: ResidencyDecision, extra: Mapping[str, Any], *, profile_sha256: str | None) -> dict[str, Any]:
    """A data-plane entry; ``profile_sha256`` names the subject facts the act rested on (None for a refusal: it rests on the region alone)."""
    return {
        **({} if profile_sha256 is None else {"profile_sha256": profile_sha256}),
        "by": _who(caller),
        "subject": subject.id,
        "region": decision.data_region,
        "outcome": decision.outcome,
        "reasons": [{"code": r.code, "rule": r.rule} for r in decision.reasons],
        "mechanism": decision.mechanism,
        **extra,
    }


def _meta(tag: ResidencyTag, legal_hold: bool, metadata: Mapping[str, str] | None = None) -> RecordMeta:
    object_size = None
    if metadata is not None and metadata.get(MANIFEST_METADATA) == "1":
        with contextlib.suppress(KeyError, ValueError):
            object_size = int(metadata[OBJECT_SIZE_METADATA])
    return RecordMeta(
        subject=tag.subject,
        key=tag.key,
        category=tag.category,
        region=tag.region,
        sha256=tag.sha256,
        size=tag.size,
        written_at=tag.written_at,
        legal_hold=legal_hold,
        object_size=object_size,
        etag=None if metadata is None else metadata.get(ETAG_METADATA),
    )


def _check_key(key: str) -> None:
    if not is_identifier(key):
        raise InvalidRequest(f"record key `{key}` must be letters, digits, `.`, `_` or `-`", code="invalid-key")


def _require_service(caller: Caller) -> None:
    if caller.role != "service":
        raise Forbidden(f"role `{caller.role}` may not use the data plane; a service token is needed")
