"""The ledger's hash chain: canonical entries and a pure verifier.

One entry is one line: the RFC 8785 bytes of a JSON object followed by ``\\n``::

    {"data":{...},"hash":"<hex>","kind":"record.read","prev":"<hex>","seq":17,"time":"2025-01-01T00:00:00Z"}

``hash`` is the SHA-256 of the canonical bytes of the entry without ``hash``;
``prev`` is the ``hash`` of the entry before it (``GENESIS`` for the first);
``seq`` counts from 1. Editing, deleting, inserting, duplicating or reordering
entries breaks the chain at the first affected line. Cutting entries off the
end leaves a shorter valid chain: only a checkpoint kept elsewhere (a signed
``(seq, hash)``) shows that, which is what ``verify_lines(checkpoint=...)`` is for.

Every so often the writer adds a ``ledger.checkpoint`` entry: its data is
``{"seq", "hash", "key", "signature"}``, where ``seq`` and ``hash`` name the
entry just before it, ``key`` is the id of the provider's Ed25519 key (SHA-256
of its raw public bytes) and ``signature`` is the base64url Ed25519 signature
over ``canonical({"seq": seq, "hash": hash})``. The lines from one checkpoint
(exclusive) to the next (inclusive) are a closed segment, which can be kept
off the box and checked on its own.

The writer also signs the head of every group commit: the last line of each
batch carries ``"head_signature"``, the base64url Ed25519 signature by the
provider key over ``head_message(after, seq, hash)``, where ``seq`` and
``hash`` are that line's own and ``after`` is the ``seq`` of the signed head
before it (0 for the first). The field is left out of the entry's hash (the
signature signs the hash), so an entry hashes the same signed or not. A chain
rebuilt by someone without the key cannot end on a valid signed head, and as
each head names the one before it, no head can be dropped or moved either.
Cutting whole batches off the end leaves a shorter chain that still ends on a
signed head: only the copy kept off the box shows that.

Each writer keeps its own chain (one per replica, one per worker process), named
by a chain id. An entry carries it as ``"chain"``, hashed like every other field,
so an entry cannot be moved to another chain without breaking it; the default
chain (``DEFAULT_CHAIN``) leaves the field out, so a ledger written before chain
ids is the default chain as it stands and verifies unchanged. Every entry of a
chain names the same chain: ``verify_lines(chain=...)`` checks that too.
``merge_chains`` reads several verified chains as one ledger.

Nothing here reads files or clocks or logs: the writer passes the time in.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, b64url_decode, canonical, canonical_checked, key_id, sha256_hex

GENESIS = "0" * 64
KEYS = frozenset({"seq", "time", "kind", "data", "prev", "hash"})
CHAIN = "chain"  # the entry's chain id; left out in the default chain
DEFAULT_CHAIN = "ledger"  # the chain of a ledger written before chain ids (`ledger.jsonl`), and of a writer given none
CHECKPOINT = "ledger.checkpoint"
CHECKPOINT_KEYS = frozenset({"seq", "hash", "key", "signature"})
HEAD = "head_signature"  # on the last line of a group commit; not part of the entry's hash
SIGNED_KEYS = KEYS | {HEAD}
ALLOWED_KEYS = SIGNED_KEYS | {CHAIN}

MAX_INT = 2**53 - 1  # I-JSON: integers beyond this are not exact in every reader
MAX_DEPTH = 64
MAX_KIND = 128

_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
# a file name, a path segment of an S3 key and a pod or host name alike: ASCII letters, digits, `.`, `_`, `-`
_CHAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{86}\Z")  # 64 bytes, base64url without padding
_RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\Z")


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What verification found.

    ``entries``, ``last_seq`` and ``last_hash`` describe the valid prefix: every
    entry before the first problem. ``broken_at`` is the 1-based line number of
    that problem. ``torn_tail`` means the only problem is an incomplete last
    line, as a crash in the middle of a write leaves it; it is still a problem.
    """

    ok: bool
    entries: int
    last_hash: str
    last_seq: int
    problem: str | None = None
    broken_at: int | None = None
    torn_tail: bool = False
    checkpoints: int = 0  # checkpoint entries in the valid prefix
    last_checkpoint: int = 0  # seq of the last of them (0: none)
    signatures_checked: bool = False  # checkpoint and head signatures were verified with a public key
    heads: int = 0  # signed heads (lines with a head signature) in the valid prefix
    first_head: int = 0  # seq of the first of them (0: none)
    last_head: int = 0  # seq of the last of them (0: none); entries after it are not covered by one
    last_head_hash: str = GENESIS  # the hash of that entry
    chain: str = DEFAULT_CHAIN  # the chain its entries belong to (the one asked for, else the first entry's)


