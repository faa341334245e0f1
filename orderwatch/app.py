"""Assemble one orderwatch worker: the Faust app, the engine, the alert sink, the web endpoints."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.api import attach as attach_alerts_api
from alerts.api import faust_pages_off, require_tokens
from alerts.business import register as register_order_metrics
from alerts.sink import AlertSink
from alerts.store import AlertStore
from console.web import PREFIX as CONSOLE_PREFIX
from console.web import attach as attach_console
from engine.changelog import Output
from engine.evaluator import Evaluator
from engine.fields import NONE as NO_FIELDS
from engine.fields import load_declared
from engine.pipeline import Clock, Engine
from engine.rules import load_rules
from orderwatch import consume, gcpolicy, liveness, reach, shutdown
from orderwatch.config import Settings
from orderwatch.rebuild import WorkerRebuild
from orderwatch.topics import bootstrap_of, ensure_topics, partition_for

log = logging.getLogger(__name__)

# Faust hard-codes a 1.5 s fetch long-poll; on the embedded broker a fetch can
# wait that long with data already there, which dominates change->alert latency.
FETCH_MAX_WAIT_MS = 20
_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _short_fetch_wait(self: Any, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start()
    return consumer


faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _short_fetch_wait  # type: ignore[method-assign]


@dataclass
class Worker:
    settings: Settings
    app: faust.App
    engine: Engine
    sink: AlertSink
    store: AlertStore
    output: Output
    rebuild: WorkerRebuild | None = None  # notices a broker that restarted empty (orderwatch/rebuild.py)
    liveness: liveness.Liveness | None = None  # restarts a worker Faust left not reading (orderwatch/liveness.py)


def build_worker(settings: Settings, clock: Clock = time.time) -> Worker:
    """Everything a worker runs, wired but not started; the broker URL must be a kafka:// URL."""
    (load_declared(settings.fields_file) if settings.fields_file else NO_FIELDS).install()
    rules = load_rules(list(settings.rules))
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        datadir=str(Path(settings.datadir).resolve() / "faust"),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        broker_commit_every=500,
        broker_commit_interval=1.0,
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.advertised_url,  # what the group's assignment tells the other workers
        web_in_thread=False,
        stream_wait_empty=False,
        worker_redirect_stdouts=False,
    )
    store = AlertStore(settings.store_url)
    output = Output(bootstrap_of(settings.broker), settings.deadletter_topic)
    engine = Engine(app, settings, Evaluator(rules, name=settings.app_id), output, clock)
    sink = AlertSink(app, settings, store, output=output)
    order_metrics = register_order_metrics(engine.states, clock)
    app.timer(order_metrics.max_age / 3, name="orderwatch.business_metrics")(order_metrics.refresh)
    worker = Worker(settings, app, engine, sink, store, output)
    worker.rebuild = WorkerRebuild(worker)
    worker.liveness = liveness.watch(worker)
    _add_web(worker)
    gcpolicy.install(app)

    @app.on_before_shutdown.connect  # type: ignore[misc, arg-type]
    async def _close(app: faust.App, **_: Any) -> None:
        await output.stop()

    return worker


def locate_order(worker: Worker, entity_key: str) -> tuple[Any, str | None]:
    """An order's state if this worker holds it, else the web address of the worker that does
    (the state tables are partitioned like the changes topic: Kafka's murmur2 of `entity:key`)."""
    engine, app = worker.engine, worker.app
    state = engine.get(entity_key)
    if state is not None:
        return state, None
    table = engine._table_of(entity_key)
    topic = table.changelog_topic.get_topic_name()
    partition = partition_for(entity_key, worker.settings.partitions)
    for host, topics in app.assignor.table_metadata(topic).items():
        if partition in (topics.get(topic) or ()) and str(host).rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            return None, str(host)
    return None, None


