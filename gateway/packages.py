"""Signed disclosure packages: a streamed POSIX tar that proves what was disclosed.

A package is a pax-format tar whose members come in this order:

1. ``manifest.json``: canonical JSON (RFC 8785) naming the order, the
   authority, when it was made, the provider key and every record with its
   path, SHA-256, size and residency tag;
2. ``manifest.sig``: base64url Ed25519 signature over manifest.json's exact
   bytes by the provider key;
3. one member per record at ``records/<subject>/<region>/<key>``, in manifest order,
   except the records withheld (see below);
4. ``withheld.json``: canonical JSON naming the manifest (its SHA-256) and
   each record withheld from the package, with why (usually none);
5. ``withheld.sig``: base64url Ed25519 signature over withheld.json's exact
   bytes by the provider key;

then two zero blocks. Every header is the one ``tarfile`` writes for a regular
file with the manifest's ``created_at`` as mtime, mode 0644, owner 0:0 and no
owner names, so the whole file is a function of the manifest and the record
bytes: the offline verifier rebuilds that layout and compares it byte for
byte, which is how a flipped byte in a header field tar does not checksum, in
block padding or in the end-of-archive blocks is caught too.

``stream_package`` fetches records in batches, a bounded way ahead, and
checks each against the manifest (SHA-256 and size) before its header or any
of its bytes leave; memory is bounded by the read-ahead and the largest
record, never the package.

A record too large to be read whole (a chunked object of the S3 front) comes
as ``Streamed``: its pieces are read and checked twice. First all of them,
each checked as it is read and hashed into the whole, which must be the
manifest's SHA-256 and size before its header is sent; then again, each
checked before any of its bytes leave. So a piece that fails its check, or a
whole of another SHA-256, is found before the member starts, and the record
is withheld like any other (below); memory stays bounded by a piece, never
the object, at the cost of reading it twice. A piece that changed between the
two reads can only be found mid-member: the stream then stops
(``PackageError``), so its bytes never leave and the tar, cut short, fails
verification.

A record that fails that check, or that the store cannot give back (its
stored form corrupt, or gone), is withheld: none of its bytes leave, and the
signed ``withheld.json`` names it with reason ``record-integrity`` and what
failed. The manifest was signed and sent before any record was read, so it
still lists the record; a verifier accepts its absence only with the
provider's signed word for it. The package's length is announced before its
first byte (``package_size``), so when records are withheld a last member,
``withheld.pad``, of zero bytes takes up what their members would have
(less what withheld.json grew by: each record frees at least one 512-byte
block, more than its entry needs).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import json
import tarfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, b64url_decode, canonical, canonical_checked, key_id, no_duplicate_members
from gateway.errors import GatewayError
from gateway.model import is_identifier, isoformat, parse_time

FORMAT = "disclosure-package/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
WITHHELD_FORMAT = "disclosure-package-withheld/1"
WITHHELD = "withheld.json"
WITHHELD_SIGNATURE = "withheld.sig"
WITHHELD_PADDING = "withheld.pad"
WITHHELD_REASON = "record-integrity"
BLOCK = tarfile.BLOCKSIZE  # 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
SIGNATURE_TEXT_BYTES = 86  # unpadded base64url of a 64-byte Ed25519 signature
MAX_SIZE = 2**53 - 1  # a record size JSON carries exactly (RFC 8785's integer range)
_READ_CHUNK = 1024 * 1024
_MANIFEST_FIELDS = frozenset({"format", "order", "authority", "created_at", "provider", "records"})
_RECORD_FIELDS = frozenset({"path", "subject", "region", "category", "key", "sha256", "size", "tag"})
_WITHHELD_FIELDS = frozenset({"format", "manifest_sha256", "records"})
_WITHHELD_RECORD_FIELDS = frozenset({"path", "reason", "detail"})


class Unreadable(NamedTuple):
    """In place of a body: the store holds no readable record there (``detail``: ``record-corrupt``, ``record-missing``)."""

    detail: str


class Streamed(NamedTuple):
    """In place of a body: a record given a piece at a time (see the module docstring).

    ``check`` reads every piece, checking each, and gives the whole's SHA-256 and size, or ``Unreadable`` with why it
    cannot be sent; ``pieces`` gives them again, each checked before it is yielded, and raises ``PackageError`` on one
    that fails."""

    check: Callable[[], Awaitable[tuple[str, int] | Unreadable]]
    pieces: Callable[[], AsyncIterator[bytes]]


Body = bytes | Unreadable | Streamed
Fetch = Callable[[list[dict[str, Any]]], Awaitable[Sequence[Body]]]  # the bodies of a batch of manifest records, in order
OnWithheld = Callable[[dict[str, Any], str], Awaitable[None]]  # told each record withheld, and why, before the stream goes on


class PackageError(GatewayError):
    """A package could not be produced as decided; the stream stops (a truncated tar fails verification)."""

    code = "package-integrity"


# A package item's fields in order: subject, region, category, key, sha256, size, tag.
ItemFields = tuple[str, str, str, str, str, int, str]


class PackageItem(NamedTuple):
    """One disclosed record as the decision saw it (a named tuple: an order makes tens of thousands).

    ``build_manifest`` takes these or plain ``ItemFields`` tuples in the same order.
    """

    subject: str
    region: str
    category: str
    key: str
    sha256: str
    size: int
    tag: str

    @property
    def path(self) -> str:
        return record_path(self.subject, self.region, self.key)


@dataclass(frozen=True)
class PackageReport:
    """What ``verify_package`` found: ``ok`` only when ``problems`` is empty."""

    ok: bool
    order: str | None
    records: int  # records that verified
    problems: list[str]
    withheld: list[dict[str, str]] = field(default_factory=list)  # records the provider's signed withheld.json says it left out


def record_path(subject: str, region: str, key: str) -> str:
    return f"records/{subject}/{region}/{key}"


def build_manifest(
    order_id: str,
    authority: str,
    created_at: datetime,
    items: Iterable[ItemFields],
    provider_key_id: str,
) -> dict[str, Any]:
    """The manifest of a package, records sorted by path; raise ``PackageError`` on an unusable item.

    ``items`` are ``PackageItem``s or plain tuples of the same fields in the same order.

    The manifest holds only strings, integers within ±(2**53 - 1), lists and
    objects, so ``manifest_bytes`` can encode it without a walk first.
    """
    for name, value in (("order", order_id), ("authority", authority), ("provider", provider_key_id)):
        if not isinstance(value, str):
            raise PackageError(f"manifest `{name}` must be a string", code="package-invalid")
    records: dict[str, dict[str, Any]] = {}
    segments: set[str] = set()  # checked already: an order's records share subjects, regions and often keys

    def segment(name: str, value: Any) -> None:
        if not isinstance(value, str) or (value not in segments and not is_identifier(value)):
            raise PackageError(f"record {name} `{value}` cannot be a package path segment", code="package-invalid")
        segments.add(value)

    for subject, region, category, key, sha256, size, tag in items:
        if not (type(subject) is str and type(region) is str and type(key) is str and subject in segments and region in segments and key in segments):
            segment("subject", subject)
            segment("region", region)
            segment("key", key)
        path = record_path(subject, region, key)
        if type(size) is not int or not 0 <= size <= MAX_SIZE:  # bool is not an int here
            raise PackageError(f"record `{path}` has an invalid size", code="package-invalid")
        if type(category) is not str or type(sha256) is not str or type(tag) is not str:
            raise PackageError(f"record `{path}` has a category, sha256 or tag that is not a string", code="package-invalid")
        record = {"path": path, "subject": subject, "region": region, "category": category, "key": key, "sha256": sha256, "size": size, "tag": tag}
        listed = records.setdefault(path, record)
        if listed is not record and listed != record:
            raise PackageError(f"record `{path}` is listed twice with different contents", code="package-invalid")
    return {
        "format": FORMAT,
        "order": order_id,
        "authority": authority,
        "created_at": isoformat(created_at),
        "provider": provider_key_id,
        "records": [records[path] for path in sorted(records)],
    }


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """``canonical(manifest)`` for a manifest made by ``build_manifest``: it holds only
    values ``canonical_checked`` may write without a walk of them first."""
    return canonical_checked(manifest)


# --- writing -------------------------------------------------------------------------


def _mtime(manifest: Mapping[str, Any]) -> int:
    return int(parse_time(str(manifest["created_at"])).timestamp())


def _tar_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


# ustar header fields that differ between a package's members (offsets in the 512-byte block)
_NAME, _SIZE = slice(0, 100), slice(124, 136)
_MAX_NUMBER = 8**11  # from here on tarfile adds a pax header for a size or an mtime


class _Blank(NamedTuple):
    """``tarfile``'s plain ustar header at one mtime, cut around the fields that differ between members."""

    name_to_size: bytes  # bytes 100-124: mode, uid, gid
    size_to_checksum: bytes  # bytes 136-148: mtime
    after_checksum: bytes  # bytes 155-512: the checksum's last space, type, magic, names...
    byte_sum: int  # of the whole header with name and size zeroed and the checksum field as spaces