class EntryError(ValueError):
    """One line is not a well-formed entry on its own (before any chain check)."""


# --- building entries ----------------------------------------------------------


def check_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of ``data``, or ``ValueError`` naming the first bad value.

    Allowed: str, int (within the I-JSON range), bool, None, lists (tuples are
    written as lists) and mappings with string keys. Floats are refused: the
    ledger holds ids, counts and hashes, and floats do not survive canonical
    re-encoding byte for byte.
    """
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError(f"ledger data must be a mapping, not {_kind_of(data)}")
    copied = _plain(data, "data", 0)
    assert isinstance(copied, dict)
    return copied


def _plain(value: Any, path: str, depth: int) -> Any:
    kind = type(value)
    if kind is str and value.isascii():  # the common cases first; subclasses take the long way
        return value
    if kind is dict and depth < MAX_DEPTH:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return _plain_slow(value, path, depth)
            t = type(item)
            out[key] = item if (t is str and item.isascii()) or item is None or t is bool else _plain(item, f"{path}.{key}", depth + 1)
        return out
    return _plain_slow(value, path, depth)


def _plain_slow(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"`{path}` is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise ValueError(f"`{path}` is an integer outside the exact JSON range")
        return int(value)
    if isinstance(value, str):
        _check_text(value, path)
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"`{path}` has a key that is not a string: {key!r}")
            _check_text(key, path)
            out[key] = _plain(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise ValueError(f"`{path}` is {_kind_of(value)}; the ledger takes only str, int, bool, None, lists and objects")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"`{path}` is not valid unicode text") from exc


def _kind_of(value: object) -> str:
    return "a float" if isinstance(value, float) else f"a `{type(value).__name__}`"


def make_entry(prev_hash: str, seq: int, time: str, kind: str, data: Mapping[str, Any], chain: str = DEFAULT_CHAIN) -> dict[str, Any]:
    """The entry of chain ``chain`` that follows ``prev_hash`` at position ``seq``, with its hash."""
    if not isinstance(prev_hash, str) or not _HEX64.match(prev_hash):
        raise ValueError("prev must be 64 lower-case hex digits")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_INT:
        raise ValueError("seq must be a positive integer")
    check_time(time)
    check_kind(kind)
    check_chain_id(chain)
    entry, _ = entry_and_line(prev_hash, seq, time, kind, check_data(data), chain)
    return entry


def entry_and_line(prev_hash: str, seq: int, time: str, kind: str, data: dict[str, Any], chain: str = DEFAULT_CHAIN) -> tuple[dict[str, Any], bytes]:
    """The entry and its line (``encode(entry)``), canonicalising ``data`` once.

    The caller has checked every argument (``make_entry`` does). The keys of an
    entry sort as ``chain, data, hash, kind, prev, seq, time``, so the line is
    the canonical bytes without ``hash`` with ``"hash":"..."`` spliced in after
    ``data``: the same bytes as ``canonical(entry)``. The default chain's
    entries have no ``chain``.
    """
    # a chain id is ASCII letters, digits and `._-`: nothing to escape
    named = chain != DEFAULT_CHAIN
    head = (b'{"chain":"%s","data":' % chain.encode("ascii") if named else b'{"data":') + canonical_checked(data) + b","
    # prev is hex and time RFC 3339 (both ASCII, nothing to escape); kind is any text
    rest = b'"kind":%s,"prev":"%s","seq":%d,"time":"%s"}' % (_kind_bytes(kind), prev_hash.encode("ascii"), seq, time.encode("ascii"))
    hash_ = sha256_hex(head + rest)
    entry = {"seq": seq, "time": time, "kind": kind, "data": data, "prev": prev_hash, "hash": hash_}
    if named:
        entry[CHAIN] = chain
    return entry, b'%s"hash":"%s",%s\n' % (head, hash_.encode("ascii"), rest)


_KIND_BYTES: dict[str, bytes] = {}


def _kind_bytes(kind: str) -> bytes:
    """``canonical(kind)``, remembered for the few kinds a gateway writes."""
    found = _KIND_BYTES.get(kind)
    if found is None:
        found = canonical(kind)
        if len(_KIND_BYTES) < 1024:
            _KIND_BYTES[kind] = found
    return found


def head_message(after: int, seq: int, hash_: str) -> bytes:
    """The bytes a head signature signs: entry ``seq`` with hash ``hash_`` ends a batch; ``after`` is the signed head before it."""
    return canonical({"ledger_head": {"after": after, "hash": hash_, "seq": seq}})


def signed_head(key: ed25519.Ed25519PrivateKey, after: int, entry: dict[str, Any], line: bytes) -> tuple[dict[str, Any], bytes]:
    """``entry`` and its ``line`` with a head signature by ``key``, the signed head before it being ``after``.

    The signature sorts between ``hash`` and ``kind``, so it is spliced in
    right after the entry's own ``"hash":"..."``, which is the last occurrence
    of those bytes in the line (the keys after it are kind, prev, seq, time).
    """
    signature = b64url(key.sign(head_message(after, entry["seq"], entry["hash"])))
    marker = b'"hash":"%s",' % entry["hash"].encode("ascii")
    cut = line.rindex(marker) + len(marker)
    return {**entry, HEAD: signature}, b'%s"%s":"%s",%s' % (line[:cut], HEAD.encode("ascii"), signature.encode("ascii"), line[cut:])


def check_head(entry: Mapping[str, Any], after: int, public_key: ed25519.Ed25519PublicKey) -> str | None:
    """What is wrong with the head signature of ``entry``, or ``None`` (``after``: the seq of the signed head before it)."""
    try:
        public_key.verify(b64url_decode(entry[HEAD]), head_message(after, entry["seq"], entry["hash"]))
    except (InvalidSignature, ValueError):
        which = f"the signed head after entry {after}" if after else "the first signed head"
        return f"head signature does not verify with the provider key ({which})"
    return None


def encode(entry: Mapping[str, Any]) -> bytes:
    """The entry's line: canonical bytes and a newline."""
    return canonical(entry) + b"\n"


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash an entry must carry: over its canonical bytes without ``hash`` (and without a head signature)."""
    return sha256_hex(canonical({k: v for k, v in entry.items() if k != "hash" and k != HEAD}))


def check_kind(kind: object) -> str:
    """``kind`` if it is a valid entry kind, else ``ValueError``."""
    if not _is_kind(kind):
        raise ValueError(f"entry kind {kind!r} must be a non-empty string of at most {MAX_KIND} characters")
    assert isinstance(kind, str)
    return kind


def check_time(time: object) -> str:
    """``time`` if it is an RFC 3339 time, else ``ValueError``."""
    if not _is_time(time):
        raise ValueError(f"entry time {time!r} is not an RFC 3339 time")
    assert isinstance(time, str)
    return time


def check_chain_id(chain: object) -> str:
    """``chain`` if it is a valid chain id, else ``ValueError``."""
    if not is_chain_id(chain):
        raise ValueError(f"chain id {chain!r} must be 1 to 100 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or digit")
    assert isinstance(chain, str)
    return chain


def is_chain_id(value: object) -> bool:
    return isinstance(value, str) and bool(_CHAIN_ID.match(value))


def chain_id_from(name: str) -> str:
    """A valid chain id made from a host or pod name: characters a chain id cannot hold become ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:100]
    return cleaned or DEFAULT_CHAIN


