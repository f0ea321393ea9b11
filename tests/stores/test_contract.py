"""The `RecordStore` contract: one suite, run against every adapter (see conftest)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import InvalidRequest
from gateway.stores import ObjectLocked, ObjectNotFound, PreconditionFailed, RecordStore

KEY = "subjects/aoife/records/mail-1"
META = {"residency-region": "eu-west-1", "residency-category": "content"}


async def test_a_stored_object_reads_back_with_its_metadata(store: RecordStore) -> None:
    await store.put(KEY, b"hello", META)
    obj = await store.get(KEY)
    assert (obj.key, obj.body, dict(obj.metadata), obj.legal_hold) == (KEY, b"hello", META, False)


async def test_head_reports_size_and_metadata_without_the_body(store: RecordStore) -> None:
    await store.put(KEY, b"hello", META)
    info = await store.head(KEY)
    assert (info.key, info.size, dict(info.metadata), info.legal_hold) == (KEY, 5, META, False)


async def test_an_overwrite_replaces_body_and_metadata(store: RecordStore) -> None:
    await store.put(KEY, b"old", META)
    await store.put(KEY, b"new", {"note": "second"})
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (b"new", {"note": "second"})


@pytest.mark.parametrize("operation", ["get", "head", "delete"])
async def test_a_missing_object_is_not_found(store: RecordStore, operation: str) -> None:
    with pytest.raises(ObjectNotFound):
        await getattr(store, operation)(KEY)


@pytest.mark.parametrize("operation", ["get", "head"])
async def test_a_key_that_only_begins_other_keys_is_not_found(store: RecordStore, operation: str) -> None:
    await store.put(KEY, b"hello", META)
    with pytest.raises(ObjectNotFound):
        await getattr(store, operation)(KEY.rsplit("/", 1)[0])


async def test_setting_a_hold_on_a_missing_object_is_not_found(store: RecordStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.set_legal_hold(KEY, True)


async def test_if_absent_writes_a_new_object(store: RecordStore) -> None:
    await store.put(KEY, b"first", META, if_absent=True)
    assert (await store.get(KEY)).body == b"first"


async def test_if_absent_on_an_existing_object_fails_and_keeps_the_original(store: RecordStore) -> None:
    await store.put(KEY, b"first", META)
    with pytest.raises(PreconditionFailed):
        await store.put(KEY, b"second", {}, if_absent=True)
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (b"first", META)


async def test_list_returns_the_sorted_keys_under_a_prefix_only(store: RecordStore) -> None:
    for key in ["subjects/b/records/2", "subjects/b/records/1", "subjects/b/profile", "subjects/a/records/1", "subjects/bb/records/1"]:
        await store.put(key, b"x", {})
    assert await store.list("subjects/b/records/") == ["subjects/b/records/1", "subjects/b/records/2"]
    assert await store.list("subjects/b/") == ["subjects/b/profile", "subjects/b/records/1", "subjects/b/records/2"]


async def test_list_of_everything_is_sorted(store: RecordStore) -> None:
    for key in ["b", "a/c", "a/b"]:
        await store.put(key, b"x", {})
    assert await store.list("") == ["a/b", "a/c", "b"]


async def test_list_of_an_empty_prefix_folder_is_empty(store: RecordStore) -> None:
    assert await store.list("subjects/nobody/") == []


async def test_a_deleted_object_is_gone(store: RecordStore) -> None:
    await store.put(KEY, b"x", {})
    await store.delete(KEY)
    with pytest.raises(ObjectNotFound):
        await store.get(KEY)
    assert await store.list("") == []


@pytest.mark.parametrize("key", ["../x", "", "a//b", "/a", "a/", "a/../b", ".hidden", "a b", "ä"])
async def test_an_invalid_key_is_refused_before_any_io(store: RecordStore, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x", {}),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.delete(key),
        lambda: store.set_legal_hold(key, True),
        lambda: store.get_bodies([KEY, key]),
        lambda: store.heads([KEY, key]),
    ):
        with pytest.raises(InvalidRequest) as caught:
            await call()
        assert caught.value.code == "invalid-key"


@pytest.mark.parametrize("prefix", ["subjects", "../", "a//", "/"])
async def test_an_invalid_list_prefix_is_refused(store: RecordStore, prefix: str) -> None:
    with pytest.raises(InvalidRequest):
        await store.list(prefix)


@pytest.mark.parametrize(
    "metadata",
    [{"Upper": "x"}, {"under_score": "x"}, {"-lead": "x"}, {"k": "tab\there"}, {"k": "naïve"}, {"k": "x" * 2100}, {"k": " padded "}],
    ids=["upper-case-key", "underscore-key", "leading-dash", "control-character", "non-ascii", "too-large", "surrounding-spaces"],
)
async def test_invalid_metadata_is_refused_and_nothing_is_written(store: RecordStore, metadata: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await store.put(KEY, b"x", metadata)
    assert caught.value.code == "invalid-metadata"
    with pytest.raises(ObjectNotFound):
        await store.head(KEY)


async def test_a_legal_hold_blocks_an_overwrite_and_the_object_is_intact(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", META)
    await store.set_legal_hold(KEY, True)
    with pytest.raises(ObjectLocked):
        await store.put(KEY, b"tampered", {})
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata), obj.legal_hold) == (b"evidence", META, True)


async def test_a_legal_hold_blocks_a_delete_and_the_object_is_intact(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", META)
    await store.set_legal_hold(KEY, True)
    with pytest.raises(ObjectLocked):
        await store.delete(KEY)
    assert (await store.get(KEY)).body == b"evidence"


async def test_a_legal_hold_also_blocks_an_if_absent_put(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", {})
    await store.set_legal_hold(KEY, True)
    with pytest.raises((ObjectLocked, PreconditionFailed)):
        await store.put(KEY, b"tampered", {}, if_absent=True)
    assert (await store.get(KEY)).body == b"evidence"


async def test_lifting_the_hold_allows_delete(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", {})
    await store.set_legal_hold(KEY, True)
    await store.set_legal_hold(KEY, False)
    await store.delete(KEY)
    with pytest.raises(ObjectNotFound):
        await store.head(KEY)


async def test_head_reports_the_legal_hold(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", {})
    await store.set_legal_hold(KEY, True)
    assert (await store.head(KEY)).legal_hold is True
    await store.set_legal_hold(KEY, False)
    assert (await store.head(KEY)).legal_hold is False


async def test_placing_a_hold_twice_is_harmless(store: RecordStore) -> None:
    await store.put(KEY, b"evidence", {})
    await store.set_legal_hold(KEY, True)
    await store.set_legal_hold(KEY, True)
    assert (await store.head(KEY)).legal_hold is True


async def test_a_hold_on_one_object_does_not_lock_another(store: RecordStore) -> None:
    await store.put("a/held", b"x", {})
    await store.put("a/free", b"x", {})
    await store.set_legal_hold("a/held", True)
    await store.put("a/free", b"y", {})
    await store.delete("a/free")
    assert await store.list("a/") == ["a/held"]


async def test_check_passes_on_a_healthy_store(store: RecordStore) -> None:
    await store.check()


async def test_an_empty_body_roundtrips(store: RecordStore) -> None:
    await store.put(KEY, b"", {})
    assert (await store.get(KEY)).body == b""
    assert (await store.head(KEY)).size == 0


async def test_a_binary_body_with_every_byte_value_roundtrips(store: RecordStore) -> None:
    body = bytes(range(256)) * 4 + b"\nGWOBJ1\n{}\n"
    await store.put(KEY, body, {})
    assert (await store.get(KEY)).body == body
    assert (await store.head(KEY)).size == len(body)


async def test_a_bulk_read_returns_the_bodies_in_the_order_asked(store: RecordStore) -> None:
    bodies = {"a/1": b"first", "a/2": b"", "b/1": bytes(range(256)) * 40 + b"\nGWOBJ1\n{}\n"}
    for key, body in bodies.items():
        await store.put(key, body, META)
    assert await store.get_bodies(["b/1", "a/1", "a/2", "a/1"]) == [bodies["b/1"], b"first", b"", b"first"]


async def test_a_bulk_read_of_no_keys_is_empty(store: RecordStore) -> None:
    assert await store.get_bodies([]) == []


async def test_a_bulk_read_naming_a_missing_key_is_not_found(store: RecordStore) -> None:
    await store.put(KEY, b"x", {})
    with pytest.raises(ObjectNotFound):
        await store.get_bodies([KEY, "subjects/nobody/records/none"])


async def test_a_bulk_read_of_a_key_that_is_only_a_folder_of_others_is_not_found(store: RecordStore) -> None:
    await store.put("a/b", b"x", {})
    with pytest.raises(ObjectNotFound):
        await store.get_bodies(["a"])


async def test_a_bulk_header_read_answers_what_head_says_of_each_key_in_the_order_asked(store: RecordStore) -> None:
    for key, body in {"a/1": b"first", "a/2": b"", "b/1": b"third"}.items():
        await store.put(key, body, {"n": key})
    keys = ["b/1", "a/1", "a/2", "a/1"]
    assert await store.heads(keys) == [await store.head(key) for key in keys]


async def test_a_bulk_header_read_answers_none_for_a_missing_key(store: RecordStore) -> None:
    await store.put(KEY, b"x", META)
    assert [info and info.key for info in await store.heads([KEY, "subjects/nobody/records/none"])] == [KEY, None]


async def test_a_bulk_header_read_answers_none_for_a_key_that_is_only_a_folder_of_others(store: RecordStore) -> None:
    await store.put("a/b", b"x", {})
    assert await store.heads(["a"]) == [None]


async def test_a_bulk_header_read_reports_each_keys_own_legal_hold(store: RecordStore) -> None:
    await store.put("a/held", b"x", {})
    await store.put("a/free", b"x", {})
    await store.put("b/free", b"x", {})
    await store.set_legal_hold("a/held", True)
    assert [info.legal_hold for info in await store.heads(["a/free", "a/held", "b/free"]) if info is not None] == [False, True, False]


async def test_a_bulk_header_read_of_no_keys_is_empty(store: RecordStore) -> None:
    assert await store.heads([]) == []


async def test_metadata_at_the_size_limit_roundtrips(store: RecordStore) -> None:
    metadata = {"note": "x" * (2048 - len("note") - 20), "quote": 'a "b" {c} \\d'}
    await store.put(KEY, b"x", metadata)
    assert dict((await store.get(KEY)).metadata) == metadata


async def test_the_store_reports_its_region(store: RecordStore) -> None:
    assert store.region == "eu-west-1"
    assert isinstance(store, RecordStore)


# --- versions and compare-and-swap -------------------------------------------------


async def test_a_put_returns_the_etag_that_head_and_get_report(store: RecordStore) -> None:
    etag = await store.put(KEY, b"hello", META)
    assert etag and (await store.head(KEY)).etag == etag == (await store.get(KEY)).etag


async def test_an_overwrite_with_another_body_changes_the_etag(store: RecordStore) -> None:
    first = await store.put(KEY, b"first", META)
    second = await store.put(KEY, b"second", META)
    assert first != second


async def test_a_put_matching_the_current_etag_replaces_the_object(store: RecordStore) -> None:
    etag = await store.put(KEY, b"first", META)
    new = await store.put(KEY, b"second", META, if_match=etag)
    obj = await store.get(KEY)
    assert (obj.body, obj.etag) == (b"second", new)


async def test_a_put_with_a_stale_etag_fails_and_keeps_the_current_object(store: RecordStore) -> None:
    stale = await store.put(KEY, b"first", META)
    current = await store.put(KEY, b"second", META)
    with pytest.raises(PreconditionFailed):
        await store.put(KEY, b"third", {}, if_match=stale)
    obj = await store.get(KEY)
    assert (obj.body, obj.etag) == (b"second", current)


async def test_a_put_with_an_etag_on_a_missing_object_fails_and_stores_nothing(store: RecordStore) -> None:
    etag = await store.put(KEY, b"first", META)
    await store.delete(KEY)
    with pytest.raises(PreconditionFailed):
        await store.put(KEY, b"second", META, if_match=etag)
    with pytest.raises(ObjectNotFound):
        await store.head(KEY)


async def test_only_one_of_two_puts_matching_the_same_etag_succeeds(store: RecordStore) -> None:
    etag = await store.put(KEY, b"first", META)
    results = await asyncio.gather(*(store.put(KEY, body, META, if_match=etag) for body in (b"left", b"right")), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["PreconditionFailed", "str"]
    won = next(r for r in results if isinstance(r, str))
    assert (await store.head(KEY)).etag == won


async def test_a_put_may_not_be_both_create_only_and_conditional_on_an_etag(store: RecordStore) -> None:
    with pytest.raises(InvalidRequest):
        await store.put(KEY, b"x", META, if_absent=True, if_match='"x"')


async def test_a_delete_with_a_stale_etag_fails_and_keeps_the_object(store: RecordStore) -> None:
    stale = await store.put(KEY, b"first", META)
    await store.put(KEY, b"second", META)
    with pytest.raises(PreconditionFailed):
        await store.delete(KEY, if_match=stale)
    assert (await store.get(KEY)).body == b"second"


async def test_a_delete_matching_the_current_etag_removes_the_object(store: RecordStore) -> None:
    etag = await store.put(KEY, b"first", META)
    await store.delete(KEY, if_match=etag)
    with pytest.raises(ObjectNotFound):
        await store.head(KEY)


async def test_a_conditional_delete_of_a_missing_object_is_not_found(store: RecordStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.delete(KEY, if_match='"x"')


async def test_a_legal_hold_blocks_a_put_that_matches_the_etag(store: RecordStore) -> None:
    etag = await store.put(KEY, b"first", META)
    await store.set_legal_hold(KEY, True)
    with pytest.raises(ObjectLocked):
        await store.put(KEY, b"second", META, if_match=etag)
    assert (await store.get(KEY)).body == b"first"
