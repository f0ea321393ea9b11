"""``regions.toml`` parsed once into frozen objects whose invariants hold.

``load_config`` reads and validates the whole file and raises ``ConfigError``
with every problem found, each with its key path
(``regions.eu-west-1.jurisdiction: unknown jurisdiction `XX` ``). The engine and
services trust the resulting ``Config`` and never re-check it.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.canonical import canonical, sha256_hex
from gateway.errors import ConfigError, Finding
from gateway.findings import TableReader
from gateway.legal.policy import TABLES as LEGAL_TABLES
from gateway.legal.policy import LegalPolicy, parse_legal
from gateway.model import (
    FILE_INLINE_READ_BYTES,
    S3_CONNECT_TIMEOUT,
    S3_DEADLINE,
    S3_MAX_ATTEMPTS,
    S3_READ_TIMEOUT,
    Bloc,
    FileStoreSpec,
    Identity,
    Jurisdiction,
    MemoryStoreSpec,
    Region,
    S3StoreSpec,
    StoreSpec,
    TransferMechanism,
    is_country,
    is_identifier,
)

SUPPORTED_VERSIONS = (1,)

MAX_TOKEN_LIFETIME = 30 * 86400  # the longest `max_token_lifetime_seconds` a configuration may set


MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int = MAX_RECORD_BYTES


EXPORT_MODES = ("COMPLIANCE", "GOVERNANCE")
CHECKPOINT_EVERY = 1000
CHECKPOINT_SECONDS = 300
EXPORT_INTERVAL_SECONDS = 30  # with an export: the most of a chain's newest entries that is only on the local disk
RECONCILE_AFTER_SECONDS = 30  # see regions.toml: well above the longest a write can take (store deadlines + the ledger)


@dataclass(frozen=True, slots=True)
class AuditExport:
    """Where closed ledger segments are kept off the box: an S3 bucket with Object Lock."""

    bucket: str
    region_name: str
    endpoint_url: str | None = None
    retention_days: int = 2555  # about seven years
    mode: str = "COMPLIANCE"


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The ``[audit]`` table: checkpoint cadence and the optional off-box copy."""

    checkpoint_every: int = CHECKPOINT_EVERY
    checkpoint_seconds: int = CHECKPOINT_SECONDS
    export: AuditExport | None = None
    reconcile_after_seconds: int = RECONCILE_AFTER_SECONDS  # an intent this old without an outcome is reconciled against its store
    export_interval_seconds: int = EXPORT_INTERVAL_SECONDS  # with `export`: the open segment is closed and uploaded at least this often

    @property
    def segment_seconds(self) -> int:
        """How often, at the latest, the writer closes its open segment with a checkpoint (0: by count only).

        With an export, every ``export_interval_seconds`` while new entries
        come, so at most that much of a chain is only on the local disk;
        without one, every ``checkpoint_seconds``.
        """
        if self.export is None:
            return self.checkpoint_seconds
        return min(self.checkpoint_seconds or self.export_interval_seconds, self.export_interval_seconds)


@dataclass(frozen=True, slots=True)
class Startup:
    """The ``[startup]`` table: what the gateway needs before it serves.

    By default it starts when at least one region's store is ready; the others
    are down until they heal in the background. ``require_all_regions`` refuses
    to start unless every region's store and the control store are ready (an
    operator who prefers a crash-looping pod to a partial one).
    """

    require_all_regions: bool = False


@dataclass(frozen=True, slots=True)
class SupportAccess:
    """The ``[support_access]`` table: who may relay a customer's consent to a support-access (lockbox) request.

    ``consent_relays`` names the services (the ``svc`` of a service token) that speak for the
    customer; no other caller can approve or decline. Without the table nobody can, so support
    access is off.
    """

    consent_relays: tuple[str, ...] = ()


SESSION_MAX_AGE = 8 * 3600  # the default longest console session
MAX_SESSION_AGE = 86400  # the longest `session_max_age_seconds` a configuration may set

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


SUBJECT_CACHE_SECONDS = 10  # the default longest time a process trusts a subject's facts it read earlier


