"""all_or_first_error: results in order, or the first failure with nothing left running."""

from __future__ import annotations

import asyncio

import pytest

from gateway.aio import all_or_first_error


async def test_results_come_back_in_the_order_asked() -> None:
    async def later(value: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return value

    assert await all_or_first_error([later(1, 0.02), later(2, 0), later(3, 0.01)]) == [1, 2, 3]


async def test_the_first_failure_is_raised_as_itself_and_the_others_are_cancelled() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(10)
        finished.append("slow")

    async def failing() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await asyncio.wait_for(all_or_first_error([slow(), failing()]), timeout=5)
    await asyncio.sleep(0)
    assert finished == []


async def test_nothing_to_run_is_an_empty_list() -> None:
    assert await all_or_first_error([]) == []
