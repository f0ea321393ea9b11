"""Frozen domain types shared by every part of the gateway.

Nothing here knows any particular country, instrument or region: those come
from ``regions.toml`` (see ``gateway.config``).
"""

from __future__ import annotations

import inspect
import re
import time
import types
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Literal, TypeVar

from gateway.countries import COUNTRIES

# Identifiers that appear in URLs, object keys and the ledger: subjects, record
# keys, services, region ids. Conservative on purpose: they become path
# segments in the file store and object keys in S3.
IDENTIFIER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"  # also the segment of a store key (gateway.stores.base)
IDENTIFIER = re.compile(rf"^{IDENTIFIER_PATTERN}\Z")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


_T = TypeVar("_T")


# Kept because it still pays (bench.engine's case mix, 2026-12-02, 2 shared vCPUs): a three-field
# Reason is built in 0.78 µs against 1.95 µs; without it on Decision and Obligations alone the engine
# takes 11-15% longer per decision (interleaved in-process passes, best and 10th percentile).
def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an ``__init__`` that fills its slots through their descriptors.

    The ``__init__`` that ``dataclass(frozen=True)`` writes calls
    ``object.__setattr__`` once per field, which makes a ten-field object cost
    about 2.5 µs on a small VM; a slot's own setter does the same work in well
    under half that. The class stays frozen (its ``__setattr__`` still raises),
    and its signature, defaults, equality, hash and ``dataclasses.replace`` are
    unchanged. Apply it above ``@dataclass(frozen=True, slots=True)``. Refused
    (``TypeError``): a class whose ``__init__`` takes anything but its fields
    in order (keyword-only fields, ``InitVar``s, ``init=False``), a
    ``default_factory``, or a ``__post_init__``.
    """
    name = cls.__name__
    params_of = getattr(cls, "__dataclass_params__", None)
    if "__slots__" not in cls.__dict__ or params_of is None or not params_of.frozen or hasattr(cls, "__post_init__"):
        raise TypeError(f"{name}: quick_init needs a frozen, slotted dataclass without __post_init__")
    fields_ = fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields_]
    taken = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if (
        [p.name for p in taken] != names
        or any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in taken)
        or any(n.startswith("__quick_") for n in names)
    ):
        raise TypeError(f"{name}: quick_init needs an __init__ that takes the fields, in order, and nothing else")
    params: list[str] = []
    body: list[str] = []
    namespace: dict[str, object] = {"__name__": cls.__module__}
    for i, f in enumerate(fields_):
        if f.default_factory is not MISSING:
            raise TypeError(f"{name}.{f.name}: quick_init takes plain defaults only, not a default_factory")
        slot = inspect.getattr_static(cls, f.name)
        if not isinstance(slot, types.MemberDescriptorType):
            raise TypeError(f"{name}.{f.name}: quick_init needs a slot for every field")
        namespace[f"__quick_set{i}"] = slot.__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"__quick_default{i}"] = f.default
            params.append(f"{f.name}=__quick_default{i}")
        body.append(f"    __quick_set{i}(__quick_self, {f.name})")
    exec(f"def __init__(__quick_self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]
    return cls


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and bool(IDENTIFIER.match(value)) and ".." not in value


def is_country(value: object) -> bool:
    """An ISO 3166-1 alpha-2 code of an assigned country (``gateway.countries``)."""
    return isinstance(value, str) and value in COUNTRIES


def isoformat(moment: datetime) -> str:
    """UTC, second precision unless finer is present, with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def clock_text(clock: Clock) -> Callable[[], str]:
    """A function returning ``isoformat(clock())``: the ledger stamps every entry with it.

    For ``system_clock`` it reads the time without building a ``datetime`` (0.7 µs against
    2.8 µs) and formats the date and second once per second. Kept because it still pays:
    durable appends with group commit at 32 writers, ``bench.ledger`` on tmpfs (where the
    event loop's CPU, not fsync, bounds it), 9-13% more per second (median of 7 interleaved
    pairs, 2026-12-02); on a disk the fsync hides it.
    """
    if clock is not system_clock:
        return lambda: isoformat(clock())
    last_second, last_text = -1, ""

    def system_time_text() -> str:
        nonlocal last_second, last_text
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        if second != last_second:
            last_second, last_text = second, datetime.fromtimestamp(second, UTC).isoformat()[:-6]  # an aware UTC time ends in "+00:00"
        micros = nanos // 1000
        return f"{last_text}.{micros:06d}Z" if micros else last_text + "Z"

    return system_time_text


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time; a bare date means midnight UTC. Naive times are UTC."""
    text = value.strip()
    if len(text) == 10:
        text += "T00:00:00"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- configuration objects ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bloc:
    id: str
    name: str
    free_flow: bool  # personal data moves freely between members


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str  # ISO 3166-1 alpha-2
    name: str
    blocs: frozenset[str] = frozenset()


FILE_INLINE_READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class FileStoreSpec:
    path: str  # relative paths are under the data directory
    inline_read_bytes: int = FILE_INLINE_READ_BYTES  # objects up to this size are read on the event loop; 0: always in a thread
    kind: Literal["file"] = "file"


# A region's S3 calls, by default: an endpoint that accepts and never answers fails a call after
# 2 attempts x 0.8 s read time-out (+ at most 0.05 s back-off), about 1.65 s; the 2 s deadline bounds
# whatever else (an answer that trickles in, a listing of many pages).
S3_CONNECT_TIMEOUT = 0.5
S3_READ_TIMEOUT = 0.8
S3_MAX_ATTEMPTS = 2
S3_DEADLINE = 2.0


@dataclass(frozen=True, slots=True)
class S3StoreSpec:
    bucket: str
    region_name: str
    endpoint_url: str | None = None
    object_lock: bool = False
    create_bucket: bool = True
    # How long one call may take (``gateway.s3client``): per attempt, seconds to connect and to wait
    # for each read of the answer; attempts in all, the first included; and a deadline, in seconds,
    # for the whole call (every attempt, back-off and page). A hung region fails each call within it.
    connect_timeout: float = S3_CONNECT_TIMEOUT
    read_timeout: float = S3_READ_TIMEOUT
    max_attempts: int = S3_MAX_ATTEMPTS
    deadline: float = S3_DEADLINE
    kind: Literal["s3"] = "s3"


@dataclass(frozen=True, slots=True)
class MemoryStoreSpec:
    kind: Literal["memory"] = "memory"


StoreSpec = FileStoreSpec | S3StoreSpec | MemoryStoreSpec


@dataclass(frozen=True, slots=True)
class Region:
    """A datacenter region. ``owner`` names the peer gateway that serves it (federation); such a region has
    no store and no tag key here (``store`` is None), but its jurisdiction still decides reads of its data."""

    id: str
    location: str
    jurisdiction: str
    store: StoreSpec | None
    tag_key: str  # private key file; relative paths are under the data directory ("" for a peer's region)
    owner: str | None = None  # the peer that serves this region; None: this gateway

    @property
    def local(self) -> bool:
        return self.owner is None


@dataclass(frozen=True, slots=True)
class TransferMechanism:
    """A lawful basis for moving personal data out of a jurisdiction or bloc.

    It covers reads of data stored in any of ``sources`` (jurisdiction codes or
    bloc ids) by callers in any of ``destinations``, for the listed services and
    only for the listed purposes.
    """

    id: str
    kind: str  # e.g. dpf, scc, bcr, adequacy
    description: str
    sources: frozenset[str]
    destinations: frozenset[str]
    services: frozenset[str]
    purposes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Identity:
    token_public_key: str  # path; relative paths are under the data directory
    token_private_key: str  # used only by `gateway token issue`
    provider_key: str  # signs packages, ledger heads and checkpoints
    issuer: str
    audience: str
    token_ttl_seconds: int
    max_token_lifetime_seconds: int = 86400  # a token whose `exp - iat` is longer is refused, whoever signed it


# --- requests and records ------------------------------------------------------

Role = Literal["service", "intake", "legal", "ops", "support"]
ROLES: tuple[str, ...] = ("service", "intake", "legal", "ops", "support")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from a verified token."""

    principal: str  # token subject: service name or person/system id
    role: str
    service: str | None = None
    region: str | None = None
    purpose: str | None = None
    via: str | None = None  # the peer gateway that forwarded the request (federation); None: called here directly


