"""Saying in one line why the broker cannot be reached, instead of a client traceback.

aiokafka logs every failed connection and then raises "Unable to bootstrap
from [...]"; a paused broker (it accepts connections and never answers) makes
it wait for ever. Commands wrap their broker steps in `within`, which bounds
each step and turns a failure into BrokerUnreachable: what was tried, why it
failed, what to check.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Iterator
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


async def within(step: Awaitable[T], bootstrap: str, timeout: float) -> T:
    """Await one broker step for at most `timeout` seconds; BrokerUnreachable if it fails to get an answer."""
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
