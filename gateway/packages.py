"""Signed disclosure packages: a streamed POSIX tar that proves what was disclosed.

A package is a pax-format tar whose members come in this order:

1. ``manifest.json``: canonical JSON (RFC 8785) naming the order, the
   authority, when it was made, the provider key and every record with its
   path, SHA-256, size and residency tag;
2. ``manifest.sig``: base64url Ed25519 signature over manifest.json's exact
   bytes by the provider key;
3. one member per record at ``records/<subject>/<region>/<key>``, in manifest order;

then two zero blocks. Every header is the one ``tarfile`` writes for a regular
file with the manifest's ``created_at`` as mtime, mode 0644, owner 0:0 and no
owner names, so the whole file is a function of the manifest and the record
bytes: the offline verifier rebuilds that layout and compares it byte for
byte, which is how a flipped byte in a header field tar does not checksum, in
block padding or in the end-of-archive blocks is caught too.

``stream_package`` fetches one record at a time and checks it against the
manifest before any of its bytes leave; memory is bounded by the largest
record, never the package.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import json
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, b64url_decode, canonical
from gateway.errors import GatewayError
from gateway.model import is_identifier, isoformat, parse_time

FORMAT = "disclosure-package/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BLOCK = tarfile.BLOCKSIZE  # 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_MANIFEST_FIELDS = frozenset({"format", "order", "authority", "created_at", "provider", "records"})
_RECORD_FIELDS = frozenset({"path", "subject", "region", "category", "key", "sha256", "size", "tag"})

Fetch = Callable[[Mapping[str, Any]], Awaitable[bytes]]


class PackageError(GatewayError):
    """A package could not be produced as decided; the stream stops (a truncated tar fails verification)."""

    code = "package-integrity"


@dataclass(frozen=True)
class PackageItem:
    """One disclosed record as the decision saw it."""

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


def record_path(subject: str, region: str, key: str) -> str:
    return f"records/{subject}/{region}/{key}"


def provider_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """The provider key's id: SHA-256 (hex) of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def build_manifest(
    order_id: str,
    authority: str,
    created_at: datetime,
    items: Iterable[PackageItem],
    provider_key_id: str,
) -> dict[str, Any]:
    """The manifest of a package, records sorted by path; raise ``PackageError`` on an unusable item."""
    records: dict[str, dict[str, Any]] = {}
    for item in items:
        for name in ("subject", "region", "key"):
            if not is_identifier(getattr(item, name)):
                raise PackageError(f"record {name} `{getattr(item, name)}` cannot be a package path segment", code="package-invalid")
        if isinstance(item.size, bool) or not isinstance(item.size, int) or item.size < 0:
            raise PackageError(f"record `{item.path}` has an invalid size", code="package-invalid")
        record = {
            "path": item.path,
            "subject": item.subject,
            "region": item.region,
            "category": item.category,
            "key": item.key,
            "sha256": item.sha256,
            "size": item.size,
            "tag": item.tag,
        }
        if records.setdefault(item.path, record) != record:
            raise PackageError(f"record `{item.path}` is listed twice with different contents", code="package-invalid")
    return {
        "format": FORMAT,
        "order": order_id,
        "authority": authority,
        "created_at": isoformat(created_at),
        "provider": provider_key_id,
        "records": [records[path] for path in sorted(records)],
    }


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
_NAME, _SIZE, _CHECKSUM = slice(0, 100), slice(124, 136), slice(148, 155)
_MAX_NUMBER = 8**11  # from here on tarfile adds a pax header for a size or an mtime


@functools.lru_cache(maxsize=8)
def _blank_header(mtime: int) -> tuple[bytes, int]:
    """``tarfile``'s header at ``mtime`` with name and size zeroed and the checksum field blank (spaces), and its byte sum."""
    header = bytearray(_tar_header("", 0, mtime))
    header[_NAME] = bytes(100)
    header[_SIZE] = bytes(12)
    header[148:156] = b" " * 8
    return bytes(header), sum(header)


def _header(name: str, size: int, mtime: int) -> bytes:
    """The header ``tarfile`` writes for this member (PAX format), byte for byte.

    A member whose name is ASCII and at most 100 bytes and whose size and mtime
    fit 11 octal digits gets a plain ustar header, the same as ``tarfile``'s except for
    the name, size and checksum: those are filled into a blank made once by
    ``tarfile`` (a sixth of its cost per member). Anything else (a pax extended
    header) is built by ``tarfile``; a test checks the two agree.
    """
    if not (name.isascii() and len(name) <= 100 and 0 <= size < _MAX_NUMBER and 0 <= mtime < _MAX_NUMBER):
        return _tar_header(name, size, mtime)
    blank, blank_sum = _blank_header(mtime)
    name_bytes, size_bytes = name.encode("ascii"), b"%011o\0" % size
    header = bytearray(blank)
    header[: len(name_bytes)] = name_bytes
    header[_SIZE] = size_bytes
    # tar's checksum: the sum of the header's bytes with the checksum field as spaces
    header[_CHECKSUM] = b"%06o\0" % (blank_sum + sum(name_bytes) + sum(size_bytes))
    return bytes(header)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _member(name: str, data: bytes, mtime: int) -> bytes:
    return _header(name, len(data), mtime) + data + _padding(len(data))


READ_AHEAD_BYTES = 8 * 1024 * 1024  # records fetched ahead of the consumer, by their manifest sizes


