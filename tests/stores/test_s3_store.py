"""S3Store specifics, through boto3 against moto (in-process, and over HTTP for the failure cases)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from gateway.errors import StoreError
from gateway.model import S3StoreSpec
from gateway.s3client import DeadlineExceeded, make_client
from gateway.stores.s3 import S3Store, residency_tags

pytestmark = pytest.mark.s3

KEY = "subjects/aoife/records/mail-1"


@pytest.fixture
def mocked(aws_credentials: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def bucket_name() -> str:
    return f"records-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def plain_store(mocked: None) -> AsyncIterator[S3Store]:
    """A store on a bucket made without Object Lock."""
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1"))
    await store.ensure_bucket()
    yield store
    await store.close()


def spec_client(spec: S3StoreSpec) -> Any:
    """A client made as the store makes its own, for a test that watches its events."""
    return make_client(
        spec.region_name, spec.endpoint_url, connect_timeout=spec.connect_timeout, read_timeout=spec.read_timeout, max_attempts=spec.max_attempts
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_bucket_is_created_in_the_regions_location(mocked: None) -> None:
    spec = S3StoreSpec(bucket=bucket_name(), region_name="eu-central-1", object_lock=True)
    store = S3Store("eu-central-1", spec)
    await store.ensure_bucket()
    await store.close()
    location = boto3.client("s3", region_name="eu-central-1").get_bucket_location(Bucket=spec.bucket)
    assert location["LocationConstraint"] == "eu-central-1"


async def test_a_us_east_1_bucket_is_created_without_a_location_constraint(mocked: None) -> None:
    spec = S3StoreSpec(bucket=bucket_name(), region_name="us-east-1")
    store = S3Store("us-east-1", spec)
    await store.ensure_bucket()
    await store.close()
    location = boto3.client("s3", region_name="us-east-1").get_bucket_location(Bucket=spec.bucket)
    assert location["LocationConstraint"] is None


async def test_ensuring_an_existing_bucket_twice_is_harmless(mocked: None) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1", object_lock=True))
    await store.ensure_bucket()
    await store.ensure_bucket()
    await store.check()
    await store.close()


async def test_an_existing_bucket_without_object_lock_is_refused_when_the_spec_needs_it(plain_store: S3Store) -> None:
    strict = S3Store("eu-west-1", S3StoreSpec(bucket=plain_store.bucket, region_name="eu-west-1", object_lock=True))
    with pytest.raises(StoreError) as caught:
        await strict.ensure_bucket()
    await strict.close()
    assert caught.value.code == "object-lock-unavailable"


async def test_a_missing_bucket_is_not_created_when_the_spec_says_so(mocked: None) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1", create_bucket=False))
    with pytest.raises(StoreError) as caught:
        await store.ensure_bucket()
    await store.close()
    assert caught.value.code == "store-unavailable"


async def test_residency_metadata_appear_as_object_tags(plain_store: S3Store) -> None:
    metadata = {"residency-region": "eu-west-1", "residency-category": "content", "note": "not a residency entry"}
    await plain_store.put(KEY, b"x", metadata)
    tags = boto3.client("s3", region_name="eu-west-1").get_object_tagging(Bucket=plain_store.bucket, Key=KEY)
    assert sorted((t["Key"], t["Value"]) for t in tags["TagSet"]) == [("residency-category", "content"), ("residency-region", "eu-west-1")]


def test_only_short_tag_safe_residency_entries_are_mirrored_and_at_most_ten() -> None:
    metadata = {f"residency-{i:02d}": "v" for i in range(12)} | {
        "residency-long": "x" * 257,
        "residency-odd": "a,b",
        "other": "v",
    }
    assert residency_tags(metadata) == {f"residency-{i:02d}": "v" for i in range(10)}


async def test_tags_are_replaced_on_overwrite(plain_store: S3Store) -> None:
    await plain_store.put(KEY, b"x", {"residency-region": "eu-west-1"})
    await plain_store.put(KEY, b"y", {})
    tags = boto3.client("s3", region_name="eu-west-1").get_object_tagging(Bucket=plain_store.bucket, Key=KEY)
    assert tags["TagSet"] == []


async def test_a_legal_hold_on_a_bucket_without_object_lock_is_a_clear_store_error(plain_store: S3Store) -> None:
    await plain_store.put(KEY, b"x", {})
    with pytest.raises(StoreError) as caught:
        await plain_store.set_legal_hold(KEY, True)
    assert caught.value.code == "object-lock-unavailable"
    assert "object_lock = true" in caught.value.message


async def test_the_hold_is_an_s3_object_lock_legal_hold(mocked: None) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1", object_lock=True))
    await store.ensure_bucket()
    await store.put(KEY, b"evidence", {})
    await store.set_legal_hold(KEY, True)
    await store.close()
    hold = boto3.client("s3", region_name="eu-west-1").get_object_legal_hold(Bucket=store.bucket, Key=KEY)
    assert hold["LegalHold"]["Status"] == "ON"


async def test_a_missing_bucket_is_a_store_error_naming_region_and_operation(mocked: None) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1"))
    for call, operation in ((store.check, "check"), (lambda: store.get(KEY), "get"), (lambda: store.list(""), "list")):
        with pytest.raises(StoreError) as caught:
            await call()
        assert caught.value.code == "store-unavailable"
        assert "`eu-west-1`" in caught.value.message and operation in caught.value.message
        assert isinstance(caught.value.__cause__, ClientError)
    await store.close()


async def test_an_unreachable_endpoint_is_a_store_error(aws_credentials: None) -> None:
    spec = S3StoreSpec(bucket="records", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    store = S3Store("eu-west-1", spec)
    for call in (store.check, lambda: store.get(KEY), lambda: store.put(KEY, b"x", {})):
        with pytest.raises(StoreError) as caught:
            await call()
        assert caught.value.code == "store-unavailable"
        assert isinstance(caught.value.__cause__, BotoCoreError)
    await store.close()


async def test_an_unreachable_endpoint_is_tried_as_many_times_as_the_spec_says(aws_credentials: None) -> None:
    spec = S3StoreSpec(bucket="records", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    client = spec_client(spec)
    attempts: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: attempts.append(request.url))
    store = S3Store("eu-west-1", spec, client=client)
    with pytest.raises(StoreError):
        await store.get(KEY)
    await store.close()
    client.close()
    assert len(attempts) == spec.max_attempts == 2, attempts  # the first try included (botocore's total_max_attempts)


class FrozenEndpoint:
    """A socket on 127.0.0.1 that accepts connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="frozen-endpoint", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self._held.append(self._listener.accept()[0])

    def close(self) -> int:
        """Stop, take any connection still waiting to be accepted, close everything; the number of connections."""
        if self._stop.is_set():
            return len(self._held)
        self._stop.set()
        self._thread.join()
        self._listener.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self._held.append(self._listener.accept()[0])
        for held in self._held:
            held.close()
        self._listener.close()
        return len(self._held)