@dataclass(frozen=True, slots=True)
class SubjectSettings:
    """The ``[subjects]`` table: how long a process may use a subject's facts it read earlier.

    A change made through another replica is seen within ``cache_seconds``; 0
    reads the facts on every request. A legal order's decision and a
    registration always read them afresh.
    """

    cache_seconds: int = SUBJECT_CACHE_SECONDS


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The ``[console]`` table: how long a console session may last, and which peers are TLS-terminating proxies.

    A session ends at the earlier of its token's expiry and ``session_max_age_seconds``
    after sign-in. ``X-Forwarded-Proto: https`` is believed (so the session cookie is
    ``Secure``) only from a peer inside one of ``trusted_proxies``; from any other
    peer the header is ignored. None by default.
    """

    session_max_age_seconds: int = SESSION_MAX_AGE
    trusted_proxies: tuple[Network, ...] = ()


BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")  # S3's rules for a bucket name (no `..`, not an IPv4 address)
HOST_NAME = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def is_bucket_name(name: str) -> bool:
    return bool(BUCKET_NAME.match(name)) and ".." not in name and not re.match(r"^\d+\.\d+\.\d+\.\d+\Z", name)


@dataclass(frozen=True, slots=True)
class S3Bucket:
    """A ``[s3.buckets.NAME]`` table: where the bucket's objects live, and the category of objects put without one.

    ``home_region`` set: every object of the bucket is stored in that region, whatever its key. None
    (``route = "subject"``): the first segment of each key names a registered subject, and the object
    is that subject's record, in the subject's home region."""

    name: str
    home_region: str | None = None
    default_category: str | None = None


@dataclass(frozen=True, slots=True)
class S3Settings:
    """The ``[s3]`` table: the S3 front's port (None: not served unless ``serve --s3-port``), the wildcard
    domain of virtual-host style requests (``BUCKET.<virtual_host>``; None: path style only), and its buckets."""

    port: int | None = None
    virtual_host: str | None = None
    buckets: Mapping[str, S3Bucket] = field(default_factory=dict)


FEDERATION_TOKEN_SECONDS = 60  # the default lifetime of a token a gateway signs for one request to a peer
PEER_CONNECT_TIMEOUT = 1.0
PEER_READ_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class FederationSettings:
    """The ``[federation]`` table: this gateway's id among its peers, and the Ed25519 key that signs its requests to them.

    ``token_seconds`` is how long such a request's token lives (each request gets its own)."""

    id: str
    key: str  # private key file; relative paths are under the data directory
    token_seconds: int = FEDERATION_TOKEN_SECONDS


@dataclass(frozen=True, slots=True)
class Peer:
    """A ``[peers.ID]`` table: another gateway, the regions it owns, where it answers and the public key of its federation key.

    ``url`` may be ``https://``: certificates are then verified (against ``ca_file`` when given, else the system's
    trust store). ``connect_timeout`` and ``read_timeout`` bound each request to it (seconds)."""

    id: str
    url: str
    key: str  # public key file (PEM); relative paths are under the data directory
    ca_file: str | None = None
    connect_timeout: float = PEER_CONNECT_TIMEOUT
    read_timeout: float = PEER_READ_TIMEOUT


@dataclass(frozen=True)
class Config:
    version: int
    categories: tuple[str, ...]
    identity: Identity
    limits: Limits
    blocs: Mapping[str, Bloc]
    jurisdictions: Mapping[str, Jurisdiction]
    regions: Mapping[str, Region]
    transfer_mechanisms: Mapping[str, TransferMechanism]
    legal: LegalPolicy
    control: StoreSpec = field(default_factory=lambda: FileStoreSpec("control"))
    source: str = ""
    digest: str = ""  # sha256 of the canonical parsed document, for the ledger
    rank: Mapping[str, int] = field(default_factory=dict)  # category -> ladder rank
    audit: AuditSettings = field(default_factory=AuditSettings)
    support_access: SupportAccess = field(default_factory=SupportAccess)
    startup: Startup = field(default_factory=Startup)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    subjects: SubjectSettings = field(default_factory=SubjectSettings)
    federation: FederationSettings | None = None  # None: no peers, every region is served here
    peers: Mapping[str, Peer] = field(default_factory=dict)
    s3: S3Settings = field(default_factory=S3Settings)

    def jurisdiction_of(self, region_id: str) -> Jurisdiction:
        return self.jurisdictions[self.regions[region_id].jurisdiction]

    @property
    def local_regions(self) -> dict[str, Region]:
        """The regions this gateway serves from its own stores (every region, without federation)."""
        return {r.id: r for r in self.regions.values() if r.owner is None}

    def owner_of(self, region_id: str) -> Peer | None:
        """The peer that serves ``region_id``; None when this gateway does."""
        owner = self.regions[region_id].owner
        return None if owner is None else self.peers[owner]


