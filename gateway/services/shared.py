"""Shared state: an object in a store that several gateways change, updated by compare-and-swap.

Cases, hold books, pending notices and decision documents live in the control
store, which every replica of the gateway reads and writes. None of them is
ever changed by a blind put. ``update`` reads the object and its etag, asks a
pure ``change`` what the object becomes, and writes only over the version it
read (the store's ``if_match``; ``if_absent`` when there was none; a removal is
a ``delete`` with ``if_match``). A write that finds the object changed meanwhile
(``PreconditionFailed``, or the object gone) waits a moment, reads again and asks
``change`` again, so every check ``change`` makes (this lawyer approved
already, the case was closed meanwhile) is made against what is really stored.
After ``UPDATE_TRIES`` lost races in a row the caller gets 409
``write-conflict`` and nothing was written.

``change`` is given the stored value (``None`` when there is no object), freshly
read on every try, and returns what the object becomes: a new value, ``None`` to
leave it as it is (nothing is written), or ``REMOVE`` to delete it. It may
raise to refuse; the error reaches the caller and nothing is written. It must
have no other effect, as it may run several times. A caller ledgers what
``update`` says was written, after it returns: one entry per effect, none for
a lost try.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from gateway.errors import Conflict
from gateway.stores import ObjectNotFound, PreconditionFailed, RecordStore

T = TypeVar("T")

UPDATE_TRIES = 8  # an update that loses this many races in a row is 409 write-conflict
RETRY_PAUSE = 0.005  # seconds; a lost race waits up to this, doubled after each loss, before it reads again


class Removal(Enum):
    REMOVE = "remove"


REMOVE = Removal.REMOVE  # what ``change`` returns to delete the object


class WriteConflict(Conflict):
    code = "write-conflict"


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a value is stored: its bytes and back."""

    load: Callable[[bytes], T]
    dump: Callable[[T], bytes]


JSON: Codec[Any] = Codec(json.loads, lambda value: json.dumps(value).encode())


@dataclass(frozen=True)
class Updated(Generic[T]):
    """What an update left: the value stored now (``None``: no object), and whether this update wrote it."""

    value: T | None
    written: bool


async def update(
    store: RecordStore,
    key: str,
    change: Callable[[T | None], T | Removal | None],
    *,
    codec: Codec[T] = JSON,
    tries: int = UPDATE_TRIES,
) -> Updated[T]:
    """Change the object at ``key`` as ``change`` says, over the version it was shown; see the module docstring."""
    for attempt in range(tries):
        try:
            stored = await store.get(key)
        except ObjectNotFound:
            stored = None
        current = None if stored is None else codec.load(stored.body)
        new = change(current)
        if new is None:
            return Updated(current, written=False)
        try:
            if isinstance(new, Removal):
                if stored is None:
                    return Updated(None, written=False)
                await store.delete(key, if_match=stored.etag)
                return Updated(None, written=True)
            if stored is None:
                await store.put(key, codec.dump(new), {}, if_absent=True)
            else:
                await store.put(key, codec.dump(new), {}, if_match=stored.etag)
            return Updated(new, written=True)
        except (PreconditionFailed, ObjectNotFound):  # another writer got there first: read its version, decide again
            await asyncio.sleep(random.uniform(0, RETRY_PAUSE * 2**attempt))
    raise WriteConflict(f"`{key}` was changed by other writers {tries} times while this request tried to change it; retry the request")
