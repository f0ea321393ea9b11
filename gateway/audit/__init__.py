"""The tamper-evident audit ledger: a pure hash chain and its durable writer."""

from __future__ import annotations

from gateway.audit.chain import (
    CHECKPOINT,
    DEFAULT_CHAIN,
    GENESIS,
    ChainReport,
    check_checkpoint,
    checkpoint_data,
    encode,
    key_id,
    make_entry,
    merge_chains,
    verify_lines,
)
from gateway.audit.ledger import (
    RECOVERED,
    FileLedger,
    MemoryLedger,
    read_entries,
    verify_file,
)

__all__ = [
    "CHECKPOINT",
    "DEFAULT_CHAIN",
    "GENESIS",
    "RECOVERED",
    "ChainReport",
    "FileLedger",
    "MemoryLedger",
    "check_checkpoint",
    "checkpoint_data",
    "encode",
    "key_id",
    "make_entry",
    "merge_chains",
    "read_entries",
    "verify_file",
    "verify_lines",
]
