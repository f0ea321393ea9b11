"""Every chain of the ledger, read as one: the local chain files and, with an export, the bucket.

Each gateway process writes its own chain (``gateway.audit.chain``): a
replica's data folder holds the chains written on its host,
``DATA_DIR/ledger/<chain>.jsonl``, and the export bucket holds the closed
segments of every chain ever exported, from every replica, those whose disk
is gone included. "The ledger" is all of them:

- ``local_chains(folder)``: the chain files of a ledger folder, by chain id;
- ``ChainReader.entries()``: every entry of every chain, verified, each once.
  A chain found both on the disk and in the bucket is read from both and
  de-duplicated by ``(chain, seq)``; an entry that differs between the two
  copies makes the ledger broken. The chains are then merged by time
  (``merge_chains``). Segments already read from the bucket are kept, so a
  later read fetches only the new ones;
- ``check_chains(...)``: what ``gateway audit verify`` reports, chain by chain.

File reads run in a thread and S3 calls in the bucket's own threads, never on
the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit.chain import ChainReport, decode, is_chain_id, merge_chains
from gateway.audit.ledger import read_entries, verify_file
from gateway.errors import LedgerBroken

if TYPE_CHECKING:  # boto3 is imported only when an export is configured
    from gateway.audit.export import SegmentBucket


def local_chains(folder: Path) -> dict[str, Path]:
    """``{chain id: file}`` of every ``<chain>.jsonl`` in ``folder`` (none if it does not exist)."""
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.jsonl")) if is_chain_id(path.stem) and path.is_file()}


def read_local(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every entry of every chain file in ``folder``, by chain id; ``LedgerBroken`` if one does not verify as its chain."""
    return {chain: read_entries(path, chain=chain) for chain, path in local_chains(folder).items()}


def union_copies(chain: str, local: list[dict[str, Any]], remote: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One chain read from two verified copies, both from entry 1: the longer, once the entries they share are the same.

    ``LedgerBroken`` naming the first entry that differs.
    """
    for mine, kept in zip(local, remote, strict=False):
        if mine["hash"] != kept["hash"]:
            raise LedgerBroken(f"entry {mine['seq']} of chain `{chain}` differs from the copy kept off the box", line=mine["seq"])
    return local if len(local) >= len(remote) else remote


class ChainReader:
    """Reads every chain in ``folder`` and, with ``bucket``, every chain exported to it."""

    def __init__(self, folder: Path, bucket: SegmentBucket | None = None) -> None:
        self.folder = folder
        self.bucket = bucket
        self._segments: dict[tuple[str, int, int], bytes] = {}  # what was read from the bucket: written once, never changed

    async def entries(self) -> list[Mapping[str, Any]]:
        """Every entry of every chain, verified and de-duplicated, ordered by time.

        ``LedgerBroken`` if a chain does not verify or its two copies differ;
        ``LedgerError`` if a file cannot be read, ``ExportError`` if the bucket cannot.
        """
        chains = await asyncio.to_thread(self._read_local)
        for chain, entries in (await self._read_remote()).items():
            chains[chain] = union_copies(chain, chains[chain], entries) if chain in chains else entries
        return merge_chains(chains[chain] for chain in sorted(chains))

    def _read_local(self) -> dict[str, list[dict[str, Any]]]:
        return read_local(self.folder)

    async def _read_remote(self) -> dict[str, list[dict[str, Any]]]:
        if self.bucket is None:
            return {}
        from gateway.audit.export import verify_segments

        read: dict[str, list[dict[str, Any]]] = {}
        for chain, spans in (await self.bucket.remote_chains()).items():
            new = [span for span in spans if (chain, *span) not in self._segments]
            for span, body in (await self.bucket.fetch_chain(chain, new)).items():
                self._segments[(chain, *span)] = body
            segments = {span: self._segments[(chain, *span)] for span in spans}
            report = verify_segments(chain, segments)
            if not report.ok:
                raise LedgerBroken(f"the off-box copy of chain `{chain}` is broken: {report.problem}", line=report.broken_at)
            read[chain] = [decode(line) for span in spans for line in segments[span].splitlines(keepends=True)]
        return read

    async def close(self) -> None:
        if self.bucket is not None:
            await self.bucket.close()


@dataclass(frozen=True)
class ChainCheck:
    """One chain as ``gateway audit verify`` found it.

    ``report`` is the local file's verification, or for a chain found only in
    the bucket, its segments' (``verify_segments``). ``remote`` compares a local
    chain with its segments in the bucket (``compare_with_remote``), when asked.
    """

    chain: str
    source: str  # "local" (a file here) or "remote" (only in the bucket)
    report: ChainReport
    path: Path | None = None
    segments: int = 0  # segments in the bucket, for a chain found only there
    remote: dict[str, Any] | None = None


async def check_chains(
    files: Mapping[str, Path], *, public_key: ed25519.Ed25519PublicKey | None, bucket: SegmentBucket | None = None, named: bool = True
) -> list[ChainCheck]:
    """Verify each chain file of ``files`` and, with ``bucket``, the chains exported there; one check per chain, by chain id.

    1. each file verifies as its chain (``named``: the chain the file is
       named after, as in a ledger folder; else the chain of its first entry),
       with the key's signatures, ending on a signed head (``verify_file``);
    2. with ``bucket``, a local chain that verifies is compared with its
       segments there (``compare_with_remote``): an entry kept off the box that
       the file lacks or contradicts is a problem;
    3. with ``bucket`` and ``named`` (a whole ledger folder), a chain found only
       in the bucket (a replica whose disk is gone) is verified from its
       segments alone (``verify_segments``).
    """
    from gateway.audit.export import compare_with_remote, verify_segments

    checks: dict[str, ChainCheck] = {}
    # (1)
    for name, path in files.items():
        expected = name if named else None
        report = await asyncio.to_thread(lambda p=path, c=expected: verify_file(p, public_key=public_key, require_signed_heads=public_key is not None, chain=c))
        chain = name if named else report.chain
        checks[chain] = ChainCheck(chain, "local", report, path)
    if bucket is None:
        return [checks[chain] for chain in sorted(checks)]
    exported = await bucket.remote_chains()
    for chain, spans in exported.items():
        local = checks.get(chain)
        if local is None and not named:
            continue  # one file was asked about: other chains are not its business
        segments = await bucket.fetch_chain(chain, spans)
        if local is None:
            # (3)
            checks[chain] = ChainCheck(chain, "remote", verify_segments(chain, segments, public_key), segments=len(segments))
        elif local.report.ok and local.path is not None:
            # (2)
            checks[chain] = replace(local, remote=compare_with_remote(await _lines(local.path), segments, chain))
    for chain, check in checks.items():
        if check.source == "local" and check.report.ok and check.remote is None and check.path is not None:
            checks[chain] = replace(check, remote=compare_with_remote(await _lines(check.path), {}, chain))  # nothing exported yet
    return [checks[chain] for chain in sorted(checks)]


async def _lines(path: Path) -> list[bytes]:
    return await asyncio.to_thread(lambda: path.read_bytes().splitlines(keepends=True))
