"""The subject directory: a subject is found through its home claim, in one region, and cached for a bounded time."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from gateway.errors import NotFound
from gateway.services.records import DIRECTORY_KEY, RecordService, home_claim_key
from gateway.stores import StoredObject
from gateway.stores.memory import MemoryStore
from tests.services.conftest import AOIFE, WRITER, build_service, shipped_config


class CountingStore(MemoryStore):
    """The in-memory twin of a store, counting the reads each region is asked for."""

    def __init__(self, region: str, asked: Counter[str]) -> None:
        super().__init__(region)
        self.asked = asked

    async def get(self, key: str) -> StoredObject:
        self.asked[self.region] += 1
        return await super().get(key)


@pytest.fixture
def asked() -> Counter[str]:
    return Counter()


@pytest.fixture
def service(asked: Counter[str]) -> RecordService:
    config = shipped_config()
    built, _, _ = build_service(config, {r: CountingStore(r, asked) for r in config.regions})
    return built


def other_replica(service: RecordService, *, cache_seconds: float = 10) -> RecordService:
    """Another process over the same stores, with its own cache."""
    parts = ("config", "stores", "control", "signer", "verifier", "audit", "clock")
    return RecordService(**{name: getattr(service, name) for name in parts}, cache_seconds=cache_seconds)


async def test_a_registered_subject_is_looked_up_in_its_home_region_only(service: RecordService, asked: Counter[str]) -> None:
    await service.register_subject(WRITER, AOIFE)
    asked.clear()
    await other_replica(service).subject("aoife")
    assert dict(asked) == {"eu-west-1": 1}


async def test_once_the_directory_is_complete_an_unknown_subject_asks_no_region(service: RecordService, asked: Counter[str]) -> None:
    assert await service.open_directory()
    with pytest.raises(NotFound):
        await service.subject("nobody")
    assert sum(asked.values()) == 0


async def test_before_the_directory_is_complete_an_unknown_subject_is_looked_for_in_every_region(service: RecordService, asked: Counter[str]) -> None:
    with pytest.raises(NotFound):
        await service.subject("nobody")
    assert set(asked) == set(service.stores)


async def test_a_subject_stored_before_home_claims_is_found_and_given_its_claim(service: RecordService, asked: Counter[str]) -> None:
    await service.register_subject(WRITER, AOIFE)
    await service.control.delete(home_claim_key("aoife"))
    assert (await other_replica(service).subject("aoife")).home_region == "eu-west-1"
    asked.clear()
    await other_replica(service).subject("aoife")
    assert dict(asked) == {"eu-west-1": 1}


async def test_indexing_claims_every_stored_subject_and_completes_the_directory(service: RecordService) -> None:
    await service.register_subject(WRITER, AOIFE)
    await service.register_subject(WRITER, replace(AOIFE, id="alice", home_region="us-east-1", residence="US", nationality="US", location="US"))
    for subject in ("aoife", "alice"):
        await service.control.delete(home_claim_key(subject))
    assert await service.index_subjects() == (2, 2)
    assert await service.control.list("subjects/") == [home_claim_key("alice"), home_claim_key("aoife")]
    await service.control.head(DIRECTORY_KEY)


async def test_the_directory_is_not_marked_complete_at_start_up_while_subjects_without_claims_are_stored(service: RecordService) -> None:
    await service.register_subject(WRITER, AOIFE)
    assert not await other_replica(service).open_directory()


async def test_the_directory_is_marked_complete_at_start_up_on_stores_that_hold_no_subject(service: RecordService) -> None:
    assert await service.open_directory()
    await service.control.head(DIRECTORY_KEY)


async def test_facts_changed_through_another_replica_are_used_once_the_cache_time_has_passed(service: RecordService) -> None:
    await service.register_subject(WRITER, AOIFE)
    reader = other_replica(service, cache_seconds=10)
    await reader.subject("aoife")
    await service.register_subject(WRITER, replace(AOIFE, location="FR"))
    service.clock.advance(seconds=10)  # type: ignore[attr-defined]
    assert (await reader.subject("aoife")).location == "FR"


async def test_facts_read_less_than_the_cache_time_ago_are_used_without_asking_the_region(service: RecordService, asked: Counter[str]) -> None:
    await service.register_subject(WRITER, AOIFE)
    reader = other_replica(service, cache_seconds=10)
    await reader.subject("aoife")
    asked.clear()
    service.clock.advance(seconds=9)  # type: ignore[attr-defined]
    await reader.subject("aoife")
    assert sum(asked.values()) == 0


async def test_with_no_cache_time_every_lookup_reads_the_facts(service: RecordService, asked: Counter[str]) -> None:
    await service.register_subject(WRITER, AOIFE)
    reader = other_replica(service, cache_seconds=0)
    await reader.subject("aoife")
    await reader.subject("aoife")
    assert asked["eu-west-1"] >= 2


async def test_a_fresh_read_of_the_facts_sees_a_change_made_through_another_replica_at_once(service: RecordService) -> None:
    await service.register_subject(WRITER, AOIFE)
    reader = other_replica(service, cache_seconds=3600)
    await reader.subject("aoife")
    await service.register_subject(WRITER, replace(AOIFE, location="FR"))
    assert (await reader.profile("aoife", fresh=True)).subject.location == "FR"


async def test_once_the_directory_is_known_complete_an_unknown_id_reads_only_its_claim(service: RecordService) -> None:
    assert await service.open_directory()
    heads = Counter[str]()
    control = service.control
    original = control.head

    async def counted(key: str):  # the control store twin, counting what each lookup asks it
        heads[key] += 1
        return await original(key)

    control.head = counted  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(NotFound):
            await service.subject("nobody")
    assert heads[DIRECTORY_KEY] == 0
