"""Run the connectors of one connectors file against a broker until asked to stop.

Used by `orderwatch connectors run` (its own process) and usable by a worker
that runs its connectors in-process (`await serve(...)` as one of its tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from connectors.base import BookmarkStore, Connector
from connectors.config import Context, build_connector, load_config
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from connectors.webhook import WebhookConnector
from orderwatch import shutdown
from orderwatch.config import Settings
from orderwatch.epoch import BrokerWatch, EpochFile
from orderwatch.reach import CONNECT_TIMEOUT, quiet_client, until_reached, within
from orderwatch.topics import bootstrap_of, ensure_topics

log = logging.getLogger(__name__)


async def serve(config_path: str | Path, settings: Settings, stop: asyncio.Event,
                interval: float = 5.0) -> None:
    """Poll, publish and bookmark every connector of `config_path` until `stop` is set.

    Bookmarks live in `<datadir>/bookmarks`; records go to `<prefix>-changes`,
    dead letters to `<prefix>-deadletter` of `settings.broker` (a kafka:// URL).
    While the broker cannot be reached, says so in one line per attempt and tries
    again with a growing delay (see orderwatch.reach.until_reached), until it answers or `stop` is set.
    """
    configs = load_config(config_path)
    bootstrap = bootstrap_of(settings.broker)
    store = BookmarkStore(Path(settings.datadir) / "bookmarks")
    context = Context(bootstrap=bootstrap)
    connectors = [build_connector(cfg, store.load(cfg.id), context) for cfg in configs]
    watch = BrokerWatch(settings, EpochFile(store.directory / ".broker-epoch.json"), "connectors")
    started = await _connect(bootstrap, settings, stop, connectors, store, interval, watch)
    if started is None:
        for conn in connectors:
            conn.close()
        return
    publisher, runner = started
    try:
        for conn in connectors:
            if isinstance(conn, WebhookConnector):
                cfg = conn.config
                print(f"webhook {conn.id} listening on http://{cfg.host}:{conn.port}{cfg.path}", flush=True)
        print(f"connectors: {', '.join(c.id for c in connectors)} → {settings.changes_topic} "
              f"on {bootstrap}", flush=True)
        await runner.run(stop)
    finally:
        runner.close()
        await publisher.stop()


async def _connect(bootstrap: str, settings: Settings, stop: asyncio.Event, connectors: list[Connector],
                   store: BookmarkStore, interval: float,
                   watch: BrokerWatch) -> tuple[Publisher, ConnectorRunner] | None:
    """Create the topics, start the publisher and the runner; retry while the broker is unreachable.

    None if `stop` was set first."""

    async def attempt() -> tuple[Publisher, ConnectorRunner]:
        publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
        runner = ConnectorRunner(connectors, publisher, store, interval=interval, watch=watch)
        try:
            with quiet_client():
                await within(ensure_topics(bootstrap, settings), bootstrap, CONNECT_TIMEOUT)
                await within(publisher.start(), bootstrap, CONNECT_TIMEOUT)
            await within(runner.start(), bootstrap, None)  # replaying unbookmarked records takes its time
        except BaseException:  # failed or stopped: this attempt's producer must not linger
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.stop(), CONNECT_TIMEOUT)
            raise
        return publisher, runner

    return await until_reached(attempt, stop)


def run(config_path: str | Path, settings: Settings, interval: float = 5.0) -> int:
    """`serve` in its own event loop; SIGINT/SIGTERM stop it after the poll in progress, and
    end the process within shutdown.DEADLINE_SECONDS even if that poll never ends."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with shutdown.graceful(lambda signum: loop.call_soon_threadsafe(stop.set)):
            try:
                await serve(config_path, settings, stop, interval)
            finally:
                if stop.is_set():
                    shutdown.hang_if_testing("connectors")

    with shutdown.bounded():
        asyncio.run(main())
    return 0
