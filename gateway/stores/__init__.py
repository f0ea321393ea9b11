"""Regional record stores: one port, a file, an S3 and an in-memory adapter.

``S3Store`` lives in ``gateway.stores.s3`` (not re-exported here, so importing
the package does not import boto3).
"""

from gateway.stores.base import (
    ObjectCorrupt,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    PreconditionFailed,
    RecordStore,
    StoredObject,
    StoreGone,
)
from gateway.stores.files import FileStore
from gateway.stores.memory import MemoryStore

__all__ = [
    "FileStore",
    "MemoryStore",
    "ObjectCorrupt",
    "ObjectInfo",
    "ObjectLocked",
    "ObjectNotFound",
    "PreconditionFailed",
    "RecordStore",
    "StoreGone",
    "StoredObject",
]
