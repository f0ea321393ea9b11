"""Shared state updated by compare-and-swap: no writer's change is lost, and a change is decided on what is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.services.shared import REMOVE, UPDATE_TRIES, WriteConflict, update
from gateway.stores import ObjectNotFound, RecordStore
from tests.services.interleaved import Interleaved

KEY = "shared/tally"




def adding(name: str):
    """A change that adds ``name`` to the stored list of names, refusing a name already there."""

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        names = (current or {"names": []})["names"]
        if name in names:
            raise ValueError(f"{name} is there already")
        return {"names": [*names, name]}

    return change


async def stored(control: RecordStore) -> Any:
    return json.loads((await control.get(KEY)).body)


async def test_an_update_of_a_missing_object_creates_it(control: RecordStore) -> None:
    result = await update(control, KEY, adding("alice"))
    assert (result.value, result.written) == ({"names": ["alice"]}, True)
    assert await stored(control) == {"names": ["alice"]}


async def test_two_updaters_interleaved_on_one_object_both_count(control: RecordStore) -> None:
    await update(control, KEY, adding("alice"))
    racing = Interleaved(control, lambda: update(control, KEY, adding("bob")))
    result = await update(racing, KEY, adding("carol"))
    assert result.value == {"names": ["alice", "bob", "carol"]}
    assert await stored(control) == {"names": ["alice", "bob", "carol"]}


async def test_two_updaters_creating_one_object_at_once_both_count(control: RecordStore) -> None:
    racing = Interleaved(control, lambda: update(control, KEY, adding("bob")))
    await update(racing, KEY, adding("carol"))
    assert await stored(control) == {"names": ["bob", "carol"]}


async def test_a_change_that_lost_the_race_is_decided_again_on_what_the_winner_stored(control: RecordStore) -> None:
    racing = Interleaved(control, lambda: update(control, KEY, adding("bob")))
    with pytest.raises(ValueError, match="bob is there already"):
        await update(racing, KEY, adding("bob"))
    assert await stored(control) == {"names": ["bob"]}


async def test_a_change_that_returns_none_writes_nothing(control: RecordStore) -> None:
    await update(control, KEY, adding("alice"))
    racing = Interleaved(control, lambda: update(control, KEY, adding("bob")))
    result = await update(racing, KEY, lambda current: None)
    assert (result.value, result.written, racing.writes) == ({"names": ["alice"]}, False, 0)


async def test_a_removal_over_a_version_changed_meanwhile_is_decided_again(control: RecordStore) -> None:
    await update(control, KEY, adding("alice"))
    racing = Interleaved(control, lambda: update(control, KEY, adding("bob")))
    # remove the object only while alice is its one name: bob's arrival keeps it
    result = await update(racing, KEY, lambda current: REMOVE if current == {"names": ["alice"]} else None)
    assert (result.value, result.written) == ({"names": ["alice", "bob"]}, False)
    assert await stored(control) == {"names": ["alice", "bob"]}


async def test_a_removal_of_an_object_removed_meanwhile_writes_nothing(control: RecordStore) -> None:
    await update(control, KEY, adding("alice"))
    racing = Interleaved(control, lambda: control.delete(KEY))
    result = await update(racing, KEY, lambda current: REMOVE)
    assert (result.value, result.written) == (None, False)
    with pytest.raises(ObjectNotFound):
        await control.get(KEY)


async def test_an_update_that_loses_every_race_is_a_write_conflict_and_writes_nothing(control: RecordStore) -> None:
    others = iter(f"writer-{n}" for n in range(UPDATE_TRIES))
    racing = Interleaved(control, lambda: update(control, KEY, adding(next(others))), times=UPDATE_TRIES)
    with pytest.raises(WriteConflict) as refused:
        await update(racing, KEY, adding("carol"))
    assert refused.value.code == "write-conflict"
    assert "carol" not in (await stored(control))["names"]
    assert len((await stored(control))["names"]) == UPDATE_TRIES
