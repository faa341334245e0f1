"""Throughput of the sql connector from PostgreSQL against a raw SQLAlchemy read (a measurement).

    .venv/bin/python bench/connectors.py [--rows 100000] [--runs 3] [--batch 5000] [--url URL]

One table of purchase orders (PostgreSQL, default postgresql+psycopg2://postgres@127.0.0.1:5432/test)
is read in each run two ways: 1. raw: SQLAlchemy executes a SELECT of the same columns and fetches
every row (streamed, --batch rows at a time); 2. connector: the sql connector polls it from an empty
bookmark until dry, each poll's rows mapped to canonical records, published to the embedded broker
(acks) and the bookmark saved, through the same runner `orderwatch connectors run` uses. Prints
rows/s of both (medians of --runs) and their ratio; the target is >= 50 %. Exit status 0 either way.

Where the connector's time goes is printed too, from the same runs: its own SELECTs alone (the
keyset batches it issues, the driver's tuples, nothing mapped), then the same polls with the rows
mapped to canonical records but not published.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import _benchpath  # noqa: F401  (must come first: see bench/_benchpath.py)

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# `connectors` package: take the folder out before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import sqlalchemy as sa

from connectors.base import BookmarkStore
from connectors.mapping import FieldMapping, FieldSpec
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from connectors.sql import SqlConfig, SqlConnector
from orderwatch.broker import EmbeddedBroker
from orderwatch.config import Settings
from orderwatch.topics import ensure_topics

TARGET = 0.5
COLUMNS = ["po_number", "supplier", "buyer", "status", "order_date", "expected_date", "qty",
           "unit_price", "amount", "currency", "updated_at", "updated_by"]
MAPPING = FieldMapping((
    FieldSpec("supplier", "supplier"), FieldSpec("buyer", "buyer"), FieldSpec("status", "status"),
    FieldSpec("order_date", "order_date", "date"), FieldSpec("expected_date", "expected_date", "date"),
    FieldSpec("qty", "qty", "number"), FieldSpec("unit_price", "unit_price", "number"),
    FieldSpec("amount", "amount", "number"), FieldSpec("currency", "currency"),
))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fill(engine: sa.Engine, table: str, rows: int) -> None:
    with engine.begin() as c:
        c.exec_driver_sql(
            f"CREATE TABLE {table} (po_number text PRIMARY KEY, supplier text, buyer text, status text,"
            " order_date date, expected_date date, qty numeric(12,2), unit_price numeric(12,4),"
            " amount numeric(14,2), currency text, updated_at timestamptz, updated_by text)")
        c.exec_driver_sql(
            f"INSERT INTO {table} SELECT 'PO-2025-' || lpad(n::text, 7, '0'),"
            " (ARRAY['华东五金 Huadong Hardware','Acme Bearings','Nordic Steel AB','深圳电子'])[n %% 4 + 1],"
            " (ARRAY['li.wei','anna.schmidt','zhang.min'])[n %% 3 + 1],"
            " (ARRAY['open','confirmed','partially_received','received'])[n %% 4 + 1],"
            " date '2025-01-01' + (n %% 90), date '2025-02-01' + (n %% 120), (n %% 500) + 1,"
            " ((n %% 997) + 1) / 10.0, ((n %% 500) + 1) * ((n %% 997) + 1) / 10.0, 'CNY',"
            " timestamptz '2025-03-01 00:00+00' + n * interval '1 second', 'erp-sync'"
            f" FROM generate_series(1, {rows}) AS n")
        c.exec_driver_sql(f"CREATE INDEX ON {table} (updated_at, po_number)")
        c.exec_driver_sql(f"ANALYZE {table}")


def raw_read(url: str, table: str, batch: int) -> tuple[int, float]:
    engine = sa.create_engine(url)
    t = sa.table(table, *(sa.column(c) for c in COLUMNS))
    stmt = sa.select(*t.c).order_by(t.c.updated_at, t.c.po_number)
    started = time.perf_counter()
    count = 0
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=batch).execute(stmt).mappings():
            count += 1
    took = time.perf_counter() - started
    engine.dispose()
    return count, took


def connector_config(url: str, table: str, batch: int) -> SqlConfig:
    return SqlConfig(id="bench-erp", entity="purchase_order", url=url, key=("po_number",),
                     cursor="updated_at", table=table, batch_size=batch, actor="updated_by", mapping=MAPPING)


def fetch_only(url: str, table: str, batch: int) -> tuple[int, float]:
    """The connector's own reads (its keyset SELECTs, the driver's tuples), nothing mapped."""
    connector = SqlConnector(connector_config(url, table, batch))
    count, bookmark = 0, {}  # type: ignore[var-annotated]
    started = time.perf_counter()
    while True:
        rows = connector._read(bookmark, batch, reconcile=False).rows
        count += len(rows)
        if len(rows) < batch:
            break
        bookmark = connector._after(rows[-1])
    took = time.perf_counter() - started
    connector.close()
    return count, took


def poll_only(url: str, table: str, batch: int) -> tuple[int, float]:
    """The connector's polls (read, map, build records), nothing published."""
    connector = SqlConnector(connector_config(url, table, batch))
    count = 0
    started = time.perf_counter()
    while True:
        result = connector.poll()
        connector.commit(result)
        count += len(result.records)
        if not result.more:
            break
    took = time.perf_counter() - started
    connector.close()
    return count, took


