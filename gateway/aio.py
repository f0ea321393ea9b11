"""Small asyncio helpers the services and stores share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def all_or_first_error(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``coroutines`` concurrently and return their results in order.

    The first to fail cancels the others, which are waited for, and its
    exception is raised as it is (not as an ``ExceptionGroup``); a cancelled
    caller cancels them all. Unlike ``asyncio.gather``, nothing is left
    running after a failure.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0]  # noqa: B904 - the group only wraps it; its traceback is kept
    return [task.result() for task in tasks]
