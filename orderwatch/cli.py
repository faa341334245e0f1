"""The `orderwatch` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from orderwatch.config import SettingError
from orderwatch.yamlsrc import SourceError


def _worker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML settings file (see README: configuration reference)")
    p.add_argument("--broker", help="'embedded' (default) or kafka://host:port")
    p.add_argument("--store", help="SQLAlchemy URL of the alert store (default: SQLite in --datadir)")
    p.add_argument("--rules", action="append", help="rule file or folder (repeatable; default: shipped rules/)")
    p.add_argument("--datadir", help="folder for local state (default: .orderwatch)")
    p.add_argument("--web-host", help="address of /metrics and the HTTP API (default 127.0.0.1)")
    p.add_argument("--web-port", type=int, help="port of /metrics and the HTTP API (default 6066)")
    p.add_argument("--partitions", type=int, help="partitions of orderwatch's topics (default 4)")
    p.add_argument("--app-id", help="consumer group and topic namespace of the workers (default orderwatch)")
    p.add_argument("--tick", type=float, dest="tick_seconds", help="seconds between deadline checks (default 5)")


def _settings(args: argparse.Namespace) -> Any:
    from orderwatch.config import load_settings

    keys = ("broker", "store", "rules", "datadir", "web_host", "web_port", "partitions", "app_id", "tick_seconds")
    return load_settings(args.config, {k: getattr(args, k, None) for k in keys})


def cmd_worker(args: argparse.Namespace) -> int:
    from orderwatch import shutdown
    from orderwatch.app import build_worker, run_worker
    from orderwatch.broker import EmbeddedBroker

    with shutdown.bounded():  # SIGINT/SIGTERM end the worker and its broker within the deadline
        settings = _settings(args)
        if settings.broker != "embedded":
            return run_worker(build_worker(settings))
        from dataclasses import replace

        with EmbeddedBroker() as broker:
            print(f"orderwatch: embedded broker on {broker.bootstrap}", flush=True)
            return run_worker(build_worker(replace(settings, broker=broker.url)))


def cmd_demo(args: argparse.Namespace) -> int:
    from orderwatch import shutdown
    from orderwatch.demo import run_demo

    with shutdown.bounded():
        return run_demo(args.exit_when_idle, args.web_port, args.datadir)


def cmd_broker(args: argparse.Namespace) -> int:
    from orderwatch import shutdown
    from orderwatch.broker import EmbeddedBroker

    # A signal raises KeyboardInterrupt in the loop below; leaving the block stops the broker.
    with shutdown.bounded(), EmbeddedBroker(port=args.port) as broker:
        print(f"embedded broker listening: {broker.url}", flush=True)
        try:
            while broker.process is not None and broker.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


PRODUCE_SLICE = 5_000  # records acknowledged per step: --timeout bounds each step


def _read_jsonl(path: str) -> tuple[list[Any], list[tuple[bytes, dict[str, Any]]]]:
    """Good change records, and every other non-blank line as its bytes (with its line number)."""
    import orjson

    from orderwatch.record import ChangeRecord, InvalidRecord, encode_record

    good: list[ChangeRecord] = []
    bad: list[tuple[bytes, dict[str, Any]]] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    doc = json.loads(line)  # NaN, integers beyond 64 bits
                record = ChangeRecord.from_dict(doc)
            except (ValueError, InvalidRecord, RecursionError, TypeError):
                record = None  # not UTF-8, not JSON, too deep, not a record: the engine says why
            if record is None or encode_record(record) is None:
                bad.append((line, {"file": path, "line": number}))
            else:
                good.append(record)
    return good, bad


def cmd_produce(args: argparse.Namespace) -> int:
    """Publish change records from a JSON-lines file; bad lines go through to be dead-lettered."""
    from connectors.publisher import Publisher
    from orderwatch.reach import BrokerUnreachable, quiet_client, within
    from orderwatch.topics import bootstrap_of, ensure_topics

    settings = _settings(args)
    if settings.broker == "embedded":
        print("orderwatch: produce publishes to a running broker: give --broker kafka://host:port "
              "(`orderwatch broker` runs the embedded one)", file=sys.stderr)
        return 2
    bootstrap = bootstrap_of(settings.broker)
    timeout = args.timeout
    good, bad = _read_jsonl(args.file)

    async def go() -> int:
        publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
        try:
            await within(ensure_topics(bootstrap, settings), bootstrap, timeout)
            await within(publisher.start(), bootstrap, timeout)
            sent_bad = await within(publisher.publish_raw(bad, "produce"), bootstrap, timeout)
            for i in range(0, len(good), PRODUCE_SLICE):
                await within(publisher.publish(good[i : i + PRODUCE_SLICE]), bootstrap, timeout)
        except BrokerUnreachable as exc:
            print(f"orderwatch: {exc}", file=sys.stderr)
            return 1
        finally:
            with contextlib.suppress(Exception):  # what could be said is said; do not hang on the way out
                await asyncio.wait_for(publisher.stop(), timeout)
        print(f"published {publisher.published} records in {publisher.messages} messages, "
              f"{sent_bad} invalid lines sent for dead-lettering"
              + (f", {publisher.dead_lettered} too large dead-lettered" if publisher.dead_lettered else ""))
        return 0

    with quiet_client():
        return asyncio.run(go())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderwatch", description="Watch orders; route exceptions to their owners.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run everything on the embedded broker with the shipped demo data")
    p.add_argument("--exit-when-idle", action="store_true", help="stop once all demo data is processed")
    p.add_argument("--web-port", type=int, help="port for /metrics (default: a free port)")
    p.add_argument("--datadir", default=".orderwatch/demo", help="scratch folder, wiped at start")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run a worker: engine + alert sink (+ embedded broker by default)")
    _worker_flags(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) in the foreground")
    p.add_argument("--port", type=int, help="listen on 127.0.0.1:PORT (default: a free port)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("produce", help="publish change records from a JSON-lines file")
    p.add_argument("file", help="one change record (JSON) per line")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the broker at each step before giving up (default 10)")
    _worker_flags(p)
    p.set_defaults(func=cmd_produce)

    from alerts.cli import register as register_alerts

    register_alerts(sub)

    from engine.cli import register as register_rules

    register_rules(sub)

    from connectors.cli import register as register_connectors

    register_connectors(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SourceError as exc:
        for pos, msg in exc.problems:
            print(f"{pos}: {msg}", file=sys.stderr)
        return 2
    except SettingError as exc:
        print(f"orderwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
