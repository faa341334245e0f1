"""Saying in one line why the broker cannot be reached, instead of a client traceback.

aiokafka logs every failed connection and then raises "Unable to bootstrap
from [...]"; a paused broker (it accepts connections and never answers) makes
it wait for ever. Commands wrap their broker steps in `within`, which bounds
each step and turns a failure into BrokerUnreachable: what was tried, why it
failed, what to check. `produce` gives up with that line; long-running commands
(worker, connectors run) try again with `until_reached`, one line per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

T = TypeVar("T")

CHECK = "is it running? check --broker / ORDERWATCH_BROKER"
CONNECT_TIMEOUT = 10.0  # seconds one attempt of a long-running command to reach the broker may take
MAX_RETRY_DELAY = 30.0  # seconds between attempts, at most

# What a broker that is down, paused or unreachable makes aiokafka raise.
UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError,
               TimeoutError, ConnectionError)


class BrokerUnreachable(Exception):
    """The broker did not answer; str() is the one line to show."""

    def __init__(self, bootstrap: str, cause: str) -> None:
        super().__init__(f"cannot reach the broker at {bootstrap} ({cause}); {CHECK}")
        self.bootstrap = bootstrap
        self.cause = cause


async def cause(bootstrap: str, timeout: float = 3.0) -> str:
    """Why the broker's first address takes no Kafka request, in a few words."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host or "localhost", int(port)), timeout)
    except ValueError:
        return "not host:port"
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer to a connection in {timeout:g}s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    writer.close()
    return "it accepts connections but answers no Kafka request: paused, overloaded or not a Kafka broker"


async def within(step: Awaitable[T], bootstrap: str, timeout: float | None) -> T:
    """Await one broker step for at most `timeout` seconds (None: no bound); BrokerUnreachable if it
    fails to get an answer."""
    try:
        return await asyncio.wait_for(step, timeout)
    except UNREACHABLE as exc:
        raise BrokerUnreachable(bootstrap, await cause(bootstrap)) from exc


@contextmanager
def quiet_client() -> Iterator[None]:
    """Hold back aiokafka's own per-attempt error logs (the caller says it once, better)."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def until_reached(attempt: Callable[[], Awaitable[T]], stop: asyncio.Event | None = None) -> T | None:
    """`await attempt()` until it does not raise BrokerUnreachable, saying so in one line per failed
    attempt and waiting 1, 2, 4 … up to MAX_RETRY_DELAY seconds in between.

    None once `stop` is set (an attempt in progress is cancelled); without `stop` it tries until it
    succeeds or is cancelled (a worker's Ctrl-C)."""
    stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
    task: asyncio.Future[T] | None = None
    delay = 1.0
    try:
        while not stopped.done():
            task = asyncio.ensure_future(attempt())
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                break
            try:
                return task.result()
            except BrokerUnreachable as exc:
                print(f"orderwatch: {exc}; retrying in {delay:g}s", file=sys.stderr, flush=True)
            await asyncio.wait({stopped}, timeout=delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
        return None
    finally:
        stopped.cancel()
        if task is not None:
            task.cancel()  # we were cancelled while it ran: it must not go on alone