def _add_web(worker: Worker) -> None:
    """The worker's pages. Only /metrics and /healthz answer without a token; everything else (order
    states, alerts, status, Faust's own pages, anything added later) needs one (alerts/api.py), or,
    under /console, a person's session (console/web.py)."""
    app, engine = worker.app, worker.engine
    faust_pages_off(app)
    alerts_api = attach_alerts_api(app, worker.store, worker.settings, config=worker.sink.config,
                                   clock=worker.sink.clock)
    console = attach_console(app, worker.store, worker.sink.config, alerts_api, worker.sink.clock,
                             states=engine.states, locate=lambda entity_key: locate_order(worker, entity_key))
    require_tokens(app, alerts_api, open_paths=("/metrics", "/healthz"),
                   guarded_by={CONSOLE_PREFIX: console.guard})  # a session or a token

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})  # the web server answers; nothing else is told

    @app.page("/api/orders/{entity}/{key}")
    async def order_view(web: Any, request: Any, entity: str, key: str) -> Any:
        return await alerts_api.order_page(web, request, entity, key, engine.get(f"{entity}:{key}"))

    @app.page("/api/status")
    async def status_view(web: Any, request: Any) -> Any:
        active = engine._active_partitions()
        return web.json({
            "entities": engine.count(),
            "derived_entities": engine.count_derived(),
            "partitions": sorted(active) if active is not None else None,
            "records": engine.stats.records,
            "dead_lettered": engine.stats.dead,
            "alert_events": engine.stats.alert_events,
            "rule_reloads": engine.stats.reloads,
            "alerts_stored": worker.sink.stats.stored,
        })


class _Worker(faust.Worker):
    """Faust's worker with orderwatch's signal handling (orderwatch/shutdown.py) instead of its own:
    Faust's runs in the event loop and ignores further signals, so a stuck stop was for ever."""

    def install_signal_handlers(self) -> None:
        pass


def run_worker(worker: Worker, on_started: Callable[[Worker], Any] | None = None) -> int:
    """Run until SIGINT/SIGTERM (or until a task asks to stop); returns the exit code.

    A signal starts Faust's graceful stop; the process ends within shutdown.DEADLINE_SECONDS
    whatever Faust does (see orderwatch/shutdown.py)."""
    settings = worker.settings
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    consume.on_failure(request_stop)
    code = 0
    watchdog: asyncio.Task[None] | None = None
    try:
        with shutdown.bounded():
            loop.run_until_complete(reach.until_reached(lambda: _create_topics(settings)))
            if worker.rebuild is not None:
                loop.run_until_complete(worker.rebuild.at_start())
            if on_started is not None:
                worker.app.task(lambda: on_started(worker))
            watchdog = loop.create_task(worker.liveness.run()) if worker.liveness is not None else None

            @worker.app.on_before_shutdown.connect  # type: ignore[misc, arg-type]
            async def _test_hang(app: faust.App, **_: Any) -> None:
                shutdown.hang_if_testing("worker")

            faust_worker = _Worker(
                worker.app, loop=loop, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
            )
            faust_worker.spinner = None  # alerts go to stdout; no terminal control codes between them

            def stop(signum: int) -> None:
                on_signal = faust_worker._on_sigint if signum == signal.SIGINT else faust_worker._on_sigterm
                loop.call_soon_threadsafe(on_signal)

            with shutdown.graceful(stop):
                faust_worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        worker.store.close()
    # A failed batch stopped the worker: say so with the exit code (a supervisor restarts it).
    return 1 if consume.failure() is not None and code == 0 else code


async def _create_topics(settings: Settings) -> None:
    """One attempt at the worker's topics for reach.until_reached: a broker that does not answer within
    reach.CONNECT_TIMEOUT is one line and another attempt, until Ctrl-C (KeyboardInterrupt) ends it."""
    bootstrap = bootstrap_of(settings.broker)
    with reach.quiet_client():
        await reach.within(ensure_topics(bootstrap, settings), bootstrap, reach.CONNECT_TIMEOUT)


def request_stop() -> None:
    """Ask the running worker to shut down cleanly (the same path as Ctrl-C)."""
    os.kill(os.getpid(), signal.SIGTERM)
