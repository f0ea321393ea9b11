"""Wiring in one place: settings -> config, keys, stores, ledger and services.

Both the web app and the CLI build a ``Runtime``; nothing else constructs
stores, ledgers or services.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.audit import DEFAULT_CHAIN, FileLedger
from gateway.config import Config, load_config
from gateway.errors import LedgerError, StoreError
from gateway.keys import (
    PublicKey,
    generate_ed25519_pair,
    load_ed25519_private,
    load_ed25519_public,
    load_public_key,
    plan_keys,
    public_path_for,
    resolve,
)
from gateway.legal.diff import Side
from gateway.metrics import GatewayMetrics
from gateway.model import Clock, system_clock
from gateway.s3front.credentials import S3_KEY_FILE
from gateway.s3front.credentials import make_key as make_s3_key
from gateway.services.analysis import PolicyAnalysis
from gateway.services.audit_log import AuditLog, Ledger
from gateway.services.cases import CaseService, ReviewSettings
from gateway.services.intake import Intake, Trust
from gateway.services.notices import NoticeService
from gateway.services.orders import OrderService
from gateway.services.reconcile import Reconciler
from gateway.services.records import RecordService
from gateway.services.sessions import ConsoleSessions
from gateway.stores import RecordStore
from gateway.stores.factory import open_named_store, open_store
from gateway.stores.healing import HealingStore
from gateway.tags import TagSigner, TagVerifier

if TYPE_CHECKING:
    from gateway.audit.chains import ChainReader
    from gateway.audit.export import SegmentUploader
    from gateway.federation import FederationVerifier
    from gateway.services.federation import Federation

log = logging.getLogger("gateway.runtime")

DEFAULT_CONFIG = Path("regions.toml")
DEFAULT_DATA_DIR = Path("data")
CONTROL = "control"  # the name of the store that holds claims, decisions, cases, holds and notices


@dataclass(frozen=True)
class Settings:
    config_path: Path = DEFAULT_CONFIG
    data_dir: Path = DEFAULT_DATA_DIR
    clock: Clock = system_clock
    init_keys: bool = True  # make missing dev keys on start (the laptop default)
    metrics_public: bool = True  # False: /metrics needs an ops token
    sweep_seconds: float = 30.0  # how often the sweeper runs (holds, cases, notices, console sessions); 0 turns it off
    health_monitor_seconds: float = 15.0  # background refresh of store health and case gauges; 0 turns it off
    monotonic: Callable[[], float] = time.monotonic  # the clock of the health cache (tests drive it)
    health_cache_seconds: float = 5.0  # /readyz and /metrics reuse a region's store check this long, so probes cannot overload a store
    # when the app closes, with [audit.export]: how long closing the open ledger segment and uploading it may take
    shutdown_export_seconds: float = 5.0
    reconcile_seconds: float = 15.0  # how often the served app reconciles write intents without an outcome; 0: only at start-up
    # the ledger chain this process writes (one per replica and per worker; see gateway.audit.chain); its file is <chain_id>.jsonl
    chain_id: str = DEFAULT_CHAIN
    analysis_seconds: float = 120.0  # the console's "what changes" analysis of a candidate policy is stopped past this

    @property
    def ledger_dir(self) -> Path:
        """Where every local chain's file is: ``DATA_DIR/ledger``."""
        return self.data_dir / "ledger"

    @property
    def ledger_path(self) -> Path:
        """This process's chain: ``DATA_DIR/ledger/<chain_id>.jsonl`` (``ledger.jsonl`` for the default chain)."""
        return self.ledger_dir / f"{self.chain_id}.jsonl"


def init_keys(config: Config, data_dir: Path, *, demo_authorities: bool = False) -> list[str]:
    """Create every key the configuration names that does not exist yet; return what was made.

    ``demo_authorities`` also makes a key pair for every registered authority
    that has no public key yet, so the demo can sign orders as them. A real
    deployment receives authorities' public keys and never holds their private keys.
    """
    plan = plan_keys(
        config.identity.token_private_key,
        config.identity.provider_key,
        {r.id: r.tag_key for r in config.local_regions.values()},
        data_dir,
        federation=config.federation.key if config.federation else None,
    )
    made = []
    for authority in config.legal.authorities.values() if demo_authorities else ():
        public = resolve(data_dir, authority.public_key)
        if generate_ed25519_pair(public.with_suffix(".key"), public):
            made.append(f"demo authority `{authority.id}`: {public.with_suffix('.key')}")
    for purpose, private_path in plan.pairs:
        public = resolve(data_dir, config.identity.token_public_key) if purpose == "service tokens" else public_path_for(private_path)
        if generate_ed25519_pair(private_path, public):
            made.append(f"{purpose}: {private_path}")
    if make_s3_key(data_dir / S3_KEY_FILE):
        made.append(f"S3 credentials: {data_dir / S3_KEY_FILE}")
    return made