@functools.lru_cache(maxsize=8)
def _blank_header(mtime: int) -> _Blank:
    header = bytearray(_tar_header("", 0, mtime))
    header[_NAME] = bytes(100)
    header[_SIZE] = bytes(12)
    header[148:156] = b" " * 8
    return _Blank(bytes(header[100:124]), bytes(header[136:148]), bytes(header[155:]), sum(header))


def _plain_ustar(name: str, size: int, mtime: int) -> bool:
    """True if ``tarfile`` writes this member's header as one ustar block, without a pax extended header."""
    return name.isascii() and len(name) <= 100 and 0 <= size < _MAX_NUMBER and 0 <= mtime < _MAX_NUMBER


def _header(name: str, size: int, mtime: int) -> bytes:
    """The header ``tarfile`` writes for this member (PAX format), byte for byte.

    A member whose name is ASCII and at most 100 bytes and whose size and mtime
    fit 11 octal digits gets a plain ustar header, the same as ``tarfile``'s except for
    the name, size and checksum: those are joined with the parts of a blank made once
    by ``tarfile`` (2-3 µs a member against tarfile's 41 µs; ``bench.orders --quick``
    streams packages of 4 KiB records at 87 MiB/s with it and 29 MiB/s without, 40 KiB
    records at 361 against 187 MiB/s). Anything else (a pax extended header) is built
    by ``tarfile``; a test checks the two agree.
    """
    if not _plain_ustar(name, size, mtime):
        return _tar_header(name, size, mtime)
    blank = _blank_header(mtime)
    name_bytes, size_bytes = name.encode("ascii"), b"%011o\0" % size
    # tar's checksum: the sum of the header's bytes with the checksum field as spaces
    checksum = blank.byte_sum + sum(name_bytes) + sum(size_bytes)
    return b"".join(
        (name_bytes.ljust(100, b"\0"), blank.name_to_size, size_bytes, blank.size_to_checksum, b"%06o\0" % checksum, blank.after_checksum)
    )