@dataclass(frozen=True, slots=True)
class Subject:
    id: str
    home_region: str
    residence: str
    nationality: str | None = None
    us_person: bool | None = None
    location: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.id,
            "home_region": self.home_region,
            "residence": self.residence,
            "nationality": self.nationality,
            "us_person": self.us_person,
            "location": self.location,
        }


@dataclass(frozen=True, slots=True)
class ResidencyTag:
    """What the gateway signs at write time; bound to one object in one region."""

    region: str
    jurisdiction: str
    subject: str
    key: str
    category: str
    sha256: str
    size: int
    written_at: str  # RFC 3339, UTC

    def claims(self) -> dict[str, object]:
        return {
            "v": 1,
            "region": self.region,
            "jurisdiction": self.jurisdiction,
            "subject": self.subject,
            "key": self.key,
            "category": self.category,
            "sha256": self.sha256,
            "size": self.size,
            "written_at": self.written_at,
        }


@dataclass(frozen=True, slots=True)
class RecordMeta:
    subject: str
    key: str
    category: str
    region: str
    sha256: str
    size: int
    written_at: str
    legal_hold: bool = False
    object_size: int | None = None  # the record is the manifest of a chunked object of this many bytes (S3 front)
    # the ETag its S3 writer stored beside the tag, for S3 listings only: not covered by the tag (GetObject computes
    # the ETag from the verified body); None for a record written through the HTTP API
    etag: str | None = None

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {
            "subject": self.subject,
            "key": self.key,
            "category": self.category,
            "region": self.region,
            "sha256": self.sha256,
            "size": self.size,
            "written_at": self.written_at,
            "legal_hold": self.legal_hold,
        }
        if self.object_size is not None:
            found["object_size"] = self.object_size
        return found


@quick_init
@dataclass(frozen=True, slots=True)
class Reason:
    """A stable kebab-case code and the rule that produced it."""

    code: str
    rule: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ResidencyDecision:
    allowed: bool
    reasons: tuple[Reason, ...]  # the deciding reason first
    caller_jurisdiction: str
    data_region: str
    data_jurisdiction: str
    mechanism: str | None = None
    trace: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> str:
        return "allow" if self.allowed else "refuse"
