"""The `orderwatch connectors` verbs: `check` a connectors file, `run` its connectors.

orderwatch/cli.py calls `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING,
           "info": logging.INFO, "debug": logging.DEBUG}


def register(subparsers: Any) -> None:
    """Add `connectors check`, `export` and `run` to an argparse subparsers object."""
    group = subparsers.add_parser(
        "connectors", help="check or run connectors (ERP databases, sheets, CDC topics, HTTP push)",
        description="Connectors read the systems a company runs and publish canonical change records.",
    )
    verbs = group.add_subparsers(dest="connectors_cmd", required=True)

    p = verbs.add_parser(
        "check", help="connect, read a few rows and show the mapped records; publish nothing",
        description="Validate a connectors file (file:line:col: problem), then connect to each "
                    "source, read a few rows from its beginning and print the canonical records, "
                    "the first problems, what the date and mapped columns showed and a summary "
                    "(rows read, records, dead letters by reason). Nothing is published, no "
                    "bookmark is written. Exit 1 if the file has mistakes, a source cannot be "
                    "read or a row read would be a dead letter.",
    )
    p.add_argument("file", help="connectors YAML file")
    p.add_argument("--rows", type=int, default=5, help="rows to read per connector (default 5)")
    p.add_argument("--only", action="append", metavar="ID", help="check this connector only (repeatable)")
    p.add_argument("--broker", help="kafka://host:port for debezium connectors without 'bootstrap'")
    p.set_defaults(func=cmd_check)

    p = verbs.add_parser(
        "export", help="read sql and spreadsheet sources from their beginning, write the records (JSON lines)",
        description="Read each sql and spreadsheet connector of the file from its beginning, as "
                    "`connectors run` first would, and write its canonical change records, one JSON "
                    "object per line: the input of `orderwatch backtest`. A connector's `ts:` column "
                    "gives each record the time its change happened. Nothing is published, no "
                    "bookmark is written; per connector a summary goes to stderr. Exit 1 if the "
                    "file has mistakes, a source cannot be read or a row is a dead letter.",
    )
    p.add_argument("file", help="connectors YAML file")
    p.add_argument("--out", required=True, metavar="FILE", help="records file to write ('-': stdout)")
    p.add_argument("--only", action="append", metavar="ID", help="export this connector only (repeatable)")
    p.set_defaults(func=cmd_export)

    p = verbs.add_parser(
        "run", help="run connectors: poll, publish to the changes topic, keep bookmarks",
        description="Run every connector of the file until SIGINT/SIGTERM. Needs a running broker "
                    "(--broker kafka://host:port; `orderwatch broker` runs the embedded one). "
                    "Bookmarks are kept in <datadir>/bookmarks; a restart resumes from them.",
    )
    p.add_argument("file", nargs="?", help="connectors YAML file (default: the 'connectors' setting)")
    p.add_argument("--config", help="YAML settings file (see README: configuration reference)")
    p.add_argument("--broker", help="kafka://host:port of the broker the workers read")
    p.add_argument("--app-id", help="topic namespace: publishes to <app-id>-changes (default orderwatch)")
    p.add_argument("--datadir", help="folder for bookmarks (default .orderwatch)")
    p.add_argument("--partitions", type=int, help="partitions if the topics must be created (default 4)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on 127.0.0.1:PORT (default: off)")
    p.set_defaults(func=cmd_run)


def cmd_check(args: argparse.Namespace) -> int:
    from connectors.check import check
    from orderwatch.topics import bootstrap_of

    bootstrap = bootstrap_of(args.broker) if args.broker else None
    return asyncio.run(check(args.file, max(1, args.rows), args.only, bootstrap))


def cmd_export(args: argparse.Namespace) -> int:
    from connectors.export import export

    if args.out == "-":
        return export(args.file, sys.stdout, args.only)
    with open(args.out, "w", encoding="utf-8") as out:
        return export(args.file, out, args.only)


def cmd_run(args: argparse.Namespace) -> int:
    from connectors.service import run
    from orderwatch.config import load_settings

    overrides = {"broker": args.broker, "app_id": args.app_id, "datadir": args.datadir,
                 "partitions": args.partitions}
    settings = load_settings(args.config, overrides)
    logging.basicConfig(level=_LEVELS.get(settings.log_level, logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = args.file or settings.connectors
    if not path:
        print("connectors run: give a connectors file (or the 'connectors' setting)", file=sys.stderr)
        return 2
    if settings.broker == "embedded":
        print("connectors run publishes to a running broker: give --broker kafka://host:port "
              "(`orderwatch broker` runs the embedded one)", file=sys.stderr)
        return 2
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")
    return run(path, settings, args.interval)
