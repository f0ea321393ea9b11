"""Build a region's store from its spec: the one place that knows every adapter.

The S3 adapter (and with it boto3, about a fifth of a second to import) is
imported only when a region's store is S3.
"""

from __future__ import annotations

from pathlib import Path

from gateway.model import FileStoreSpec, MemoryStoreSpec, Region, S3StoreSpec, StoreSpec
from gateway.stores.base import RecordStore
from gateway.stores.files import FileStore
from gateway.stores.memory import MemoryStore


def open_store(region: Region, data_dir: Path) -> RecordStore:
    """The store for ``region`` (one this gateway serves); no I/O happens until ``prepare_store`` or the first call."""
    if region.store is None:
        raise AssertionError(f"region `{region.id}` is served by peer `{region.owner}`; it has no store here")
    return open_named_store(region.id, region.store, data_dir)


def open_named_store(name: str, spec: StoreSpec, data_dir: Path) -> RecordStore:
    """The store ``spec`` describes, called ``name`` (a region's id, or ``control``); no I/O yet."""
    match spec:
        case FileStoreSpec(path=path, inline_read_bytes=inline):
            root = Path(path)
            return FileStore(name, root if root.is_absolute() else data_dir / root, inline_read_bytes=inline)
        case S3StoreSpec():
            from gateway.stores.s3 import S3Store

            return S3Store(name, spec)
        case MemoryStoreSpec():
            return MemoryStore(name)
    raise AssertionError(f"unknown store spec {spec!r}")  # config parsing admits no other kind


async def prepare_store(store: RecordStore) -> None:
    """Make the store ready at start-up: create the S3 bucket, or the file store's folders."""
    if isinstance(store, FileStore):
        await store.open()
    elif hasattr(store, "ensure_bucket"):  # S3Store
        await store.ensure_bucket()