async def stream_package(manifest: dict[str, Any], *, signing_key: ed25519.Ed25519PrivateKey, fetch: Fetch) -> AsyncIterator[bytes]:
    """Yield the package's tar bytes, fetching records a bounded way ahead.

    Records are fetched in manifest order, a few ahead of the consumer (at
    most ``READ_AHEAD_BYTES`` by their sizes, and always the next one), so a
    store's latency overlaps the streaming while memory stays bounded
    whatever the package's size. Each record's SHA-256 and size are checked
    against the manifest before any of its bytes are yielded; a mismatch
    raises ``PackageError`` (``package-integrity``) and the stream ends there.
    """
    mtime = _mtime(manifest)
    manifest_bytes = canonical(manifest)
    yield _member(MANIFEST, manifest_bytes, mtime)
    yield _member(SIGNATURE, b64url(signing_key.sign(manifest_bytes)).encode("ascii"), mtime)
    records = manifest["records"]
    ahead: collections.deque[tuple[int, asyncio.Future[bytes]]] = collections.deque()
    queued = 0  # records handed to fetch so far
    in_flight = 0  # their manifest bytes not yet yielded

    def read_ahead() -> None:
        nonlocal queued, in_flight
        while queued < len(records) and (not ahead or in_flight + int(records[queued]["size"]) <= READ_AHEAD_BYTES):
            size = int(records[queued]["size"])
            ahead.append((size, asyncio.ensure_future(fetch(dict(records[queued])))))
            queued += 1
            in_flight += size

    try:
        for record in records:
            read_ahead()
            expected, fetching = ahead.popleft()
            body = await fetching
            in_flight -= expected
            path, sha256, size = str(record["path"]), str(record["sha256"]), int(record["size"])
            if len(body) != size or hashlib.sha256(body).hexdigest() != sha256:
                raise PackageError(
                    f"record `{path}` no longer matches the decision (sha256 or size changed); the package is incomplete",
                    path=path,
                )
            yield _header(path, size, mtime)
            yield body
            padding = _padding(size)
            if padding:
                yield padding
            del body
    finally:
        for _, fetching in ahead:  # the stream ended early: stop what was read ahead
            if fetching.done() and not fetching.cancelled():
                fetching.exception()  # retrieved, so a failed read-ahead is not reported as unhandled
            fetching.cancel()
    yield END_OF_ARCHIVE


# --- verifying -----------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate member `{name}`")
        result[name] = value
    return result


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


def verify_package(path: Path, public_key: ed25519.Ed25519PublicKey) -> PackageReport:
    """Check a package file offline; every problem found is listed, nothing raises.

    (1) the file is a tar whose first member is ``manifest.json``, canonical
        JSON of the expected shape, and whose second is ``manifest.sig``;
    (2) the signature verifies over manifest.json's exact bytes under
        ``public_key``, and the manifest names that key as its provider;
    (3) every manifest record is present exactly once, with its SHA-256 and
        size, and there is no other member;
    (4) the file is byte for byte the layout the manifest implies: canonical
        headers, zero padding, two zero blocks and nothing after them.
    """
    problems: list[str] = []
    manifest: Any = None
    manifest_bytes: bytes | None = None
    signature_text: bytes | None = None
    seen: dict[str, int] = {}
    verified = 0
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
                    manifest = json.loads(manifest_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
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
                try:
                    text = signature_text.decode("ascii")
                    signature = b64url_decode(text)
                    if b64url(signature) != text:
                        raise ValueError("not canonical base64url")
                    public_key.verify(signature, manifest_bytes)
                except (ValueError, UnicodeDecodeError, InvalidSignature):
                    problems.append("manifest.sig does not verify under the provider key")
            elif second is not None and second.name == SIGNATURE:
                problems.append("manifest.sig is not a regular file of a readable size")
            if isinstance(manifest, dict) and manifest.get("provider") != provider_key_id(public_key):
                problems.append("the manifest names another provider key")
            # (3) every record once, as the manifest says, and nothing else
            expected: dict[str, dict[str, Any]] = {}
            if isinstance(manifest, dict) and isinstance(manifest.get("records"), list):
                expected = {r["path"]: r for r in manifest["records"] if isinstance(r, dict) and isinstance(r.get("path"), str)}
            for member in members:
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
            for missing in sorted(set(expected) - set(seen)):
                problems.append(f"record `{missing}` is missing")
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeError, OverflowError) as exc:
        problems.append(f"the package is not a readable tar: {exc}")

    # (4) the exact layout, so padding, unchecksummed header bytes and the end are covered too
    if isinstance(manifest, dict) and manifest_bytes is not None and signature_text is not None and not _manifest_problems(manifest):
        layout = [(MANIFEST, len(manifest_bytes)), (SIGNATURE, len(signature_text))]
        layout += [(r["path"], r["size"]) for r in manifest["records"]]
        try:
            problem = _layout_problem(path, layout, _mtime(manifest))
        except (OSError, ValueError, UnicodeError, OverflowError) as exc:
            problem = f"the package layout cannot be checked: {exc}"
        if problem is not None:
            problems.append(problem)

    order = manifest.get("order") if isinstance(manifest, dict) and isinstance(manifest.get("order"), str) else None
    return PackageReport(ok=not problems, order=order, records=verified, problems=problems)
