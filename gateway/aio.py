"""Small asyncio helpers the services and stores share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from gateway.errors import InvalidRequest

T = TypeVar("T")

LOOPS = ("auto", "uvloop", "asyncio")  # the choices of `gateway serve --loop`


def event_loop(name: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop ``serve`` runs on, by ``name`` (one of ``LOOPS``): uvloop (asked for, or ``auto`` and
    installed), else asyncio's own; the loop's name and a factory of new loops.

    uvloop runs the same asyncio code with its loop, transports and thread
    wake-ups in C; ``--loop asyncio`` is there to compare the two and to rule
    the loop out when troubleshooting.
    """
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise InvalidRequest("`--loop uvloop`: uvloop is not installed", code="invalid-arguments") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


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