def parse_config(raw: Mapping[str, Any], *, source: str = "") -> Config:
    """Validate a parsed TOML document; raise ``ConfigError`` listing every finding."""
    findings: list[Finding] = []
    root = TableReader(dict(raw), "", findings)

    version = root.get("version", int, default=1)
    if version is not None and version not in SUPPORTED_VERSIONS:
        findings.append(Finding("version", f"unsupported version `{version}`; this gateway reads {SUPPORTED_VERSIONS}"))

    categories = tuple(root.str_list("categories"))
    if not categories:
        findings.append(Finding("categories", "must list at least one category, lowest rung first"))
    for i, name in enumerate(categories):
        if not is_identifier(name):
            findings.append(Finding(f"categories[{i}]", f"`{name}` is not a valid identifier"))
    if len(set(categories)) != len(categories):
        findings.append(Finding("categories", "lists a category twice"))

    identity = _parse_identity(root.sub("identity", required=True), findings)
    limits = _parse_limits(root.sub("limits", required=False))
    blocs = _parse_blocs(root, findings)
    jurisdictions = _parse_jurisdictions(root, blocs, findings)
    regions = _parse_regions(root, jurisdictions, findings)
    mechanisms = _parse_mechanisms(root, blocs, jurisdictions, findings)
    control = _parse_control(root.sub("control", required=False), findings)
    audit = _parse_audit(root.sub("audit", required=False), findings)
    support_access = _parse_support_access(root.sub("support_access", required=False), findings)
    startup = _parse_startup(root.sub("startup", required=False))
    console = _parse_console(root.sub("console", required=False), findings)
    subjects = _parse_subjects(root.sub("subjects", required=False), findings)
    federation, peers = _parse_federation(root, regions, identity, findings)
    s3 = _parse_s3(root.sub("s3", required=False), regions, categories, findings)

    legal = parse_legal(
        raw,
        categories=categories,
        jurisdictions=jurisdictions,
        blocs=blocs,
        regions=regions,
        findings=findings,
    )
    root.finish(also_known=tuple(LEGAL_TABLES))

    if findings:
        raise ConfigError(findings)
    return Config(
        version=version,
        categories=categories,
        identity=identity,  # type: ignore[arg-type]
        limits=limits,
        blocs=blocs,
        jurisdictions=jurisdictions,
        regions=regions,
        transfer_mechanisms=mechanisms,
        legal=legal,
        control=control,
        source=source,
        digest=sha256_hex(canonical(_jsonable(raw))),
        rank={name: i for i, name in enumerate(categories)},
        audit=audit,
        support_access=support_access,
        startup=startup,
        console=console,
        subjects=subjects,
        federation=federation,
        peers=peers,
        s3=s3,
    )


def load_config(path: Path) -> Config:
    """Read, parse and validate a config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Finding("", f"config file `{path}` does not exist")]) from None
    except OSError as exc:
        raise ConfigError([Finding("", f"cannot read config file `{path}`: {exc.strerror}")]) from exc
    except UnicodeDecodeError:
        raise ConfigError([Finding("", f"config file `{path}` is not UTF-8")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Finding("", f"`{path}` is not valid TOML: {exc}")]) from exc
    return parse_config(raw, source=str(path))


def _jsonable(value: Any) -> Any:
    """TOML values as JSON values (dates become strings) for hashing."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_identity(r: TableReader | None, findings: list[Finding]) -> Identity | None:
    if r is None or not r.ok:
        return None
    identity = Identity(
        issuer=r.get("issuer", str, default=""),
        audience=r.get("audience", str, default=""),
        token_public_key=r.get("token_public_key", str, default=""),
        token_private_key=r.get("token_private_key", str, default=""),
        provider_key=r.get("provider_key", str, default=""),
        token_ttl_seconds=r.get("token_ttl_seconds", int, required=False, default=3600),
        max_token_lifetime_seconds=r.get("max_token_lifetime_seconds", int, required=False, default=86400),
    )
    longest = identity.max_token_lifetime_seconds
    if longest is not None and not 0 < longest <= MAX_TOKEN_LIFETIME:
        findings.append(Finding(r.at("max_token_lifetime_seconds"), f"must be between 1 and {MAX_TOKEN_LIFETIME} seconds (30 days)"))
    elif identity.token_ttl_seconds is not None and not 0 < identity.token_ttl_seconds <= (longest or 86400):
        findings.append(Finding(r.at("token_ttl_seconds"), f"must be between 1 and `max_token_lifetime_seconds` ({longest}) seconds"))
    for key in ("issuer", "audience", "token_public_key", "token_private_key", "provider_key"):
        if key in r.table and r.table[key] == "":
            findings.append(Finding(r.at(key), "must not be empty"))
    r.finish()
    return identity