async def connector_read(url: str, table: str, batch: int, bootstrap: str, datadir: Path) -> tuple[int, float]:
    settings = Settings(app_id=f"bench-{uuid.uuid4().hex[:6]}", topic_prefix=f"bench-{uuid.uuid4().hex[:6]}",
                        partitions=4)
    await ensure_topics(bootstrap, settings)
    cfg = connector_config(url, table, batch)
    store = BookmarkStore(datadir / uuid.uuid4().hex)
    publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    runner = ConnectorRunner([SqlConnector(cfg)], publisher, store)
    await runner.start()
    started = time.perf_counter()
    while True:
        before = publisher.published
        await runner.poll_once()
        if publisher.published == before:
            break
    took = time.perf_counter() - started
    count = publisher.published
    runner.close()
    await publisher.stop()
    return count, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000, help="rows per poll / per fetch")
    parser.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    engine = sa.create_engine(args.url)
    table = f"bench_po_{uuid.uuid4().hex[:8]}"
    log(f"filling {table} with {args.rows} rows")
    fill(engine, table, args.rows)
    raw_rates, conn_rates, fetch_rates, poll_rates = [], [], [], []
    try:
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            for run in range(1, args.runs + 1):
                n, took = raw_read(args.url, table, args.batch)
                raw_rates.append(n / took)
                log(f"run {run}: raw read {n} rows in {took:.2f}s = {n / took:,.0f} rows/s")
                n, took = asyncio.run(connector_read(args.url, table, args.batch, broker.bootstrap, Path(tmp)))
                assert n == args.rows, f"the connector published {n} of {args.rows} rows"
                conn_rates.append(n / took)
                log(f"run {run}: connector {n} rows mapped+published in {took:.2f}s = {n / took:,.0f} rows/s")
                n, took = fetch_only(args.url, table, args.batch)
                fetch_rates.append(n / took)
                n, took = poll_only(args.url, table, args.batch)
                assert n == args.rows, f"the polls mapped {n} of {args.rows} rows"
                poll_rates.append(n / took)
                log(f"run {run}: its SELECTs alone {fetch_rates[-1]:,.0f} rows/s, polls unpublished {n / took:,.0f} rows/s")
    finally:
        with engine.begin() as c:
            c.exec_driver_sql(f"DROP TABLE {table}")
        engine.dispose()
    raw, conn = median(raw_rates), median(conn_rates)
    ratio = conn / raw
    print(f"rows: {args.rows}, batch: {args.batch}, runs: {args.runs} (medians)")
    print(f"raw SQLAlchemy read:                      {raw:>10,.0f} rows/s")
    print(f"sql connector (mapped + published + bookmarked): {conn:>10,.0f} rows/s")
    print(f"ratio: {ratio:.0%} (target >= {TARGET:.0%}: {'met' if ratio >= TARGET else 'NOT met'})")
    fetch, poll = median(fetch_rates), median(poll_rates)
    print("where the connector's time goes (same runs, medians; % of the raw read's rate):")
    print(f"  its own SELECTs alone (driver tuples, nothing mapped): {fetch:>10,.0f} rows/s  {fetch / raw:4.0%}")
    print(f"  + mapped to canonical records, not published:          {poll:>10,.0f} rows/s  {poll / raw:4.0%}")
    print(f"  + published with acks and bookmarked (the connector):  {conn:>10,.0f} rows/s  {ratio:4.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