class ReadOnlyLedger(Ledger):
    """The ledger of commands that must not change anything (explain, reports): any append is an error."""

    async def append(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        raise LedgerError(f"this command is read-only; it tried to record `{kind}`")

    async def probe(self) -> None:
        raise LedgerError("this command is read-only; its ledger takes no appends")

    async def close(self) -> None:
        pass


def load_authority_keys(config: Config, data_dir: Path) -> dict[str, PublicKey]:
    """Public keys of registered authorities; one whose key file is missing cannot be verified (its orders are refused)."""
    keys: dict[str, PublicKey] = {}
    for authority in config.legal.authorities.values():
        path = resolve(data_dir, authority.public_key)
        if not path.exists():
            log.warning("no public key for authority `%s` at %s: its orders will be refused", authority.id, path)
            continue
        keys[authority.id] = load_public_key(path)
    return keys


@dataclass(frozen=True)
class RuntimeKeys:
    """The key material a runtime runs with, read from the data directory."""

    token: PublicKey  # verifies service and staff tokens
    tag_private: dict[str, ed25519.Ed25519PrivateKey]  # signs each region's residency tags
    tag_public: dict[str, ed25519.Ed25519PublicKey]  # checks them
    provider: ed25519.Ed25519PrivateKey  # signs packages and ledger checkpoints

    @classmethod
    def load(cls, config: Config, data_dir: Path) -> RuntimeKeys:
        tag_private = {r.id: load_ed25519_private(resolve(data_dir, r.tag_key)) for r in config.local_regions.values()}
        tag_public = {}
        for region in config.local_regions.values():
            public_path = public_path_for(resolve(data_dir, region.tag_key))
            tag_public[region.id] = load_ed25519_public(public_path) if public_path.exists() else tag_private[region.id].public_key()
        return cls(
            token=load_public_key(resolve(data_dir, config.identity.token_public_key)),
            tag_private=tag_private,
            tag_public=tag_public,
            provider=load_ed25519_private(resolve(data_dir, config.identity.provider_key)),
        )

    def seal_keys(self, signer: TagSigner) -> dict[str, bytes]:
        """The signer's seal keys of the regions whose signing key is the one their public key checks:
        only there may a seal stand in for the signature check."""
        return {region: key for region, key in signer.seal_keys.items() if _same_key(self.tag_private[region], self.tag_public[region])}


@dataclass
class Runtime:
    settings: Settings
    config: Config
    stores: dict[str, RecordStore]
    control: RecordStore
    ledger: FileLedger | ReadOnlyLedger
    audit: AuditLog
    records: RecordService
    orders: OrderService
    cases: CaseService  # legal review of orders, and support access
    notices: NoticeService
    metrics: GatewayMetrics
    token_key: PublicKey
    console_secret: bytes  # for console CSRF tokens
    sessions: ConsoleSessions  # legal console sign-ins, kept in the control store
    uploader: SegmentUploader | None = None  # closed ledger segments to the off-box bucket, if configured
    reconciler: Reconciler | None = None  # intents without an outcome, settled against the stores (None: read-only)
    federation: Federation | None = None  # peers' subjects, routed to them (None: no peers)
    federation_verifier: FederationVerifier | None = None  # verifies requests peers forward here
    chains: ChainReader | None = None  # every chain of the ledger, local and exported, read as one (reports)
    analysis: PolicyAnalysis | None = None  # candidate policies against the running one (the console's "what changes")

    @classmethod
    async def open(cls, settings: Settings, metrics: GatewayMetrics | None = None, *, read_only: bool = False) -> Runtime:
        """Build everything from settings. ``read_only`` (explain, reports) never writes the ledger.

        (1) the configuration; (2) the keys, made first where that is asked for;
        (3) the stores, prepared (one that is not is down and healed in the
        background; see ``_open_stores``); (4) the ledger, which records the
        configuration it runs under; (5) the services over them. A step that fails closes what the
        steps before it opened.
        """
        # (1)
        config = load_config(settings.config_path)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # (2)
        if settings.init_keys:
            for made in init_keys(config, settings.data_dir):
                log.warning("generated a development key for %s", made)
        keys = RuntimeKeys.load(config, settings.data_dir)
        metrics = metrics or GatewayMetrics(CollectorRegistry())
        # (3)
        stores, control = await _open_stores(config, settings)
        # (4)
        try:
            ledger, uploader = (ReadOnlyLedger(), None) if read_only else await _open_ledger(settings, config, keys.provider, metrics)
        except BaseException:
            await _close_stores(stores, control)
            raise
        # (5)
        runtime = cls._assemble(settings, config, keys, stores, control, ledger, metrics, uploader)
        if not read_only and not await runtime.records.open_directory():
            log.warning("subjects stored before the subject directory are looked for in every region until `gateway subjects index` has run")
        return runtime

    @classmethod
    def _assemble(
        cls,
        settings: Settings,
        config: Config,
        keys: RuntimeKeys,
        stores: dict[str, RecordStore],
        control: RecordStore,
        ledger: FileLedger | ReadOnlyLedger,
        metrics: GatewayMetrics,
        uploader: SegmentUploader | None,
    ) -> Runtime:
        """The services, wired over the stores and the ledger."""
        audit = AuditLog(ledger, metrics)
        signer = TagSigner(keys.tag_private)
        verifier = TagVerifier(keys.tag_public, {r.id: r.jurisdiction for r in config.local_regions.values()}, seal_keys=keys.seal_keys(signer))
        records = RecordService(
            config=config,
            stores=stores,
            control=control,
            signer=signer,
            verifier=verifier,
            audit=audit,
            clock=settings.clock,
            cache_seconds=config.subjects.cache_seconds,
        )
        notices = NoticeService(control=control, audit=audit, clock=settings.clock)
        review = ReviewSettings(consent_relays=config.support_access.consent_relays)
        cases = CaseService(control=control, audit=audit, clock=settings.clock, settings=review, on_disclosed=notices.for_case)
        trust = Trust(load_authority_keys(config, settings.data_dir))
        federation, federation_verifier = _federation(config, settings, records, audit) if config.federation is not None else (None, None)
        intake = Intake(
            config=config,
            records=records,
            cases=cases,
            notices=notices,
            control=control,
            trust=trust,
            audit=audit,
            clock=settings.clock,
            federation=federation,
        )
        orders = OrderService(intake, provider_key=keys.provider)
        sessions = ConsoleSessions(control=control, audit=audit, clock=settings.clock, max_age=timedelta(seconds=config.console.session_max_age_seconds))
        reconciler = None
        if isinstance(ledger, FileLedger):
            wait = config.audit.reconcile_after_seconds
            reconciler = Reconciler(ledger_path=ledger.path, stores=stores, audit=audit, clock=settings.clock, wait=wait)
        return cls(
            settings,
            config,
            stores,
            control,
            ledger,
            audit,
            records,
            orders,
            cases,
            notices,
            metrics,
            keys.token,
            console_secret(keys.provider),
            sessions,
            uploader,
            reconciler,
            federation,
            federation_verifier,
            chain_reader(settings.ledger_dir, config, settings.clock),
            PolicyAnalysis(running=Side(config.legal, config.regions), running_digest=config.digest, audit=audit, seconds=settings.analysis_seconds),
        )

    async def close(self, *, export_seconds: float = 0.0) -> None:
        """Close the ledger (appends already made complete first), the uploader and the stores.

        With ``export_seconds`` and ``[audit.export]``, the open ledger segment is first closed by a
        checkpoint and every closed segment not uploaded yet is uploaded, within that many seconds;
        what does not make it stays in the local file and goes up from the next process on it.
        """
        if export_seconds > 0 and self.uploader is not None and isinstance(self.ledger, FileLedger):
            await _final_export(self.ledger, self.uploader, export_seconds)
        await self.ledger.close()
        if self.uploader is not None:
            await self.uploader.close()
        if self.federation is not None:
            await self.federation.client.close()
        if self.chains is not None:
            await self.chains.close()
        await _close_stores(self.stores, self.control)


def _federation(config: Config, settings: Settings, records: RecordService, audit: AuditLog) -> tuple[Federation, FederationVerifier]:
    """The peers: a client that signs this gateway's requests to them, and the verifier of theirs (their public keys)."""
    from gateway.federation import FederationVerifier
    from gateway.peers import PeerClient
    from gateway.services.federation import Federation

    assert config.federation is not None
    key = load_ed25519_private(resolve(settings.data_dir, config.federation.key))
    peer_keys = {peer.id: load_ed25519_public(resolve(settings.data_dir, peer.key)) for peer in config.peers.values()}
    client = PeerClient(config.federation, config.peers, key=key, data_dir=settings.data_dir, clock=settings.clock, observer=audit.observer)
    verifier = FederationVerifier(config.federation.id, peer_keys, frozenset(config.regions))
    return Federation(config=config, records=records, client=client, audit=audit), verifier


def chain_reader(folder: Path, config: Config, clock: Clock) -> ChainReader:
    """Every chain in ``folder`` and, with ``[audit] export``, every chain in the bucket, read as one ledger."""
    from gateway.audit.chains import ChainReader

    if config.audit.export is None:
        return ChainReader(folder)
    from gateway.audit.export import SegmentBucket

    return ChainReader(folder, SegmentBucket(config.audit.export, clock))


async def _final_export(ledger: FileLedger, uploader: SegmentUploader, seconds: float) -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            checkpoint = await ledger.checkpoint()  # queued after every pending append, which it covers
            keys = await uploader.flush()
    except Exception as exc:  # TimeoutError included: the next start uploads what is left
        log.warning(
            "could not export the ledger's last segment at shutdown (%s); it stays in the local ledger",
            type(exc).__name__,
            exc_info=not isinstance(exc, TimeoutError),
            extra={"event": "shutdown.export", "status": "failed"},
        )
        return
    log.info(
        "exported %d ledger segments at shutdown in %.3fs%s",
        len(keys),
        time.monotonic() - started,
        "" if checkpoint is None else f" (checkpoint at entry {checkpoint['seq']})",
        extra={"event": "shutdown.export", "status": "ok", "audit_seq": None if checkpoint is None else checkpoint["seq"]},
    )


async def _open_stores(config: Config, settings: Settings) -> tuple[dict[str, RecordStore], RecordStore]:
    """Every region's store and the control store, prepared (buckets or folders made); all closed again if the start fails.

    A store whose preparation fails is down and healed in the background
    (``HealingStore``). The start fails only when no region's store is ready, or
    when ``[startup] require_all_regions`` is set and any store (the control
    store included) is not.
    """

    def healing(store: RecordStore) -> HealingStore:
        return HealingStore(store, retry_seconds=settings.health_cache_seconds, monotonic=settings.monotonic)

    regions = {r.id: healing(open_store(r, settings.data_dir)) for r in config.local_regions.values()}
    everything = {**regions, CONTROL: healing(open_named_store(CONTROL, config.control, settings.data_dir))}
    stores: dict[str, RecordStore] = dict(regions)
    control: RecordStore = everything[CONTROL]
    try:
        problems = dict(zip(everything, await asyncio.gather(*(s.prepare() for s in everything.values())), strict=True))
        down = {name: problem for name, problem in problems.items() if problem is not None}
        listed = "; ".join(f"`{name}`: {problem}" for name, problem in down.items())
        if down and config.startup.require_all_regions:
            raise StoreError(f"not every store is ready and `startup.require_all_regions` is set: {listed}", code="store-unavailable")
        if all(name in down for name in stores):
            raise StoreError(f"no region's store is ready, so the gateway cannot serve: {listed}", code="store-unavailable")
    except BaseException:
        await _close_stores(stores, control)
        raise
    for name in down:
        log.warning("starting with store `%s` down; it is prepared again in the background", name, extra={"event": "start-degraded", "region": name})
    return stores, control


async def _close_stores(stores: Mapping[str, RecordStore], control: RecordStore) -> None:
    await asyncio.gather(*(s.close() for s in [*stores.values(), control]), return_exceptions=True)


async def _open_ledger(
    settings: Settings, config: Config, provider_key: ed25519.Ed25519PrivateKey, metrics: GatewayMetrics
) -> tuple[FileLedger, SegmentUploader | None]:
    """The ledger, with the configuration it runs under as its newest entry, and its segment uploader if export is configured."""
    uploader: SegmentUploader | None = None
    ledger: FileLedger | None = None
    try:
        if config.audit.export is not None:
            from gateway.audit.export import SegmentExporter, SegmentUploader

            uploader = SegmentUploader(SegmentExporter(config.audit.export, settings.ledger_path, settings.clock, chain=settings.chain_id))
        ledger = await FileLedger.open(
            settings.ledger_path,
            settings.clock,
            checkpoint_key=provider_key,
            checkpoint_every=config.audit.checkpoint_every,
            checkpoint_seconds=config.audit.segment_seconds,  # with an export, every export_interval_seconds
            on_checkpoint=uploader.kick if uploader is not None else None,
            chain=settings.chain_id,
        )
        ledger.on_batch = metrics.ledger_batch
        await ledger.append("config.loaded", {"digest": config.digest, "source": Path(config.source).name})
    except BaseException:
        if uploader is not None:
            await uploader.close()
        if ledger is not None:
            await ledger.close()
        raise
    if uploader is not None:
        uploader.start()  # best effort in the background: never blocks a request
    return ledger, uploader


def console_secret(provider_key: ed25519.Ed25519PrivateKey) -> bytes:
    """A secret every replica derives alike (from the provider key), for console CSRF tokens."""
    return hashlib.sha256(b"disclosure-gateway console csrf\0" + provider_key.private_bytes_raw()).digest()


def _same_key(private: ed25519.Ed25519PrivateKey, public: ed25519.Ed25519PublicKey) -> bool:
    return private.public_key().public_bytes_raw() == public.public_bytes_raw()