def _parse_limits(r: TableReader | None) -> Limits:
    if r is None or not r.ok:
        return Limits()
    # (a slotted dataclass's class attribute is its slot, not its default: use the constant)
    max_bytes = r.get("max_record_bytes", int, required=False, default=MAX_RECORD_BYTES)
    if max_bytes <= 0:
        r.problem(r.at("max_record_bytes"), "must be a positive number of bytes")
    r.finish()
    return Limits(max_record_bytes=max_bytes)


def _parse_startup(r: TableReader | None) -> Startup:
    if r is None or not r.ok:
        return Startup()
    require_all = r.get("require_all_regions", bool, required=False, default=False)
    r.finish()
    return Startup(require_all_regions=require_all)


def _parse_blocs(root: TableReader, findings: list[Finding]) -> dict[str, Bloc]:
    blocs: dict[str, Bloc] = {}
    for bloc_id, r in root.items("blocs", required=False):
        if not r.ok:
            continue
        if not is_identifier(bloc_id):
            findings.append(Finding(r.path, f"bloc id `{bloc_id}` is not a valid identifier"))
        blocs[bloc_id] = Bloc(
            id=bloc_id,
            name=r.get("name", str, default=bloc_id),
            free_flow=r.get("free_flow", bool, required=False, default=False),
        )
        r.finish()
    return blocs


def _parse_jurisdictions(root: TableReader, blocs: Mapping[str, Bloc], findings: list[Finding]) -> dict[str, Jurisdiction]:
    jurisdictions: dict[str, Jurisdiction] = {}
    for code, r in root.items("jurisdictions"):
        if not r.ok:
            continue
        if not is_country(code):
            findings.append(Finding(r.path, f"`{code}` is not an ISO 3166-1 alpha-2 code (two capital letters)"))
        if code in blocs:
            findings.append(Finding(r.path, f"`{code}` is also a bloc id; ids must be distinct"))
        member_of = r.str_list("blocs", required=False)
        for i, bloc in enumerate(member_of):
            if bloc not in blocs:
                findings.append(Finding(f"{r.at('blocs')}[{i}]", f"unknown bloc `{bloc}`"))
        jurisdictions[code] = Jurisdiction(code=code, name=r.get("name", str, default=code), blocs=frozenset(member_of))
        r.finish()
    return jurisdictions


def _parse_store(r: TableReader | None, region_id: str, findings: list[Finding]) -> StoreSpec:
    if r is None or not r.ok:
        return MemoryStoreSpec()
    kind = r.get("kind", str, default="")
    spec: StoreSpec
    if kind == "file":
        inline = r.get("inline_read_bytes", int, required=False, default=FILE_INLINE_READ_BYTES)
        if isinstance(inline, bool) or not 0 <= inline <= 16 * 1024 * 1024:
            findings.append(Finding(r.at("inline_read_bytes"), f"`{inline}` must be a number of bytes from 0 (off) to 16777216"))
            inline = 0
        spec = FileStoreSpec(path=r.get("path", str, default=f"stores/{region_id}"), inline_read_bytes=inline)
    elif kind == "s3":
        bucket = r.get("bucket", str, default="")
        if bucket and not (3 <= len(bucket) <= 63 and bucket.replace("-", "").replace(".", "").isalnum() and bucket.islower()):
            findings.append(Finding(r.at("bucket"), f"`{bucket}` is not a valid S3 bucket name"))
        endpoint = r.get("endpoint_url", str, required=False)
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            findings.append(Finding(r.at("endpoint_url"), f"`{endpoint}` must start with `http://` or `https://`"))
        spec = S3StoreSpec(
            bucket=bucket,
            region_name=r.get("region_name", str, required=False, default=region_id),
            endpoint_url=endpoint,
            object_lock=r.get("object_lock", bool, required=False, default=False),
            create_bucket=r.get("create_bucket", bool, required=False, default=True),
            connect_timeout=_seconds(r, "connect_timeout", S3_CONNECT_TIMEOUT, 60, findings),
            read_timeout=_seconds(r, "read_timeout", S3_READ_TIMEOUT, 300, findings),
            max_attempts=_count(r, "max_attempts", S3_MAX_ATTEMPTS, 10, findings),
            deadline=_seconds(r, "deadline", S3_DEADLINE, 600, findings),
        )
    elif kind == "memory":
        spec = MemoryStoreSpec()
    else:
        if kind:
            findings.append(Finding(r.at("kind"), f"unknown store kind `{kind}`; use `file` or `s3`"))
        return MemoryStoreSpec()
    r.finish()
    return spec