def _header_length(name: str, size: int, mtime: int) -> int:
    return BLOCK if _plain_ustar(name, size, mtime) else len(_tar_header(name, size, mtime))


def withheld_statement(manifest_sha256: str, withheld: list[dict[str, str]]) -> bytes:
    """withheld.json's bytes: canonical JSON of the manifest's SHA-256 and the records withheld."""
    return canonical({"format": WITHHELD_FORMAT, "manifest_sha256": manifest_sha256, "records": withheld})


_EMPTY_STATEMENT_BYTES = len(withheld_statement("0" * 64, []))  # a SHA-256 is always 64 hex digits


def _footprint(name: str, size: int, mtime: int) -> int:
    """The bytes a member takes in the tar: its header, its data and the padding to a whole block."""
    return _header_length(name, size, mtime) + size + -size % BLOCK


def package_size(manifest: Mapping[str, Any], manifest_length: int) -> int:
    """The length of the package ``stream_package`` writes, known before its first byte
    (so it can be sent as ``Content-Length``); ``manifest_length`` is that of ``manifest_bytes``.
    Withholding a record does not change it (see the module docstring)."""
    mtime = _mtime(manifest)
    total = len(END_OF_ARCHIVE)
    for name, size in (
        (MANIFEST, manifest_length),
        (SIGNATURE, SIGNATURE_TEXT_BYTES),
        (WITHHELD, _EMPTY_STATEMENT_BYTES),
        (WITHHELD_SIGNATURE, SIGNATURE_TEXT_BYTES),
    ):
        total += _footprint(name, size, mtime)
    for record in manifest["records"]:
        total += _footprint(record["path"], record["size"], mtime)
    return total