@pytest.fixture
def frozen() -> Iterator[FrozenEndpoint]:
    endpoint = FrozenEndpoint()
    yield endpoint
    endpoint.close()


async def finish(store: S3Store) -> None:
    """Close the store and wait for the calls still running in its threads (each ends at its own time-outs)."""
    await store.close()
    await asyncio.to_thread(store._executor.shutdown, True)


async def test_a_hung_endpoint_is_given_up_after_two_attempts(aws_credentials: None, frozen: FrozenEndpoint) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket="records", region_name="eu-west-1", endpoint_url=frozen.url))
    with pytest.raises(StoreError) as caught:
        await store.get(KEY)
    await finish(store)
    assert caught.value.code == "store-unavailable"
    assert frozen.close() == 2  # one connection per attempt: botocore drops a connection that timed out


async def test_a_call_that_outlives_its_deadline_is_a_store_error_saying_so(aws_credentials: None, frozen: FrozenEndpoint) -> None:
    spec = S3StoreSpec(bucket="records", region_name="eu-west-1", endpoint_url=frozen.url, read_timeout=1.0, max_attempts=1, deadline=0.2)
    store = S3Store("eu-west-1", spec)
    with pytest.raises(StoreError) as caught:
        await store.head(KEY)
    await finish(store)
    assert caught.value.code == "store-unavailable" and "no answer within 0.2s" in caught.value.message
    assert isinstance(caught.value.__cause__, DeadlineExceeded)