def _seconds(r: TableReader, key: str, default: float, most: float, findings: list[Finding]) -> float:
    """A number of seconds above 0 and at most ``most`` (an integer or a decimal)."""
    value = r.get(key, (int, float), required=False, default=default)
    if isinstance(value, bool) or not 0 < value <= most:
        findings.append(Finding(r.at(key), f"`{value}` must be a number of seconds above 0 and at most {most:g}"))
        return default
    return float(value)


def _count(r: TableReader, key: str, default: int, most: int, findings: list[Finding]) -> int:
    """A whole number from 1 to ``most``."""
    value = r.get(key, int, required=False, default=default)
    if not 1 <= value <= most:
        findings.append(Finding(r.at(key), f"`{value}` must be a whole number from 1 to {most}"))
        return default
    return int(value)


def _parse_control(r: TableReader | None, findings: list[Finding]) -> StoreSpec:
    """Where orders, replay claims and holds are kept: not customer data, so not in a region."""
    if r is None or not r.ok:
        return FileStoreSpec("control")
    spec = _parse_store(r.sub("store", required=True), "control", findings)
    r.finish()
    return spec


def _parse_audit(r: TableReader | None, findings: list[Finding]) -> AuditSettings:
    """The ledger's checkpoint cadence and where closed segments are uploaded."""
    if r is None or not r.ok:
        return AuditSettings()
    every = r.get("checkpoint_every", int, required=False, default=CHECKPOINT_EVERY)
    if every is not None and not 1 <= every <= 1_000_000:
        findings.append(Finding(r.at("checkpoint_every"), "must be between 1 and 1000000 entries"))
    seconds = r.get("checkpoint_seconds", int, required=False, default=CHECKPOINT_SECONDS)
    if seconds is not None and not 0 <= seconds <= 86400:
        findings.append(Finding(r.at("checkpoint_seconds"), "must be between 0 (by count only) and 86400 seconds"))
    reconcile_after = r.get("reconcile_after_seconds", int, required=False, default=RECONCILE_AFTER_SECONDS)
    if reconcile_after is not None and not 0 <= reconcile_after <= 86400:
        findings.append(Finding(r.at("reconcile_after_seconds"), "must be between 0 and 86400 seconds"))
    export_interval = r.get("export_interval_seconds", int, required=False, default=EXPORT_INTERVAL_SECONDS)
    if export_interval is not None and not 1 <= export_interval <= 86400:
        findings.append(Finding(r.at("export_interval_seconds"), "must be between 1 and 86400 seconds"))
    export: AuditExport | None = None
    e = r.sub("export", required=False)
    if e is not None and e.ok:
        bucket = e.get("bucket", str, default="")
        if bucket and not (3 <= len(bucket) <= 63 and bucket.replace("-", "").replace(".", "").isalnum() and bucket.islower()):
            findings.append(Finding(e.at("bucket"), f"`{bucket}` is not a valid S3 bucket name"))
        endpoint = e.get("endpoint_url", str, required=False)
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            findings.append(Finding(e.at("endpoint_url"), f"`{endpoint}` must start with `http://` or `https://`"))
        days = e.get("retention_days", int, default=None)
        if days is not None and not 1 <= days <= 36500:
            findings.append(Finding(e.at("retention_days"), "must be between 1 and 36500 days"))
        mode = e.get("mode", str, required=False, default="COMPLIANCE")
        if mode is not None and mode not in EXPORT_MODES:
            findings.append(Finding(e.at("mode"), f"unknown retention mode `{mode}`; use `COMPLIANCE` or `GOVERNANCE`"))
        export = AuditExport(
            bucket=bucket,
            region_name=e.get("region_name", str, default=""),
            endpoint_url=endpoint,
            retention_days=days or 1,
            mode=mode or "COMPLIANCE",
        )
        e.finish()
    r.finish()
    return AuditSettings(
        checkpoint_every=every or CHECKPOINT_EVERY,
        checkpoint_seconds=CHECKPOINT_SECONDS if seconds is None else seconds,
        export=export,
        reconcile_after_seconds=RECONCILE_AFTER_SECONDS if reconcile_after is None else reconcile_after,
        export_interval_seconds=export_interval or EXPORT_INTERVAL_SECONDS,
    )