_PADDINGS = tuple(b"\0" * n for n in range(BLOCK))


def _padding(size: int) -> bytes:
    return _PADDINGS[-size % BLOCK]


def _member(name: str, data: bytes, mtime: int) -> bytes:
    return _header(name, len(data), mtime) + data + _padding(len(data))


READ_AHEAD_BYTES = 8 * 1024 * 1024  # records fetched ahead of the consumer, by their manifest sizes
BATCH_BYTES = 1024 * 1024  # records fetched (and hashed) by one call, by their manifest sizes...
BATCH_RECORDS = 256  # ...and their number
BATCHES_AHEAD = 8  # at most this many batches in flight, however small their records
OWN_CHUNK_BYTES = 64 * 1024  # a body this large is yielded as it is, not copied into its batch's chunk


def _batches(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive records in batches of at most ``BATCH_RECORDS`` and ``BATCH_BYTES`` (always at least one record)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = int(record["size"])
        if batch and (len(batch) == BATCH_RECORDS or size + record_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


async def _fetch_and_hash(fetch: Fetch, batch: list[dict[str, Any]]) -> tuple[Sequence[Body], list[str]]:
    """The batch's bodies and their SHA-256s. Hashing stays on the event loop: in worker threads it
    measured slower here (the GIL hand-offs per record cost more than the hashing they move)."""
    bodies = await fetch([dict(record) for record in batch])
    if len(bodies) != len(batch):
        raise PackageError(f"the store returned {len(bodies)} records for {len(batch)}; the package is incomplete")
    # a body of another size fails without being hashed (it could be far larger than the decision's)
    return bodies, [
        hashlib.sha256(body).hexdigest() if isinstance(body, bytes) and len(body) == int(record["size"]) else ""
        for record, body in zip(batch, bodies, strict=True)
    ]


async def stream_package(
    manifest: dict[str, Any],
    *,
    signing_key: ed25519.Ed25519PrivateKey,
    fetch: Fetch,
    manifest_bytes: bytes | None = None,
    on_withheld: OnWithheld | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the package's tar bytes, fetching records in batches a bounded way ahead.

    The manifest is yielded first; while it is written and signed (in a worker
    thread), the first batches are read.

    Records are fetched in manifest order, in batches (``BATCH_RECORDS``,
    ``BATCH_BYTES``: one bulk read each, not a call per record), a few
    batches ahead of the consumer (at most ``READ_AHEAD_BYTES`` by their
    sizes and ``BATCHES_AHEAD`` in number, and always the next batch), so a
    store's latency overlaps the streaming while memory stays bounded
    whatever the package's size. A batch's small records are yielded as one
    chunk, a large record as a chunk of its own. Each record's SHA-256
    and size are checked against the manifest before its header or any of
    its bytes are yielded (a ``Streamed`` one: checked whole first, then
    sent a piece at a time, each checked again; see the module docstring);
    a record that fails (or that ``fetch`` gives as
    ``Unreadable``) is withheld: ``on_withheld`` is awaited with it and why
    (``record-changed``: its SHA-256 or size is not the decision's; or the ``Unreadable`` detail), the stream goes
    on without it, and the signed withheld.json at the end names it. A batch
    whose fetch fails ends the stream before any of its records
    (``PackageError``: a truncated tar fails verification).

    ``manifest_bytes``, when the caller already has them, must be
    ``canonical(manifest)``.
    """
    mtime = _mtime(manifest)
    if manifest_bytes is None:
        manifest_bytes = canonical(manifest)
    # Signed in a worker thread (it releases the GIL, and hashes a large manifest twice) while
    # the manifest is written and the first batches are read.
    signing = asyncio.ensure_future(asyncio.to_thread(signing_key.sign, manifest_bytes))
    batches = _batches(manifest["records"])
    ahead: collections.deque[tuple[list[dict[str, Any]], int, asyncio.Future[tuple[Sequence[Body], list[str]]]]] = collections.deque()
    in_flight = 0  # manifest bytes of the batches ahead
    following = next(batches, None)
    withheld: list[dict[str, str]] = []
    freed = 0  # bytes the withheld records' members would have taken

    def read_ahead() -> None:
        nonlocal in_flight, following
        while following is not None:
            size = sum(int(record["size"]) for record in following)
            if ahead and (in_flight + size > READ_AHEAD_BYTES or len(ahead) >= BATCHES_AHEAD):
                return
            ahead.append((following, size, asyncio.ensure_future(_fetch_and_hash(fetch, following))))
            in_flight += size
            following = next(batches, None)

    try:
        read_ahead()
        yield _member(MANIFEST, manifest_bytes, mtime)
        yield _member(SIGNATURE, b64url(await signing).encode("ascii"), mtime)
        while True:
            read_ahead()
            if not ahead:
                break
            batch, size, fetching = ahead.popleft()
            bodies, digests = await fetching
            in_flight -= size
            parts: list[bytes] = []
            for record, body, digest in zip(batch, bodies, digests, strict=True):
                path, expected = str(record["path"]), int(record["size"])
                if isinstance(body, Streamed):
                    if parts:  # (what came before goes first: checking the whole reads all its pieces)
                        yield b"".join(parts)
                        parts = []
                    checked = await body.check()
                    if isinstance(checked, Unreadable) or checked != (record["sha256"], expected):
                        detail = checked.detail if isinstance(checked, Unreadable) else "record-changed"
                        withheld.append({"path": path, "reason": WITHHELD_REASON, "detail": detail})
                        freed += _footprint(path, expected, mtime)
                        if on_withheld is not None:
                            await on_withheld(record, detail)
                        continue
                    yield _header(path, expected, mtime)
                    sent = 0
                    async for piece in body.pieces():
                        sent += len(piece)
                        if sent > expected:
                            raise PackageError(f"record `{path}` grew while the package streamed; the package is incomplete")
                        yield piece
                    if sent != expected:
                        raise PackageError(f"record `{path}` shrank while the package streamed; the package is incomplete")
                    if expected % BLOCK:
                        parts.append(_padding(expected))
                    continue
                if isinstance(body, Unreadable) or not digest or digest != record["sha256"]:  # (a body of another size has no digest)
                    detail = body.detail if isinstance(body, Unreadable) else "record-changed"
                    withheld.append({"path": path, "reason": WITHHELD_REASON, "detail": detail})
                    freed += _footprint(path, expected, mtime)
                    if on_withheld is not None:
                        await on_withheld(record, detail)
                    continue
                parts.append(_header(path, expected, mtime))
                if expected >= OWN_CHUNK_BYTES:  # not copied again: memory stays within the read-ahead
                    yield b"".join(parts)
                    parts = []
                    yield body
                else:
                    parts.append(body)
                if expected % BLOCK:
                    parts.append(_padding(expected))
            if parts:
                yield b"".join(parts)
            del parts, bodies, body
        # (withheld.json and its signature, then the padding that keeps the announced length)
        statement = withheld_statement(hashlib.sha256(manifest_bytes).hexdigest(), withheld)
        yield _member(WITHHELD, statement, mtime) + _member(WITHHELD_SIGNATURE, b64url(signing_key.sign(statement)).encode("ascii"), mtime)
        grown = _footprint(WITHHELD, len(statement), mtime) - _footprint(WITHHELD, _EMPTY_STATEMENT_BYTES, mtime)
        for chunk in _padding_member(freed - grown, mtime):
            yield chunk
    finally:
        # the stream may have ended early: stop the signing and what was read ahead; a failure
        # of theirs is retrieved, so it is not reported as unhandled
        for pending in (signing, *(fetching for _, _, fetching in ahead)):
            if pending.done() and not pending.cancelled():
                pending.exception()
            pending.cancel()
    yield END_OF_ARCHIVE


def _padding_member(length: int, mtime: int) -> Iterator[bytes]:
    """withheld.pad: a member of zero bytes ``length`` long in all (a multiple of 512), or nothing when ``length`` is 0."""
    if length == 0:
        return
    size = length - BLOCK
    if size < 0 or size % BLOCK or not _plain_ustar(WITHHELD_PADDING, size, mtime):
        # cannot happen (a withheld record frees at least a block more than its entry takes); never send a wrong length
        raise PackageError("the withheld records cannot be accounted for within the package's announced length; the package is incomplete")
    yield _header(WITHHELD_PADDING, size, mtime)
    while size > 0:
        step = min(size, _READ_CHUNK)
        yield bytes(step)
        size -= step


# --- verifying -----------------------------------------------------------------------


def _manifest_problems(manifest: Any) -> list[str]:
    """Shape of the manifest: the fields, and records whose paths are what their fields say."""
    if not isinstance(manifest, dict):
        return ["manifest.json is not a JSON object"]
    problems: list[str] = []
    missing = sorted(_MANIFEST_FIELDS - set(manifest))
    if missing:
        problems.append(f"manifest.json lacks {', '.join(f'`{m}`' for m in missing)}")
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest format is not `{FORMAT}`")
    for name in ("order", "authority", "provider"):
        if not isinstance(manifest.get(name), str):
            problems.append(f"manifest `{name}` must be a string")
    try:
        parse_time(str(manifest.get("created_at")))
    except ValueError:
        problems.append("manifest `created_at` must be an RFC 3339 time")
    records = manifest.get("records")
    if not isinstance(records, list):
        return [*problems, "manifest `records` must be a list"]
    paths = [r.get("path") for r in records if isinstance(r, dict)]
    if len(set(map(str, paths))) != len(paths):
        problems.append("manifest `records` lists a path twice")
    for i, record in enumerate(records):
        if not isinstance(record, dict) or set(record) != _RECORD_FIELDS:
            problems.append(f"manifest `records[{i}]` must have exactly the fields {', '.join(sorted(_RECORD_FIELDS))}")
            continue
        size = record["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(f"manifest `records[{i}].size` must be a size in bytes")
        segments = (record["subject"], record["region"], record["key"])
        if not all(is_identifier(s) for s in segments) or record["path"] != record_path(*segments):
            problems.append(f"manifest `records[{i}].path` must be records/<subject>/<region>/<key>")
        if not all(isinstance(record[name], str) for name in ("category", "sha256", "tag")):
            problems.append(f"manifest `records[{i}]` has a field of the wrong type")
    return problems


def _canonical_or_none(value: Any) -> bytes | None:
    try:
        return canonical(value)
    except ValueError:  # rfc8785's CanonicalizationError: a number outside its domain
        return None


def _digest(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes | None:
    if not member.isreg() or member.size > limit:
        return None
    handle = tar.extractfile(member)
    return handle.read() if handle is not None else None


def _layout_problem(path: Path, members: list[tuple[str, int]], mtime: int) -> str | None:
    """The first place where the file differs from the canonical layout of ``members``, or None."""
    with path.open("rb") as fh:
        position = 0
        for name, size in members:
            header = _header(name, size, mtime)
            fh.seek(position)
            if fh.read(len(header)) != header:
                return f"the tar header of `{name}` at byte {position} is not the canonical one"
            position += len(header) + size
            padding = _padding(size)
            fh.seek(position)
            if fh.read(len(padding)) != padding:
                return f"the block padding after `{name}` at byte {position} is not zero"
            position += len(padding)
        fh.seek(position)
        tail = fh.read(len(END_OF_ARCHIVE) + 1)
        if tail != END_OF_ARCHIVE:
            return f"the package does not end with exactly two zero blocks at byte {position}"
    return None


def _zeros(stream: IO[bytes]) -> tuple[bool, int]:
    """Whether the stream holds only zero bytes, and how many."""
    size = 0
    only_zeros = True
    while chunk := stream.read(_READ_CHUNK):
        only_zeros = only_zeros and not chunk.strip(b"\0")
        size += len(chunk)
    return only_zeros, size


def _verify_signature(text: bytes, signed: bytes, public_key: ed25519.Ed25519PublicKey) -> bool:
    try:
        decoded = text.decode("ascii")
        signature = b64url_decode(decoded)
        if b64url(signature) != decoded:
            raise ValueError("not canonical base64url")
        public_key.verify(signature, signed)
    except (ValueError, UnicodeDecodeError, InvalidSignature):
        return False
    return True


def _withheld_problems(statement: bytes, manifest_bytes: bytes, listed: Mapping[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
    """Shape of withheld.json: this manifest's SHA-256, and records of the manifest, each once; and those records."""
    try:
        data = json.loads(statement.decode("utf-8"), object_pairs_hook=no_duplicate_members)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ["withheld.json is not JSON"], []
    if not isinstance(data, dict) or set(data) != _WITHHELD_FIELDS or not isinstance(data["records"], list):
        return [f"withheld.json must have exactly the fields {', '.join(sorted(_WITHHELD_FIELDS))}"], []
    problems: list[str] = []
    if data["format"] != WITHHELD_FORMAT:
        problems.append(f"withheld.json format is not `{WITHHELD_FORMAT}`")
    if data["manifest_sha256"] != hashlib.sha256(manifest_bytes).hexdigest():
        problems.append("withheld.json names another manifest")
    if _canonical_or_none(data) != statement:
        problems.append("withheld.json is not canonical JSON (RFC 8785)")
    withheld: list[dict[str, str]] = []
    for i, record in enumerate(data["records"]):
        if not isinstance(record, dict) or set(record) != _WITHHELD_RECORD_FIELDS or not all(isinstance(v, str) for v in record.values()):
            problems.append(f"withheld.json `records[{i}]` must have exactly the text fields {', '.join(sorted(_WITHHELD_RECORD_FIELDS))}")
        elif record["path"] not in listed:
            problems.append(f"withheld.json names `{record['path']}`, which the manifest does not list")
        elif any(w["path"] == record["path"] for w in withheld):
            problems.append(f"withheld.json names `{record['path']}` twice")
        else:
            withheld.append(record)
    return problems, withheld


def verify_package(path: Path, public_key: ed25519.Ed25519PublicKey) -> PackageReport:
    """Check a package file offline; every problem found is listed, nothing raises.

    (1) the file is a tar whose first member is ``manifest.json``, canonical
        JSON of the expected shape, and whose second is ``manifest.sig``;
    (2) the signature verifies over manifest.json's exact bytes under
        ``public_key``, and the manifest names that key as its provider;
    (3) every manifest record is present exactly once, with its SHA-256 and
        size, except those withheld.json names, which are absent; there is
        no other member than withheld.json, withheld.sig and withheld.pad;
    (4) withheld.json (when there: a package made before it existed has none)
        is canonical JSON naming this manifest's SHA-256 and records of the
        manifest, each once; withheld.sig verifies over its exact bytes under
        ``public_key``; withheld.pad, only with records withheld, holds only
        zero bytes, and the file is then exactly as long as the package
        announced before its first byte;
    (5) the file is byte for byte the layout the manifest implies: canonical
        headers, zero padding, two zero blocks and nothing after them.
    """
    problems: list[str] = []
    manifest: Any = None
    manifest_bytes: bytes | None = None
    signature_text: bytes | None = None
    trailer: dict[str, bytes | None] = {}  # withheld.json and withheld.sig, as found
    padding_size: int | None = None  # withheld.pad's, when found
    seen: dict[str, int] = {}
    verified = 0
    withheld: list[dict[str, str]] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = iter(tar)
            # (1) manifest.json first, canonical, of the expected shape; manifest.sig second
            first = next(members, None)
            if first is None or first.name != MANIFEST:
                problems.append("the first member is not manifest.json")
            else:
                manifest_bytes = _read_small(tar, first, MAX_MANIFEST_BYTES)
            second = next(members, None)
            if second is None or second.name != SIGNATURE:
                problems.append("the second member is not manifest.sig")
            else:
                signature_text = _read_small(tar, second, 1024)
            if manifest_bytes is not None:
                try:
                    manifest = json.loads(manifest_bytes.decode("utf-8"), object_pairs_hook=no_duplicate_members)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    problems.append("manifest.json is not JSON")
                else:
                    shape = _manifest_problems(manifest)
                    problems += shape
                    if not shape and _canonical_or_none(manifest) != manifest_bytes:
                        problems.append("manifest.json is not canonical JSON (RFC 8785)")
            elif first is not None and first.name == MANIFEST:
                problems.append("manifest.json is not a regular file of a readable size")
            # (2) the provider's signature
            if manifest_bytes is not None and signature_text is not None:
                if not _verify_signature(signature_text, manifest_bytes, public_key):
                    problems.append("manifest.sig does not verify under the provider key")
            elif second is not None and second.name == SIGNATURE:
                problems.append("manifest.sig is not a regular file of a readable size")
            if isinstance(manifest, dict) and manifest.get("provider") != key_id(public_key):
                problems.append("the manifest names another provider key")
            # (3) every record once, as the manifest says, and nothing else but the withheld statement
            expected: dict[str, dict[str, Any]] = {}
            if isinstance(manifest, dict) and isinstance(manifest.get("records"), list):
                expected = {r["path"]: r for r in manifest["records"] if isinstance(r, dict) and isinstance(r.get("path"), str)}
            for member in members:
                if member.name in (WITHHELD, WITHHELD_SIGNATURE, WITHHELD_PADDING):
                    if member.name in trailer or (member.name == WITHHELD_PADDING and padding_size is not None):
                        problems.append(f"`{member.name}` appears more than once")
                    elif member.name == WITHHELD_PADDING:
                        handle = tar.extractfile(member) if member.isreg() else None
                        only_zeros, padding_size = _zeros(handle) if handle is not None else (False, -1)
                        if not only_zeros:
                            problems.append("withheld.pad holds other bytes than zeros")
                    else:
                        trailer[member.name] = _read_small(tar, member, MAX_MANIFEST_BYTES if member.name == WITHHELD else 1024)
                    continue
                record = expected.get(member.name)
                if record is None:
                    problems.append(f"unexpected member `{member.name}`")
                    continue
                seen[member.name] = seen.get(member.name, 0) + 1
                if seen[member.name] > 1:
                    problems.append(f"record `{member.name}` appears more than once")
                    continue
                handle = tar.extractfile(member) if member.isreg() else None
                if handle is None:
                    problems.append(f"record `{member.name}` is not a regular file")
                    continue
                sha256, size = _digest(handle)
                if sha256 != record.get("sha256") or size != record.get("size"):
                    problems.append(f"record `{member.name}` does not match its sha256 and size in the manifest")
                else:
                    verified += 1
            # (4) the provider's signed word for what was withheld
            statement, statement_signature = trailer.get(WITHHELD), trailer.get(WITHHELD_SIGNATURE)
            if trailer and (statement is None or statement_signature is None):
                problems.append("withheld.json and withheld.sig must both be regular files of a readable size")
            elif statement is not None and statement_signature is not None and manifest_bytes is not None:
                if not _verify_signature(statement_signature, statement, public_key):
                    problems.append("withheld.sig does not verify under the provider key")
                found, withheld = _withheld_problems(statement, manifest_bytes, expected)
                problems += found
            if padding_size is not None and not withheld:
                problems.append("withheld.pad without a record withheld")
            withheld_paths = {w["path"] for w in withheld}
            for missing in sorted(set(expected) - set(seen) - withheld_paths):
                problems.append(f"record `{missing}` is missing")
            for present in sorted(withheld_paths & set(seen)):
                problems.append(f"record `{present}` is named as withheld but is in the package")
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeError, OverflowError) as exc:
        problems.append(f"the package is not a readable tar: {exc}")

    # (5) the exact layout, so padding, unchecksummed header bytes and the end are covered too
    if isinstance(manifest, dict) and manifest_bytes is not None and signature_text is not None and not _manifest_problems(manifest):
        withheld_paths = {w["path"] for w in withheld}
        layout = [(MANIFEST, len(manifest_bytes)), (SIGNATURE, len(signature_text))]
        layout += [(r["path"], r["size"]) for r in manifest["records"] if r["path"] not in withheld_paths]
        layout += [(name, len(data)) for name in (WITHHELD, WITHHELD_SIGNATURE) if (data := trailer.get(name)) is not None]
        layout += [(WITHHELD_PADDING, padding_size)] if padding_size is not None and padding_size >= 0 else []
        try:
            problem = _layout_problem(path, layout, _mtime(manifest))
            if problem is None and trailer and path.stat().st_size != package_size(manifest, len(manifest_bytes)):
                problem = "the package is not as long as the manifest announces"
        except (OSError, ValueError, UnicodeError, OverflowError) as exc:
            problem = f"the package layout cannot be checked: {exc}"
        if problem is not None:
            problems.append(problem)

    order = manifest.get("order") if isinstance(manifest, dict) and isinstance(manifest.get("order"), str) else None
    return PackageReport(ok=not problems, order=order, records=verified, problems=problems, withheld=withheld)
