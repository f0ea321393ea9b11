"""Regional record stores: one port, a file, an S3 and an in-memory adapter."""

from gateway.stores.base import (
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    PreconditionFailed,
    RecordStore,
    StoredObject,
)

__all__ = [
    "ObjectInfo",
    "ObjectLocked",
    "ObjectNotFound",
    "PreconditionFailed",
    "RecordStore",
    "StoredObject",
]