def _parse_support_access(r: TableReader | None, findings: list[Finding]) -> SupportAccess:
    """Who relays the customer's consent to support access; absent: nobody, so support access is off.

    An empty list is an error rather than a way to say "nobody": like an empty transfer-mechanism
    list it would cover nothing, every support-access case would wait until it expired, and a
    template left blank would look like a working setup. Leave the table out to turn it off.
    """
    if r is None or not r.ok:
        return SupportAccess()
    relays = r.str_list("consent_relays")
    if "consent_relays" in r.table and isinstance(r.table["consent_relays"], list) and not r.table["consent_relays"]:
        findings.append(
            Finding(
                r.at("consent_relays"),
                "must name at least one service; with none, no customer could approve support access (leave out `[support_access]` to turn support access off)",
            )
        )
    for i, name in enumerate(relays):
        if not is_identifier(name):
            findings.append(Finding(f"{r.at('consent_relays')}[{i}]", f"`{name}` is not a service name (letters, digits, `.`, `_`, `-`)"))
    if len(set(relays)) != len(relays):
        findings.append(Finding(r.at("consent_relays"), "lists a service twice"))
    r.finish()
    return SupportAccess(consent_relays=tuple(relays))


def _parse_console(r: TableReader | None, findings: list[Finding]) -> ConsoleSettings:
    """The console's longest session and its trusted proxies; absent: 8 hours, and no proxy is trusted."""
    if r is None or not r.ok:
        return ConsoleSettings()
    age = r.get("session_max_age_seconds", int, required=False, default=SESSION_MAX_AGE)
    if age is not None and not 60 <= age <= MAX_SESSION_AGE:
        findings.append(Finding(r.at("session_max_age_seconds"), f"`{age}` must be between 60 and {MAX_SESSION_AGE} seconds (a day)"))
    proxies: list[Network] = []
    for path, text in r.strings("trusted_proxies"):
        try:
            proxies.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError:
            findings.append(Finding(path, f"`{text}` is not an IP network (write an address or a CIDR block such as `10.0.0.0/8`, without host bits)"))
    r.finish()
    return ConsoleSettings(session_max_age_seconds=age or SESSION_MAX_AGE, trusted_proxies=tuple(proxies))


def _parse_subjects(r: TableReader | None, findings: list[Finding]) -> SubjectSettings:
    """How long a subject's facts may be cached; absent: ``SUBJECT_CACHE_SECONDS``."""
    if r is None or not r.ok:
        return SubjectSettings()
    seconds = r.get("cache_seconds", int, required=False, default=SUBJECT_CACHE_SECONDS)
    if seconds is not None and not 0 <= seconds <= 3600:
        findings.append(Finding(r.at("cache_seconds"), f"`{seconds}` must be between 0 and 3600 seconds"))
    r.finish()
    return SubjectSettings(cache_seconds=SUBJECT_CACHE_SECONDS if seconds is None else seconds)


