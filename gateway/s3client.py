"""boto3 S3 clients, made one way, and botocore's errors, read one way.

The S3 record store (``gateway.stores.s3``) and the ledger's off-box copy
(``gateway.audit.export``) both talk to S3 through ``make_client`` and run
their calls through ``call_off_loop``, which lets the project's own errors
through and hands every botocore error (and an executor shut down meanwhile)
to the caller's ``translate``, whose error is raised from it: nothing from
botocore leaks up unchained.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from gateway.errors import GatewayError

T = TypeVar("T")


def client_config(*, connect_timeout: float, read_timeout: float, max_attempts: int, max_pool_connections: int | None = None) -> Config:
    """botocore's settings for one client: each attempt waits at most ``connect_timeout`` seconds to
    connect and ``read_timeout`` seconds for each read of the answer, and a call makes at most
    ``max_attempts`` attempts, the first included.

    botocore's ``retries`` take two counts: ``max_attempts`` counts the retries after the first try
    (2 means three attempts), ``total_max_attempts`` counts every attempt, the first included; we
    pass the latter, so the number means what it says. ``standard`` mode retries connection errors,
    time-outs, 5xx answers and throttling, and waits ``rand(0, 1) * 0.05 * 2**i`` seconds before
    retry ``i + 1`` (1 s instead of 0.05 s after throttling), up to 20 s. botocore has no deadline for
    a whole call: ``call_off_loop`` keeps that one.
    """
    pool = {} if max_pool_connections is None else {"max_pool_connections": max_pool_connections}
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        **pool,
    )


def make_client(
    region_name: str,
    endpoint_url: str | None,
    *,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    max_pool_connections: int | None = None,
) -> Any:
    """An S3 client with ``client_config``, from the process's one boto3 session."""
    config = client_config(connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts, max_pool_connections=max_pool_connections)
    if endpoint_url:  # S3-compatible endpoints (and IP addresses) want path-style URLs
        config = config.merge(Config(s3={"addressing_style": "path"}))
    with _SESSION_LOCK:  # sessions are not thread-safe; making one per client costs ~130 ms
        return _session().client("s3", region_name=region_name, endpoint_url=endpoint_url, config=config)


class DeadlineExceeded(BotoCoreError):  # type: ignore[misc]
    """A call outlived its deadline: no answer in time, whatever botocore was still waiting for."""

    fmt = "no answer within {seconds:g}s (the call's deadline)"


async def call_off_loop(executor: Executor, work: Callable[[], T], translate: Callable[[Exception], GatewayError], *, deadline: float | None = None) -> T:
    """``work()`` on ``executor``; a botocore error, or a ``RuntimeError`` (the executor was shut down
    meanwhile), becomes ``translate(exc)``, raised from it.

    With ``deadline`` (seconds, waiting for a thread included) the caller gets ``translate`` of
    ``DeadlineExceeded`` once it passes. A call still queued then never starts; one already running
    cannot be stopped from outside and ends in its thread at its own time-outs: against an endpoint
    that does not answer, after ``max_attempts`` x (``connect_timeout`` + ``read_timeout``) and the
    back-off between attempts; an answer that keeps trickling in can hold the thread longer (each
    read has its own time-out), but not the caller.
    """
    future: asyncio.Future[T] | None = None
    try:
        future = asyncio.get_running_loop().run_in_executor(executor, work)
        if deadline is None:
            return await future
        done, _ = await asyncio.wait((future,), timeout=deadline)
        if not done:
            future.cancel()
            late = DeadlineExceeded(seconds=deadline)
            raise translate(late) from late
        return future.result()
    except GatewayError:
        raise
    except asyncio.CancelledError:
        if future is not None:
            future.cancel()  # our caller gave up: a call still queued need not run
        raise
    except (ClientError, BotoCoreError, RuntimeError) as exc:
        raise translate(exc) from exc


def error_code(exc: BaseException | None) -> str:
    """S3's error code (``NoSuchKey``), or ``""`` when there was no answer."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException | None) -> int | None:
    """The answer's HTTP status, or None when there was no answer."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def describe(exc: BaseException) -> str:
    """What went wrong, for a message: ``Code: Message`` of an answer, else botocore's own words."""
    if not isinstance(exc, ClientError):
        return str(exc)
    error = exc.response.get("Error", {})
    return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ") or "unexpected answer"


_SESSION_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    """One boto3 session for every client of the process (call with ``_SESSION_LOCK`` held)."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]
