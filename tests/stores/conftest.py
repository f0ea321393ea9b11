"""The `store` fixture: every adapter of the `RecordStore` port, fresh per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.model import S3StoreSpec
from gateway.stores import FileStore, MemoryStore, RecordStore

REGION = "eu-west-1"
KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("file", id="file"),
    pytest.param("healing", id="healing"),  # the runtime's wrapper of every store, over the in-memory twin
    pytest.param("s3-mock", id="s3-mock", marks=pytest.mark.s3),
    pytest.param("s3-server", id="s3-server", marks=pytest.mark.s3),
]


def fresh_bucket() -> str:
    return f"records-{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordStore]:
    kind: str = request.param
    if kind == "memory":
        yield MemoryStore(REGION)
    elif kind == "file":
        file_store = FileStore(REGION, tmp_path / "store")
        await file_store.open()
        yield file_store
    elif kind == "healing":
        from gateway.stores.healing import HealingStore

        healing = HealingStore(MemoryStore(REGION), retry_seconds=5.0)
        assert await healing.prepare() is None
        yield healing
    elif kind == "s3-mock":
        from moto import mock_aws

        from gateway.stores.s3 import S3Store

        request.getfixturevalue("aws_credentials")
        with mock_aws():
            s3_store = S3Store(REGION, S3StoreSpec(bucket=fresh_bucket(), region_name=REGION, object_lock=True))
            await s3_store.ensure_bucket()
            yield s3_store
            await s3_store.close()
    else:
        from gateway.stores.s3 import S3Store

        request.getfixturevalue("aws_credentials")
        endpoint: str = request.getfixturevalue("moto_server")
        spec = S3StoreSpec(bucket=fresh_bucket(), region_name=REGION, endpoint_url=endpoint, object_lock=True)
        s3_store = S3Store(REGION, spec)
        await s3_store.ensure_bucket()
        yield s3_store
        await s3_store.close()
