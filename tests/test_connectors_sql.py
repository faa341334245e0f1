"""The SQL connector against real databases: SQLite here, PostgreSQL and MariaDB servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from connectors.base import BookmarkStore
from connectors.lines import LinesConfig
from connectors.mapping import FieldMapping, FieldSpec, MappingError
from connectors.sql import SqlConfig, SqlConnector, begin_read_only
from tests.dbservers import server_url, unique_name

T0 = datetime(2025, 3, 5, 10, 0, 0, 250000)
MAPPING = FieldMapping(
    (
        FieldSpec("supplier", "supplier_name"),
        FieldSpec("expected_date", "expected_date", "date"),
        FieldSpec("ordered_on", "ordered_on", "date"),
        FieldSpec("amount", "amount", "number"),
    )
)
SERVERS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("mariadb", marks=pytest.mark.integration),
]


@dataclass
class Db:
    url: str
    engine: sa.Engine
    orders: sa.Table
    lines: sa.Table

    def insert(self, table: sa.Table, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert(), list(rows))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(self.orders)).scalar_one()


@pytest.fixture(params=SERVERS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    server = request.param
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}" if server == "sqlite" else server_url(server)
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    # MariaDB's DATETIME drops fractions unless asked to keep them.
    stamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    orders = sa.Table(
        unique_name("ow_po"),
        meta,
        sa.Column("po_number", sa.String(32), primary_key=True),
        sa.Column("supplier_name", sa.String(100)),
        sa.Column("expected_date", sa.String(20)),  # ERPs keep dates as text more often than not
        sa.Column("ordered_on", sa.Date),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("updated_at", stamp),
        sa.Column("updated_by", sa.String(50)),
    )
    lines = sa.Table(
        unique_name("ow_line"),
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("po_number", sa.String(32)),
        sa.Column("line_no", sa.Integer),
        sa.Column("sku", sa.String(32)),
        sa.Column("qty", sa.Integer),
    )
    meta.create_all(engine)
    try:
        yield Db(url, engine, orders, lines)
    finally:
        meta.drop_all(engine)
        engine.dispose()


def order(po: str, at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "po_number": po,
        "supplier_name": f"supplier of {po}",
        "expected_date": "2025/4/1",
        "ordered_on": date(2025, 3, 1),
        "amount": Decimal("1234.50"),
        "updated_at": at,
        "updated_by": "alice",
    }
    return {**row, **values}


def orders_config(db: Db, **options: Any) -> SqlConfig:
    return SqlConfig(
        id="demo-erp",
        entity="purchase_order",
        url=db.url,
        key=("po_number",),
        cursor="updated_at",
        mapping=MAPPING,
        table=db.orders.name,
        actor="updated_by",
        **options,
    )


def test_a_row_becomes_a_change_record(db: Db) -> None:
    db.insert(db.orders, order("PO-1", T0))
    conn = SqlConnector(orders_config(db))
    result = conn.poll()
    conn.close()
    assert result.dead == [] and result.rows_read == 1
    [record] = result.records
    assert (record.source, record.entity, record.key, record.op) == (
        "demo-erp",
        "purchase_order",
        "PO-1",
        "upsert",
    )
    assert record.fields == {
        "supplier": "supplier of PO-1",
        "expected_date": "2025-04-01",
        "ordered_on": "2025-03-01",
        "amount": 1234.5,
    }
    assert record.ts == T0.replace(tzinfo=UTC)  # no tz in the column: taken as UTC
    assert record.seq == "2025-03-05T10:00:00.250000+00:00"
    assert record.actor == "alice"


def test_cursor_ties_are_neither_lost_nor_repeated_across_restarts(db: Db, tmp_path: Path) -> None:
    t1, t2, t3 = T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    db.insert(
        db.orders,
        *(order(f"PO-{n}", t1) for n in (5, 3, 1, 4, 2)),
        order("PO-7", t2),
        order("PO-6", t2),
    )
    store = BookmarkStore(tmp_path / "bookmarks")
    cfg = orders_config(db, batch_size=2)

    def drain() -> list[str]:
        """Poll until dry, each poll by a fresh connector resumed from the stored bookmark."""
        keys: list[str] = []
        while True:
            conn = SqlConnector(cfg, store.load(cfg.id))
            result = conn.poll()
            conn.close()
            assert len(result.records) <= 2
            if not result.records:
                assert result.bookmark is None
                return keys
            keys += [r.key for r in result.records]
            conn.commit(result)
            store.save(conn.id, conn.bookmark)

    assert drain() == ["PO-1", "PO-2", "PO-3", "PO-4", "PO-5", "PO-6", "PO-7"]
    # A late row on the last cursor value, after the last key; an edit moves PO-1 forward.
    db.insert(db.orders, order("PO-8", t2))
    with db.engine.begin() as c:
        c.execute(
            db.orders.update()
            .where(db.orders.c.po_number == "PO-1")
            .values(updated_at=t3, supplier_name="renamed")
        )
    assert drain() == ["PO-8", "PO-1"]
    assert drain() == []


def test_a_value_that_does_not_convert_is_a_dead_letter(db: Db) -> None:
    db.insert(
        db.orders,
        order("PO-1", T0),
        order("PO-2", T0, expected_date="soon"),
        order("PO-3", T0 + timedelta(seconds=1)),
    )
    conn = SqlConnector(orders_config(db))
    result = conn.poll()
    assert [r.key for r in result.records] == ["PO-1", "PO-3"]
    [dead] = result.dead
    assert dead.where == {
        "table": db.orders.name,
        "key": "PO-2",
        "column": "expected_date",
        "text": "soon",
    }
    assert dead.field == "expected_date"
    assert dead.payload["po_number"] == "PO-2"
    conn.commit(result)
    assert conn.poll().rows_read == 0  # the bad row is reported once, not re-read forever
    conn.close()


def test_a_query_with_an_integer_cursor_and_a_composite_key(db: Db) -> None:
    db.insert(
        db.lines,
        *(
            {"po_number": f"PO-{p}", "line_no": n, "sku": sku, "qty": n * 10}
            for p, n, sku in [(1, 1, "A"), (1, 2, "X:1"), (2, 1, "B"), (1, 3, "C")]
        ),
    )
    # The colon inside the SQL literal must not be taken for a bind parameter.
    query = f"SELECT id, po_number, line_no, sku, qty FROM {db.lines.name} WHERE sku <> 'X:1'"
    cfg = SqlConfig(
        id="erp-lines",
        entity="purchase_order",
        url=db.url,
        key=("po_number", "line_no"),
        cursor="id",
        query=query,
        batch_size=2,
        mapping=FieldMapping((FieldSpec("sku", "sku"), FieldSpec("qty", "qty", "integer"))),
    )
    conn = SqlConnector(cfg)
    before = datetime.now(UTC)
    first = conn.poll()
    conn.commit(first)
    second = conn.poll()
    conn.commit(second)
    conn.close()
    records = first.records + second.records
    assert [(r.key, r.seq, r.fields["qty"]) for r in records] == [
        ("PO-1:1", 1, 10),
        ("PO-2:1", 3, 10),
        ("PO-1:3", 4, 30),
    ]
    assert all(r.ts >= before for r in records)  # an id is no time: ts = when it was read
    assert conn.bookmark == {"cursor": 4, "key": ["PO-1", 3]}


def test_the_connector_cannot_write(db: Db) -> None:
    db.insert(db.orders, order("PO-1", T0))
    conn = SqlConnector(orders_config(db))
    for _ in range(2):  # a fresh connection, then one reused from the pool
        assert [r.key for r in conn.poll().records] == ["PO-1"]
        with conn.engine.connect() as c:
            begin_read_only(c)
            with pytest.raises(sa.exc.DBAPIError, match="(?i)read.only|readonly"):
                c.execute(db.orders.insert(), [order("PO-2", T0)])
            c.rollback()
    conn.close()
    assert db.count() == 1


def test_a_missing_sqlite_file_is_an_error_not_a_new_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    cfg = SqlConfig(
        id="x",
        entity="purchase_order",
        url=f"sqlite:///{missing}",
        key=("po_number",),
        cursor="updated_at",
        mapping=MAPPING,
        table="po",
    )
    conn = SqlConnector(cfg)
    with pytest.raises(sa.exc.OperationalError, match="unable to open database file"):
        conn.poll()
    assert not missing.exists()


@pytest.mark.integration
def test_postgresql_timestamptz_keeps_its_instant_across_a_resume() -> None:
    url = server_url("postgresql")
    engine = sa.create_engine(url)
    table = sa.Table(
        unique_name("ow_tz"),
        sa.MetaData(),
        sa.Column("po_number", sa.String(32), primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    table.create(engine)
    try:
        cst = timezone(timedelta(hours=8))
        at = datetime(2025, 3, 5, 18, 0, tzinfo=cst)
        with engine.begin() as c:
            c.execute(table.insert(), [{"po_number": k, "updated_at": at} for k in ("A", "B")])
        cfg = SqlConfig(
            id="pg",
            entity="purchase_order",
            url=url,
            key=("po_number",),
            cursor="updated_at",
            mapping=FieldMapping(()),
            table=table.name,
            batch_size=1,
        )
        first = SqlConnector(cfg)
        result = first.poll()
        first.close()
        assert [(r.key, r.ts, r.seq) for r in result.records] == [
            ("A", at, "2025-03-05T10:00:00.000000+00:00")
        ]
        resumed = SqlConnector(cfg, result.bookmark)
        assert [r.key for r in resumed.poll().records] == ["B"]
        resumed.close()
    finally:
        table.drop(engine)
        engine.dispose()


@pytest.mark.integration
def test_postgresql_numeric_amounts_read_the_same_in_every_batch() -> None:
    """After the first batch, NUMERIC columns mapped as `number` are read as double precision
    (no Decimal per cell): they must give what the mapping makes of the Decimal."""
    url = server_url("postgresql")
    engine = sa.create_engine(url)
    table = sa.Table(
        unique_name("ow_num"),
        sa.MetaData(),
        sa.Column("po_number", sa.String(32), primary_key=True),
        sa.Column("amount", sa.Numeric(30, 4)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    table.create(engine)
    amounts = [Decimal("1234.5000"), Decimal("200.0000"), Decimal("0.1000"), Decimal("-0.0000"),
               Decimal("12345678901234567890.1200"), Decimal("9007199254740993.0000"), Decimal("NaN")]
    expected: list[Any] = [1234.5, 200, 0.1, 0, 1.2345678901234567e19, 9007199254740992.0, None]
    try:
        at = datetime(2025, 3, 5, tzinfo=UTC)
        with engine.begin() as c:
            c.execute(table.insert(), [
                {"po_number": f"PO-{i}-{j}", "amount": a, "updated_at": at + timedelta(minutes=2 * i + j)}
                for i, a in enumerate(amounts) for j in range(2)
            ])
        cfg = SqlConfig(id="pg", entity="purchase_order", url=url, key=("po_number",), cursor="updated_at",
                        mapping=FieldMapping((FieldSpec("amount", "amount", "number"),)), table=table.name,
                        batch_size=1)
        conn = SqlConnector(cfg)
        got: dict[str, Any] = {}
        reasons = []
        for _ in range(2 * len(amounts) + 1):
            result = conn.poll()
            got.update({r.key: r.fields["amount"] for r in result.records})
            reasons += [d.reason for d in result.dead]
            conn.commit(result)
        assert "DOUBLE PRECISION" in str(conn.statement({}))  # the later batches took that path
        conn.close()
        as_decimal = cfg.mapping.apply
        for i, value in enumerate(expected[:-1]):
            assert repr(as_decimal({"amount": amounts[i]})["amount"]) == repr(value)
            for j in range(2):
                assert repr(got[f"PO-{i}-{j}"]) == repr(value), (i, j, got[f"PO-{i}-{j}"])
        assert len(reasons) == 2 and all("not a finite number" in r for r in reasons), reasons
    finally:
        table.drop(engine)
        engine.dispose()


def test_a_batch_of_driver_rows_maps_as_each_row_alone_would() -> None:
    """The sql connector maps a batch of driver tuples a column at a time; every row must come
    out as FieldMapping.apply makes it, a bad row as the error of its first bad field."""
    mapping = FieldMapping((
        FieldSpec("supplier", "supplier_name"), FieldSpec("due", "due", "date"),
        FieldSpec("qty", "qty", "integer"), FieldSpec("amount", "amount", "number"),
        FieldSpec("paid", "paid", "bool"),
    ))
    columns = ["supplier_name", "due", "qty", "amount", "paid"]
    rows = [
        ("  Acme  ", date(2025, 3, 5), 10, Decimal("12.50"), True),
        ("", "2025年3月5日", "12", 3.0, "是"),  # text everywhere: the converters' own paths
        (None, datetime(2025, 3, 5, 0, 0), None, Decimal("1E+3"), None),
        ("Nordic", "someday", "x", float("nan"), "perhaps"),  # several bad cells: the first reports
        ("Big", 45721, 7, 2**60, 0),  # an Excel serial day; an integer past 2**53
        ("Last", date(2025, 1, 1), 1, float("inf"), False),
    ]
    read = mapping.reader(columns)(rows)
    assert len(read) == len(rows)
    for row, got in zip(rows, read, strict=True):
        try:
            expected: Any = mapping.apply(dict(zip(columns, row, strict=True)))
        except MappingError as exc:
            assert isinstance(got, MappingError), (row, got)
            assert (got.field, got.text, str(got)) == (exc.field, exc.text, str(exc))
            continue
        assert repr(got) == repr(expected), row
    assert [type(r).__name__ for r in read] == ["dict", "dict", "dict", "MappingError", "dict", "MappingError"]
    assert read[0] == {"supplier": "Acme", "due": "2025-03-05", "qty": 10, "amount": 12.5, "paid": True}
    assert read[3].field == "due"  # type: ignore[union-attr]


def test_a_poll_that_was_not_published_is_read_again(db: Db) -> None:
    """A full batch starts reading the next one ahead; if the batch is not published (the
    runner does not commit it), the next poll must read that batch again, not skip to the one
    read ahead."""
    db.insert(db.orders, *(order(f"PO-{i}", T0 + timedelta(seconds=i)) for i in range(5)))
    conn = SqlConnector(orders_config(db, batch_size=2))
    first = conn.poll()
    again = conn.poll()  # not committed: the same bookmark
    assert [r.key for r in again.records] == [r.key for r in first.records] == ["PO-0", "PO-1"]
    conn.commit(again)
    keys = []
    while (result := conn.poll()).records:
        keys += [r.key for r in result.records]
        conn.commit(result)
    conn.close()
    assert keys == ["PO-2", "PO-3", "PO-4"]


def test_a_query_pasted_from_a_sql_console_reads_as_written(db: Db) -> None:
    """A trailing ';' and a trailing -- comment are how people write queries; the query is a
    subquery here, where neither is allowed as is."""
    db.insert(db.orders, order("PO-1", T0), order("PO-2", T0 + timedelta(seconds=1)))
    db.insert(db.lines, {"po_number": "PO-1", "line_no": 1, "sku": "A", "qty": 2})
    queries = [
        f"SELECT * FROM {db.orders.name} WHERE supplier_name <> '10:30';",
        f"SELECT * FROM {db.orders.name}\n-- every order\n",
        f"SELECT * FROM {db.orders.name} -- every order",
        f"SELECT * FROM {db.orders.name} ;  \n",
    ]
    lines = LinesConfig(parent="po_number", match="po_number", order_by=("line_no",),
                        query=f"SELECT * FROM {db.lines.name}; -- the lines\n",
                        mapping=FieldMapping((FieldSpec("sku", "sku"),)))
    for query in queries:
        cfg = orders_config(db, lines=lines)
        cfg = SqlConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "table": None, "query": query})
        conn = SqlConnector(cfg)
        result = conn.poll()
        conn.close()
        assert [(r.key, r.fields["lines"]) for r in result.records] == [
            ("PO-1", [{"sku": "A"}]), ("PO-2", [])], query


@pytest.mark.integration
def test_a_postgresql_host_that_does_not_answer_fails_the_poll_instead_of_hanging() -> None:
    """A host that takes the connection but never answers (a hung server, a pooler without a
    backend) is a failure to back off from, not a poll that holds up every other connector."""
    server_url("postgresql")  # the driver is there
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever says a word
    try:
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{silent.getsockname()[1]}/test"
        cfg = SqlConfig(id="pg", entity="purchase_order", url=url, key=("po_number",), cursor="updated_at",
                        mapping=FieldMapping(()), table="po")
        conn = SqlConnector(cfg)
        pool = ThreadPoolExecutor(max_workers=1)
        started = time.monotonic()
        poll = pool.submit(conn.poll)
        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            poll.result(timeout=60)
        assert time.monotonic() - started < 30
        pool.shutdown(wait=False, cancel_futures=True)
        conn.close()
    finally:
        silent.close()