async def test_the_s3_client_of_a_region_waits_briefly_and_tries_twice(aws_credentials: None) -> None:
    store = S3Store("eu-west-1", S3StoreSpec(bucket="records", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{closed_port()}"))
    config = store._client_now().meta.config
    await store.close()
    assert (config.connect_timeout, config.read_timeout) == (0.5, 0.8)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}


async def test_the_s3_client_takes_the_time_outs_and_attempts_of_its_spec(aws_credentials: None) -> None:
    spec = S3StoreSpec(bucket="records", region_name="eu-west-1", connect_timeout=1.5, read_timeout=4.0, max_attempts=3)
    store = S3Store("eu-west-1", spec)
    config = store._client_now().meta.config
    await store.close()
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (1.5, 4.0, 3)


async def test_the_store_works_over_http_against_a_real_endpoint(aws_credentials: None, moto_server: str) -> None:
    spec = S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1", endpoint_url=moto_server, object_lock=True)
    store = S3Store("eu-west-1", spec)
    await store.ensure_bucket()
    await store.put(KEY, b"hello", {"residency-region": "eu-west-1"})
    await store.close()
    raw = boto3.client("s3", region_name="eu-west-1", endpoint_url=moto_server)
    answer = raw.get_object(Bucket=spec.bucket, Key=KEY)
    assert answer["Body"].read() == b"hello" and answer["Metadata"] == {"residency-region": "eu-west-1"}
    answer["Body"].close()
    raw.close()


async def test_boto3_calls_run_off_the_event_loop(mocked: None) -> None:
    client = boto3.client("s3", region_name="eu-west-1")
    threads: list[int] = []

    def record(**_: Any) -> None:
        threads.append(threading.get_ident())

    client.meta.events.register("before-call.s3", record)
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1"), client=client)
    await store.ensure_bucket()
    await store.put(KEY, b"x", {})
    await store.get(KEY)
    await asyncio.gather(*(store.head(KEY) for _ in range(8)))
    await store.close()
    client.close()
    assert len(threads) >= 11 and threading.get_ident() not in threads


async def test_a_closed_store_refuses_calls_with_a_store_error(plain_store: S3Store) -> None:
    await plain_store.close()
    with pytest.raises(StoreError, match="closed"):
        await plain_store.get(KEY)


async def test_closing_the_store_during_a_bulk_read_fails_it_with_a_store_error(mocked: None) -> None:
    client = boto3.client("s3", region_name="eu-west-1")
    store = S3Store("eu-west-1", S3StoreSpec(bucket=bucket_name(), region_name="eu-west-1"), client=client)
    await store.ensure_bucket()
    await store.put(KEY, b"x", {})
    started, released = threading.Event(), threading.Event()

    def held(**_: object) -> None:  # each GET waits until the store is closed: 32 run on the store's threads, 68 queue
        started.set()
        released.wait(10)

    client.meta.events.register("before-call.s3.GetObject", held)
    reading = asyncio.create_task(store.get_bodies([KEY] * 100))
    await asyncio.to_thread(started.wait, 10)
    await store.close()
    released.set()
    with pytest.raises(StoreError, match="closed"):
        await reading
    assert not reading.cancelled()
    # close() does not wait for GETs already running; they must end while moto still answers them,
    # or botocore retries them against the network (with random back-off) during later tests
    await asyncio.to_thread(store._executor.shutdown, True)
    client.close()