def _parse_s3(r: TableReader | None, regions: Mapping[str, Region], categories: tuple[str, ...], findings: list[Finding]) -> S3Settings:
    """The S3 front's port, virtual-host domain and buckets; absent: no front unless ``serve --s3-port``."""
    if r is None or not r.ok:
        return S3Settings()
    port = r.get("port", int, required=False)
    if port is not None and not 1 <= port <= 65535:
        findings.append(Finding(r.at("port"), f"`{port}` must be a TCP port, 1 to 65535"))
    virtual_host = r.get("virtual_host", str, required=False)
    if virtual_host is not None and not HOST_NAME.match(virtual_host):
        findings.append(Finding(r.at("virtual_host"), f"`{virtual_host}` must be a lower-case DNS name such as `s3.gateway.local`"))
    buckets: dict[str, S3Bucket] = {}
    for name, b in r.items("buckets", required=False):
        if not b.ok:
            continue
        if not is_bucket_name(name):
            findings.append(Finding(b.path, f"`{name}` is not an S3 bucket name: 3 to 63 lower-case letters, digits, `.` or `-`"))
        home = b.get("home_region", str, required=False)
        route = b.get("route", str, required=False)
        if (home is None) == (route is None):
            findings.append(Finding(b.path, 'give either `home_region` (every object stored there) or `route = "subject"` (the key names a subject)'))
        if route is not None and route != "subject":
            findings.append(Finding(b.at("route"), f'unknown route `{route}`; the one route is `"subject"`'))
        if home is not None and home not in regions:
            findings.append(Finding(b.at("home_region"), f"unknown region `{home}`"))
        elif home is not None and regions[home].owner is not None:
            findings.append(Finding(b.at("home_region"), f"region `{home}` is served by peer `{regions[home].owner}`; a bucket's home is a region served here"))
        category = b.get("default_category", str, required=False)
        if category is not None and category not in categories:
            findings.append(Finding(b.at("default_category"), f"unknown category `{category}`; use one of {', '.join(categories)}"))
        b.finish()
        buckets[name] = S3Bucket(name=name, home_region=home, default_category=category)
    r.finish()
    return S3Settings(port=port, virtual_host=virtual_host, buckets=buckets)


def _parse_regions(root: TableReader, jurisdictions: Mapping[str, Jurisdiction], findings: list[Finding]) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    for region_id, r in root.items("regions"):
        if not r.ok:
            continue
        if not is_identifier(region_id):
            findings.append(Finding(r.path, f"region id `{region_id}` is not a valid identifier"))
        code = r.get("jurisdiction", str, default="")
        if code and code not in jurisdictions:
            findings.append(Finding(r.at("jurisdiction"), f"unknown jurisdiction `{code}`"))
        owner = r.get("owner", str, required=False)
        if owner is not None:
            # served by a peer gateway: its data is never stored or tagged here
            for key in ("store", "tag_key"):
                if r.has(key):
                    r.bad(key, f"region `{region_id}` is served by peer `{owner}`, so this gateway has no {key.replace('_', ' ')} for it")
            store, tag_key = None, ""
        else:
            store = _parse_store(r.sub("store", required=True), region_id, findings)
            tag_key = r.get("tag_key", str, required=False, default=f"keys/tags/{region_id}.key")
        regions[region_id] = Region(
            id=region_id,
            location=r.get("location", str, default=""),
            jurisdiction=code,
            store=store,
            tag_key=tag_key,
            owner=owner,
        )
        r.finish(also_known=("store", "tag_key"))
    if not regions and not any(f.path.startswith("regions") for f in findings):
        findings.append(Finding("regions", "must define at least one region"))
    buckets: dict[tuple[str | None, str], str] = {}
    for region in regions.values():
        if isinstance(region.store, S3StoreSpec) and region.store.bucket:  # (a peer's region has no store here)
            where = (region.store.endpoint_url, region.store.bucket)
            if where in buckets:
                message = f"bucket `{region.store.bucket}` is already the store of region `{buckets[where]}`"
                findings.append(Finding(f"regions.{region.id}.store.bucket", message))
            buckets[where] = region.id
    return regions


def _parse_mechanisms(
    root: TableReader, blocs: Mapping[str, Bloc], jurisdictions: Mapping[str, Jurisdiction], findings: list[Finding]
) -> dict[str, TransferMechanism]:
    mechanisms: dict[str, TransferMechanism] = {}
    for mech_id, r in root.items("transfer_mechanisms", required=False):
        if not r.ok:
            continue
        places: dict[str, frozenset[str]] = {}
        for key in ("from", "to"):
            values = r.str_list(key)
            if not values:
                findings.append(Finding(r.at(key), "must name at least one jurisdiction or bloc"))
            for i, value in enumerate(values):
                if value not in jurisdictions and value not in blocs:
                    findings.append(Finding(f"{r.at(key)}[{i}]", f"unknown jurisdiction or bloc `{value}`"))
            places[key] = frozenset(values)
        services = r.str_list("services")
        purposes = r.str_list("purposes")
        for key, values in (("services", services), ("purposes", purposes)):
            if not values:
                findings.append(Finding(r.at(key), "must list at least one entry; an empty list would cover nothing"))
        mechanisms[mech_id] = TransferMechanism(
            id=mech_id,
            kind=r.get("kind", str, default=""),
            description=r.get("description", str, required=False, default=""),
            sources=places["from"],
            destinations=places["to"],
            services=frozenset(services),
            purposes=frozenset(purposes),
        )
        r.finish()
    return mechanisms