def entry_chain(entry: Mapping[str, Any]) -> str:
    """The chain an entry belongs to: its ``chain``, or the default chain when it has none."""
    chain = entry.get(CHAIN, DEFAULT_CHAIN)
    return chain if isinstance(chain, str) else DEFAULT_CHAIN


def _is_time(value: object) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_kind(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_KIND


# --- checkpoints -----------------------------------------------------------------


def checkpoint_message(seq: int, hash_: str) -> bytes:
    """The bytes a checkpoint signs: ``canonical({"seq": seq, "hash": hash})``."""
    return canonical({"seq": seq, "hash": hash_})


def checkpoint_data(key: ed25519.Ed25519PrivateKey, seq: int, hash_: str) -> dict[str, Any]:
    """The data of a checkpoint entry covering entry ``seq`` whose hash is ``hash_``."""
    return {"seq": seq, "hash": hash_, "key": key_id(key.public_key()), "signature": b64url(key.sign(checkpoint_message(seq, hash_)))}


def check_checkpoint(entry: Mapping[str, Any], public_key: ed25519.Ed25519PublicKey | None) -> str | None:
    """What is wrong with a checkpoint entry that follows its chain, or ``None``.

    1. its data has exactly ``seq``, ``hash``, ``key`` and ``signature``;
    2. it covers the entry just before it: ``seq`` is one less than its own and
       ``hash`` is its ``prev``;
    3. with ``public_key``: ``key`` names that key and the signature verifies.
    """
    data = entry["data"]
    # (1) shape
    if set(data) != CHECKPOINT_KEYS:
        return "checkpoint data must hold exactly seq, hash, key and signature"
    if isinstance(data["seq"], bool) or not isinstance(data["seq"], int) or not all(isinstance(data[k], str) for k in ("hash", "key", "signature")):
        return "checkpoint data has a value of the wrong type"
    # (2) what it covers
    if data["seq"] != entry["seq"] - 1:
        return f"checkpoint covers entry {data['seq']}, not the entry before it"
    if data["hash"] != entry["prev"]:
        return f"checkpoint hash does not match entry {data['seq']}"
    # (3) the signature
    if public_key is None:
        return None
    if data["key"] != key_id(public_key):
        return "checkpoint is signed by another key than the provider key"
    try:
        signature = b64url_decode(data["signature"])
        public_key.verify(signature, checkpoint_message(data["seq"], data["hash"]))
    except (InvalidSignature, ValueError):
        return "checkpoint signature does not verify with the provider key"
    return None


# --- reading entries -----------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity. ``ValueError`` if not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"`{constant}` is not JSON")

    return json.loads(body.decode("utf-8"), parse_constant=refuse)


def check_entry(value: Any, body: bytes) -> dict[str, Any]:
    """Check one parsed line on its own: canonical form, keys, types and hash.

    ``body`` is the line without its newline. Raises ``EntryError`` with a
    lower-case message. Chain checks (``seq`` and ``prev``) are the caller's.
    """
    # (1) an object
    if not isinstance(value, dict):
        raise EntryError("not a json object")
    # (2) exactly the keys of an entry, and perhaps its chain and a head signature
    keys = set(value)
    if not KEYS <= keys <= ALLOWED_KEYS:
        missing = sorted(KEYS - keys)
        extra = sorted(keys - ALLOWED_KEYS)
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise EntryError(f"wrong keys ({'; '.join(parts)})")
    # (3) the right types
    seq = value["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise EntryError("seq is not a positive integer")
    if not _is_time(value["time"]):
        raise EntryError("time is not an RFC 3339 time")
    if not _is_kind(value["kind"]):
        raise EntryError("kind is not a non-empty string")
    if not isinstance(value["data"], dict):
        raise EntryError("data is not a json object")
    try:
        check_data(value["data"])
    except ValueError as exc:
        raise EntryError(f"data holds a value the ledger does not take: {exc}") from None
    for key in ("prev", "hash"):
        if not isinstance(value[key], str) or not _HEX64.match(value[key]):
            raise EntryError(f"{key} is not 64 lower-case hex digits")
    if HEAD in value and (not isinstance(value[HEAD], str) or not _SIGNATURE.match(value[HEAD])):
        raise EntryError("head signature is not an Ed25519 signature in base64url")
    if CHAIN in value:
        if not is_chain_id(value[CHAIN]):
            raise EntryError("chain is not a chain id")
        if value[CHAIN] == DEFAULT_CHAIN:
            raise EntryError(f"chain names the default chain `{DEFAULT_CHAIN}`, whose entries leave it out")
    # (4) byte for byte in canonical form: no other encoding of the same value passes
    try:
        if canonical(value) != body:
            raise EntryError("not in canonical form")
    except EntryError:
        raise
    except ValueError:
        raise EntryError("not in canonical form") from None
    # (5) the hash covers the content
    if entry_hash(value) != value["hash"]:
        raise EntryError("hash does not match its content")
    return value


def decode(line: bytes) -> dict[str, Any]:
    """One complete line (with its newline) as a checked entry, or ``EntryError``."""
    if not line.endswith(b"\n"):
        raise EntryError("line has no newline")
    body = line[:-1]
    if b"\n" in body:
        raise EntryError("line holds more than one line")
    try:
        value = parse_json(body)
    except ValueError:
        raise EntryError("not valid json") from None
    return check_entry(value, body)


def _with_last(items: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


def verify_lines(
    lines: Iterable[bytes],
    *,
    checkpoint: tuple[int, str] | None = None,
    public_key: ed25519.Ed25519PublicKey | None = None,
    require_signed_heads: bool = False,
    chain: str | None = None,
    after: tuple[int, str] | None = None,
) -> ChainReport:
    """Verify a ledger given as its lines, each with its ``\\n``, in file order.

    ``after=(seq, hash)``: the lines are the end of a ledger, following its entry
    ``seq`` whose hash is ``hash`` (what comes before is the caller's to verify):
    line ``n`` is then entry ``seq + n``, the report's seqs and ``entries`` are
    the ledger's own, and ``heads`` and ``checkpoints`` count these lines only.

    Procedure, for line ``n`` (1-based):

    1. the line ends with ``\\n``; the last line may lack it only as a torn write;
    2. it is UTF-8 JSON; a last line that is not is a torn write;
    3. it is an object with exactly the entry's keys (and perhaps a head
       signature) and their types;
    4. it is byte for byte in canonical form;
    5. ``hash`` matches its content;
    6. ``seq`` is ``n``;
    7. ``prev`` is the hash of line ``n - 1`` (``GENESIS`` for the first);
    8. it belongs to the chain: ``chain`` if given, else the first entry's
       (an entry without ``chain`` belongs to the default chain);
    9. a ``ledger.checkpoint`` entry covers the entry before it and, with
       ``public_key``, carries that key's valid signature (``check_checkpoint``);
    10. a line with a head signature is a signed head: with ``public_key`` the
        signature verifies over its ``seq`` and ``hash`` and the ``seq`` of the
        signed head before it (``check_head``);

    and then, for the whole ledger:

    11. with ``checkpoint=(seq, hash)``: the chain reaches ``seq`` and the entry
        there has that hash, so cutting entries off the end is caught too;
    12. with ``require_signed_heads``: ``public_key`` is given and the last line
        is a signed head, so every entry is covered by a verified signed head at
        or after it and a chain rebuilt without the key cannot pass.

    Stops at the first problem; ``entries`` counts the valid lines before it.
    """
    count = 0 if after is None else after[0]
    last_hash = GENESIS if after is None else after[1]
    last_seq = count
    checkpoints = 0
    last_checkpoint = 0
    heads = 0
    first_head = 0
    last_head = 0
    last_head_hash = GENESIS
    signed = public_key is not None

    expected = chain

    def report(ok: bool, problem: str | None = None, line_no: int | None = None, *, torn: bool = False) -> ChainReport:
        return ChainReport(
            ok,
            count,
            last_hash,
            last_seq,
            problem,
            line_no,
            torn,
            checkpoints,
            last_checkpoint,
            signed,
            heads,
            first_head,
            last_head,
            last_head_hash,
            expected or DEFAULT_CHAIN,
        )

    def broken(line_no: int, problem: str, *, torn: bool = False) -> ChainReport:
        return report(False, problem, line_no, torn=torn)

    checkpoint_hash: str | None = None
    for line_no, (line, is_last) in enumerate(_with_last(lines), start=count + 1):
        # (1) one line, with its newline
        if not line.endswith(b"\n"):
            if is_last:
                return broken(line_no, f"entry {line_no}: torn write ({len(line)} bytes without a newline)", torn=True)
            return broken(line_no, f"entry {line_no}: line has no newline")
        body = line[:-1]
        if b"\n" in body:
            return broken(line_no, f"entry {line_no}: line holds more than one line")
        # (2) json
        try:
            value = parse_json(body)
        except ValueError:
            if is_last:
                return broken(line_no, f"entry {line_no}: torn write (last line is not valid json)", torn=True)
            return broken(line_no, f"entry {line_no}: not valid json")
        # (3), (4), (5) the entry on its own
        try:
            entry = check_entry(value, body)
        except EntryError as exc:
            return broken(line_no, f"entry {line_no}: {exc}")
        # (6) position
        if entry["seq"] != line_no:
            return broken(line_no, f"entry {line_no}: seq is {entry['seq']}, expected {line_no}")
        # (7) link
        if entry["prev"] != last_hash:
            what = "genesis" if line_no == 1 else f"the hash of entry {line_no - 1}"
            return broken(line_no, f"entry {line_no}: prev does not match {what}")
        # (8) one chain
        belongs = entry_chain(entry)
        if expected is None:
            expected = belongs
        elif belongs != expected:
            return broken(line_no, f"entry {line_no}: belongs to chain `{belongs}`, not `{expected}`")
        # (9) a checkpoint entry
        if entry["kind"] == CHECKPOINT:
            wrong = check_checkpoint(entry, public_key)
            if wrong is not None:
                return broken(line_no, f"entry {line_no}: {wrong}")
            checkpoints, last_checkpoint = checkpoints + 1, line_no
        # (10) a signed head
        if HEAD in entry:
            wrong = None if public_key is None else check_head(entry, last_head, public_key)
            if wrong is not None:
                return broken(line_no, f"entry {line_no}: {wrong}")
            heads, last_head, last_head_hash = heads + 1, line_no, entry["hash"]
            first_head = first_head or line_no
        count, last_hash, last_seq = line_no, entry["hash"], line_no
        if checkpoint is not None and line_no == checkpoint[0]:
            checkpoint_hash = last_hash
    # (11) the checkpoint kept elsewhere
    if checkpoint is not None:
        seq, expected = checkpoint
        if last_seq < seq:
            return broken(last_seq + 1, f"ledger ends at entry {last_seq}, before checkpoint entry {seq}")
        if checkpoint_hash != expected:
            return broken(seq, f"entry {seq}: hash does not match the checkpoint")
    # (12) every entry covered by a verified signed head
    if require_signed_heads:
        if public_key is None:
            return broken(last_head + 1, "signed heads cannot be checked without the provider's public key")
        if last_seq == 0:
            return broken(1, "the ledger holds no entry, so no signed head")
        if heads == 0:
            return broken(
                1,
                "no entry is covered by a signed head, as in a chain rebuilt without the provider key "
                "(or a ledger written before signed heads, or by a writer without the key; the gateway signs its head at its next start)",
            )
        if last_head != last_seq:
            return broken(last_head + 1, f"entries {last_head + 1}..{last_seq} follow the last signed head ({last_head}) and are covered by none")
    return report(True)


# --- several chains as one ledger ---------------------------------------------------


def merge_chains(chains: Iterable[Iterable[Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """The entries of several chains as one ledger, ordered by time.

    Each chain keeps its own order (a chain whose clock stepped back is not
    reordered); between chains the earlier entry comes first, ties broken by
    chain id and ``seq``. Entries come from verified chains, so every ``time``
    parses; one that does not sorts first rather than failing the read.
    """
    return list(heapq.merge(*chains, key=_merge_key))


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _merge_key(entry: Mapping[str, Any]) -> tuple[datetime, str, int]:
    try:
        at = datetime.fromisoformat(entry["time"])
    except (KeyError, TypeError, ValueError):
        at = _EPOCH
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seq = entry.get("seq")
    return at, entry_chain(entry), seq if isinstance(seq, int) else 0
