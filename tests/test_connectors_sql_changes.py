# ruff: noqa: F811 - `db` is a fixture imported from test_connectors_sql
"""The sql connector while the ERP keeps writing: late commits, deletes, lines.

Against SQLite here and the real PostgreSQL and MariaDB servers (the `db`
fixture of test_connectors_sql): rows are inserted, updated and deleted
between polls, and a transaction commits a row whose `updated_at` is older
than rows already read — the case the lookback exists for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from connectors.base import PollResult
from connectors.lines import LinesConfig
from connectors.mapping import FieldMapping, FieldSpec
from connectors.sql import SqlConfig, SqlConnector
from tests.test_connectors_sql import T0, Db, db, order, orders_config  # noqa: F401 (fixture)


def poll(conn: SqlConnector) -> PollResult:
    result = conn.poll()
    conn.commit(result)
    return result


def drain(conn: SqlConnector) -> PollResult:
    """Poll while the connector says there is more; all records of those polls."""
    out = PollResult()
    while True:
        result = poll(conn)
        out.records += result.records
        out.rows_read += result.rows_read
        if not result.more:
            return out


def keys(result: PollResult) -> list[tuple[str, str]]:
    return [(r.key, r.op) for r in result.records]


@pytest.mark.parametrize(
    "db", [pytest.param("postgresql", marks=pytest.mark.integration),
           pytest.param("mariadb", marks=pytest.mark.integration)], indirect=True,
)
def test_a_row_committed_late_with_an_older_cursor_arrives_once(db: Db) -> None:
    watched = SqlConnector(orders_config(db, lookback=timedelta(minutes=5), reconcile=0.0))
    naive = SqlConnector(orders_config(db))  # no lookback: the control
    db.insert(db.orders, order("PO-1", T0))
    assert keys(poll(watched)) == keys(poll(naive)) == [("PO-1", "upsert")]

    # A long transaction stamps its row at its start (T0+1s) but commits last.
    late = db.engine.connect()
    tx = late.begin()
    late.execute(db.orders.insert(), [order("PO-LATE", T0 + timedelta(seconds=1))])
    db.insert(db.orders, order("PO-2", T0 + timedelta(seconds=2)))
    with db.engine.begin() as c:
        c.execute(db.orders.update().where(db.orders.c.po_number == "PO-1")
                  .values(updated_at=T0 + timedelta(seconds=3), supplier_name="renamed"))
    first = poll(watched)
    assert keys(first) == [("PO-2", "upsert"), ("PO-1", "upsert")]
    assert first.records[1].fields["supplier"] == "renamed"
    assert keys(poll(naive)) == keys(first)
    tx.commit()
    late.close()

    late_result = poll(watched)
    assert keys(late_result) == [("PO-LATE", "upsert")]
    assert late_result.records[0].seq == (T0 + timedelta(seconds=1)).replace(tzinfo=UTC).isoformat()
    assert keys(poll(naive)) == []  # without the lookback it is lost for good
    assert poll(watched).records == []  # the window is read again but nothing twice

    # A delete is found by reconciling the keys; its seq is newer than every row's.
    with db.engine.begin() as c:
        c.execute(db.orders.delete().where(db.orders.c.po_number == "PO-2"))
    gone = poll(watched)
    assert keys(gone) == [("PO-2", "delete")]
    assert str(gone.records[0].seq) > str(first.records[0].seq)
    assert poll(watched).records == []
    assert sorted(watched.bookmark["known"]) == ["PO-1", "PO-LATE"]
    watched.close()
    naive.close()


def test_the_lookback_window_survives_a_restart_and_forgets_old_rows(db: Db) -> None:
    cfg = orders_config(db, lookback=timedelta(seconds=10), batch_size=2)
    db.insert(db.orders, *(order(f"PO-{n}", T0 + timedelta(seconds=n)) for n in range(1, 6)))
    conn = SqlConnector(cfg)
    assert [r.key for r in drain(conn).records] == ["PO-1", "PO-2", "PO-3", "PO-4", "PO-5"]
    conn.close()
    restarted = SqlConnector(cfg, json.loads(json.dumps(conn.bookmark)))
    again = drain(restarted)
    assert again.records == [] and again.rows_read == 5  # the window is re-read, not re-emitted
    # Rows far beyond the window push the older ones out of the kept set.
    db.insert(db.orders, order("PO-9", T0 + timedelta(seconds=60)))
    assert keys(drain(restarted)) == [("PO-9", "upsert")]
    assert sorted(restarted.bookmark["seen"]) == ["PO-9"]
    restarted.close()


def test_an_integer_cursor_looks_back_by_a_number_of_ids(db: Db) -> None:
    cfg = orders_config(db)
    cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                       "table": db.lines.name, "key": ("id",), "cursor": "id", "actor": None,
                       "mapping": FieldMapping((FieldSpec("sku", "sku"),)), "lookback": 10})
    db.insert(db.lines, *({"id": n, "po_number": "PO-1", "line_no": n, "sku": f"S{n}"} for n in (1, 2, 5)))
    conn = SqlConnector(cfg)
    assert [r.seq for r in poll(conn).records] == [1, 2, 5]
    db.insert(db.lines, {"id": 3, "po_number": "PO-1", "line_no": 3, "sku": "S3"})  # an id taken earlier
    assert [r.seq for r in poll(conn).records] == [3]
    assert conn.bookmark["cursor"] == -5 and conn.bookmark["key"] is None
    conn.close()


def test_lines_travel_with_their_order_and_a_bad_line_holds_the_order_back(db: Db) -> None:
    lines = LinesConfig(
        parent="po_number", match="po_number", table=db.lines.name, order_by=("line_no",),
        mapping=FieldMapping((FieldSpec("sku", "sku"), FieldSpec("qty", "qty", "number"))),
    )
    db.insert(db.orders, order("PO-1", T0), order("PO-2", T0), order("PO-3", T0))
    db.insert(db.lines, *(
        {"po_number": po, "line_no": n, "sku": sku, "qty": qty}
        for po, n, sku, qty in [("PO-1", 2, "B", 5), ("PO-1", 1, "A", 10), ("PO-2", 1, "C", 1)]
    ))
    conn = SqlConnector(orders_config(db, lines=lines))
    result = poll(conn)
    by_key: dict[str, Any] = {r.key: r.fields["lines"] for r in result.records}
    assert by_key == {
        "PO-1": [{"sku": "A", "qty": 10}, {"sku": "B", "qty": 5}],
        "PO-2": [{"sku": "C", "qty": 1}],
        "PO-3": [],
    }
    conn.close()
    text_qty = FieldMapping((FieldSpec("sku", "sku", "integer"),))
    bad = SqlConnector(orders_config(db, lines=LinesConfig(
        parent="po_number", match="po_number", table=db.lines.name, order_by=("line_no",),
        mapping=text_qty)))
    result = bad.poll()
    bad.close()
    assert [r.key for r in result.records] == ["PO-3"]
    first = result.dead[0]
    assert first.where["key"] == "PO-1" and first.where["line"] == 1
    assert first.where["lines"] == db.lines.name and first.where["text"] == "A"
    assert first.reason.startswith("line 1: field 'sku'")


def test_a_lookback_that_does_not_fit_the_cursor_is_a_clear_error(db: Db) -> None:
    cfg = orders_config(db, lookback=5)  # a count of ids, but updated_at is a time
    db.insert(db.orders, order("PO-1", T0))
    conn = SqlConnector(cfg)
    with pytest.raises(ValueError, match="lookback is a count but cursor 'updated_at'"):
        conn.poll()
    conn.close()


@pytest.mark.parametrize(
    "db", [pytest.param("postgresql", marks=pytest.mark.integration),
           pytest.param("mariadb", marks=pytest.mark.integration)], indirect=True,
)
def test_reading_is_done_in_one_read_only_transaction(db: Db) -> None:
    # A query that writes as a side effect (a function inserting a line per row read): run as
    # is, it writes; the connector's poll (one transaction, declared READ ONLY, for the scan and
    # the reconcile key listing) must refuse it. SQLite: test_connectors_sql's mode=ro check.
    fn = f"{db.orders.name}_w"
    insert = f"INSERT INTO {db.lines.name} (po_number, line_no, sku, qty) VALUES ('X', 1, 'W', 1)"
    with db.engine.begin() as c:
        if db.engine.dialect.name == "postgresql":
            c.exec_driver_sql(f"CREATE FUNCTION {fn}() RETURNS int LANGUAGE plpgsql VOLATILE AS "
                              f"$$ BEGIN {insert}; RETURN 1; END $$")
        else:
            c.exec_driver_sql(f"CREATE FUNCTION {fn}() RETURNS int NOT DETERMINISTIC MODIFIES SQL DATA "
                              f"BEGIN {insert}; RETURN 1; END")
    try:
        db.insert(db.orders, order("PO-1", T0))
        query = f"SELECT po_number, updated_at, {fn}() AS w FROM {db.orders.name}"

        def written() -> int:
            with db.engine.connect() as c:
                return c.execute(sa.select(sa.func.count()).select_from(db.lines)).scalar_one()

        with db.engine.begin() as c:  # the control: outside a read-only transaction it writes
            assert c.exec_driver_sql(query).all()
        assert written() == 1
        cfg = SqlConfig(
            id="ro", entity="purchase_order", url=db.url, key=("po_number",), cursor="updated_at",
            query=query, mapping=FieldMapping((FieldSpec("w", "w", "integer"),)), reconcile=0.0)
        conn = SqlConnector(cfg)
        with pytest.raises(sa.exc.DBAPIError, match="(?i)read.only"):
            conn.poll()
        conn.close()
        assert written() == 1
    finally:
        with db.engine.begin() as c:
            c.exec_driver_sql(f"DROP FUNCTION {fn}" + ("()" if db.engine.dialect.name == "postgresql" else ""))


def test_lines_whose_parent_column_is_text_while_the_order_id_is_an_integer(db: Db) -> None:
    # The lines table keeps the order's integer id as text (a varchar parent column).
    db.insert(db.lines, *({"po_number": str(n), "line_no": 1, "sku": f"S{n}", "qty": n} for n in (1, 2)))
    cfg = SqlConfig(
        id="erp-lines", entity="purchase_order", url=db.url, key=("po_number",), cursor="id", table=db.lines.name,
        mapping=FieldMapping((FieldSpec("sku", "sku"),)),
        lines=LinesConfig(parent="po_number", match="id", table=db.lines.name,
                          mapping=FieldMapping((FieldSpec("sku", "sku"),))),
    )
    conn = SqlConnector(cfg)
    result = poll(conn)
    conn.close()
    assert [(r.key, r.fields["lines"]) for r in result.records] == [("1", [{"sku": "S1"}]), ("2", [{"sku": "S2"}])]


def test_a_delete_found_by_reconciling_is_older_than_the_key_created_again(db: Db) -> None:
    """Naive times in the site's zone (ERPNext in Shanghai): the delete's seq must not be read
    as if they were UTC, hours ahead, or the key created again after it would look older."""
    shanghai = ZoneInfo("Asia/Shanghai")
    wall = datetime.now(shanghai).replace(tzinfo=None)  # what the ERP stamps
    db.insert(db.orders, order("PO-1", wall - timedelta(minutes=2)), order("PO-2", wall - timedelta(minutes=1)))
    conn = SqlConnector(orders_config(db, timezone=shanghai, reconcile=0.0))
    assert keys(poll(conn)) == [("PO-1", "upsert"), ("PO-2", "upsert")]
    with db.engine.begin() as c:
        c.execute(db.orders.delete().where(db.orders.c.po_number == "PO-1"))
    [gone] = poll(conn).records
    assert (gone.key, gone.op) == ("PO-1", "delete")
    db.insert(db.orders, order("PO-1", datetime.now(shanghai).replace(tzinfo=None) + timedelta(seconds=1)))
    [again] = poll(conn).records
    conn.close()
    assert (again.key, again.op) == ("PO-1", "upsert")
    assert str(again.seq) > str(gone.seq)  # the engine drops a seq that is not newer