def _parse_federation(
    root: TableReader, regions: Mapping[str, Region], identity: Identity | None, findings: list[Finding]
) -> tuple[FederationSettings | None, dict[str, Peer]]:
    """``[federation]`` and ``[peers.*]``, checked against the regions' ``owner``s.

    Without either table, and with no region naming an owner, the gateway serves every region itself.
    """
    federation: FederationSettings | None = None
    f = root.sub("federation", required=False)
    if f is not None and f.ok:
        own_id = f.get("id", str, default="")
        if own_id and not is_identifier(own_id):
            findings.append(Finding(f.at("id"), f"`{own_id}` is not a valid identifier"))
        if identity is not None and own_id and own_id == identity.audience:
            # a federation token's audience is a gateway's id: it must never be a bearer token's audience too
            findings.append(Finding(f.at("id"), f"must differ from `identity.audience` (`{own_id}`), so a peer's token is never a bearer token here"))
        seconds = f.get("token_seconds", int, required=False, default=FEDERATION_TOKEN_SECONDS)
        if seconds is not None and not 1 <= seconds <= 300:
            findings.append(Finding(f.at("token_seconds"), f"`{seconds}` must be between 1 and 300 seconds"))
        key = f.get("key", str, default="")
        if f.has("key") and key == "":
            findings.append(Finding(f.at("key"), "must not be empty"))
        federation = FederationSettings(id=own_id, key=key, token_seconds=seconds or FEDERATION_TOKEN_SECONDS)
        f.finish()

    peers: dict[str, Peer] = {}
    for peer_id, p in root.items("peers", required=False):
        if not p.ok:
            continue
        if not is_identifier(peer_id):
            findings.append(Finding(p.path, f"peer id `{peer_id}` is not a valid identifier"))
        if federation is not None and peer_id == federation.id:
            findings.append(Finding(p.path, f"`{peer_id}` is this gateway's own `federation.id`; a gateway is not its own peer"))
        url = p.get("url", str, default="")
        if url and not url.startswith(("http://", "https://")):
            findings.append(Finding(p.at("url"), f"`{url}` must start with `http://` or `https://`"))
        ca_file = p.get("ca_file", str, required=False)
        if ca_file is not None and not url.startswith("https://"):
            findings.append(Finding(p.at("ca_file"), "is used only to verify an `https://` url"))
        for key in ("url", "key"):
            if p.has(key) and p.table[key] == "":
                findings.append(Finding(p.at(key), "must not be empty"))
        peers[peer_id] = Peer(
            id=peer_id,
            url=url.rstrip("/"),
            key=p.get("key", str, default=""),
            ca_file=ca_file,
            connect_timeout=_seconds(p, "connect_timeout", PEER_CONNECT_TIMEOUT, 60, findings),
            read_timeout=_seconds(p, "read_timeout", PEER_READ_TIMEOUT, 600, findings),
        )
        p.finish()

    owners = {r.id: r.owner for r in regions.values() if r.owner is not None}
    if (peers or owners) and federation is None:
        where = "peers" if peers else f"regions.{next(iter(owners))}.owner"
        findings.append(Finding(where, "a region served by a peer needs `[federation]`: this gateway's `id` and the `key` that signs its requests"))
    for region_id, owner in owners.items():
        if owner not in peers:
            known = ", ".join(f"`{p}`" for p in peers) or "none"
            findings.append(Finding(f"regions.{region_id}.owner", f"unknown peer `{owner}`; configured peers: {known}"))
    if regions and len(owners) == len(regions):
        findings.append(Finding("regions", "every region is served by a peer; this gateway must serve at least one region itself"))
    for peer_id in peers:
        if peer_id not in owners.values():
            findings.append(Finding(f"peers.{peer_id}", f"peer `{peer_id}` serves no region; name it as the `owner` of its regions, or remove it"))
    return federation, peers
