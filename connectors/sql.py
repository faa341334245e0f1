"""Poll an SQL table or query by a growing cursor column (SQLAlchemy 2.x).

Replication key = (cursor, key columns): each poll reads the rows ordered
after the bookmark, so rows sharing a cursor value are neither lost nor
repeated when a batch ends among them. Rows whose cursor or key is NULL are
not read. The connector never writes: a query must be a single SELECT
(sqltext.py), every connection is a session the database keeps read-only
(PostgreSQL and MariaDB/MySQL sessions READ ONLY, SQLite files opened read-only
with `query_only`), and each read is a READ ONLY transaction besides.

With a `lookback`, every scan that reached the end starts again `lookback`
before the highest cursor seen, so a row committed late with an older cursor
value (a long transaction's `now()`, an id taken before commit) is still
read; rows already emitted in that window are recognised by (key, cursor)
and not emitted twice. With `reconcile`, the keys of the source are listed
every so often and keys that vanished are emitted as deletes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION

from connectors import sqlcursor as cur
from connectors import sqltext
from connectors.base import Connector, Notice, PollResult
from connectors.lines import LineError, LinesConfig, LinesReader
from connectors.mapping import (
    FieldMapping,
    FieldSpec,
    MappingError,
    jsonable,
    key_reader,
    make_key,
    ts_of,
)
from connectors.sqlcolumns import check_columns
from orderwatch import gcpolicy
from orderwatch.record import ChangeRecord, DeadLetter

CONNECT_TIMEOUT = 10  # seconds
# What makes a new session read-only, by dialect: the database then refuses every write in it,
# a write after a COMMIT included. Other dialects get the READ ONLY transaction only.
READ_ONLY_SESSION = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",  # default_transaction_read_only
    "mysql": "SET SESSION TRANSACTION READ ONLY",  # tx_read_only (MariaDB), transaction_read_only
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
    "sqlite": "PRAGMA query_only = ON",
}
_MULTI_STATEMENTS = 1 << 16  # the MariaDB/MySQL client flag that lets one call run several statements


@dataclass(frozen=True, slots=True)
class SqlConfig:
    """One `type: sql` entry of the connectors file."""

    id: str
    entity: str
    url: str
    key: tuple[str, ...]
    cursor: str
    mapping: FieldMapping
    table: str | None = None
    query: str | None = None
    batch_size: int = 1000
    actor: str | None = None
    timezone: tzinfo = field(default=UTC)
    lookback: cur.Lookback | None = None
    reconcile: float | None = None  # seconds between key reconciliations
    lines: LinesConfig | None = None
    ts: FieldSpec | None = None  # the column saying when the row changed (else the cursor's time)


def readonly_url(url: str | sa.URL) -> sa.URL:
    """For an SQLite file, a URL that opens it read-only (and never creates it)."""
    parsed = sa.make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return parsed
    if parsed.query.get("uri") or database.startswith("file:"):
        return parsed  # the user wrote an SQLite URI; respect it as written
    return parsed.set(
        database=Path(database).absolute().as_uri(),
        query={**parsed.query, "mode": "ro", "uri": "true"},
    )


def read_only_engine(url: sa.URL, connect_args: dict[str, Any]) -> sa.Engine:
    """An engine whose every connection is a session the database keeps read-only and, on
    MariaDB/MySQL, runs one statement per call (the drivers' multi-statement flag cleared)."""
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    statement = READ_ONLY_SESSION.get(engine.dialect.name)

    def one_statement_per_call(dialect: sa.Dialect, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        if dialect.name not in ("mysql", "mariadb"):
            return
        if "client_flag" in cparams:  # PyMySQL leaves it off unless the URL sets it
            cparams["client_flag"] = int(cparams["client_flag"]) & ~_MULTI_STATEMENTS
        if dialect.driver == "mysqldb":  # mysqlclient turns it on unless told not to
            cparams["multi_statements"] = False

    def read_only_session(dbapi_connection: Any, record: Any) -> None:
        if statement is None:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()
        dbapi_connection.commit()  # PostgreSQL's SET lasts only if its transaction commits

    sa.event.listen(engine, "do_connect", one_statement_per_call)
    sa.event.listen(engine, "connect", read_only_session)
    return engine


def begin_read_only(conn: sa.Connection) -> None:
    """Make the transaction `conn` is about to begin READ ONLY where the dialect allows."""
    # SQLite has no such statement; its file is opened with mode=ro instead.
    if conn.dialect.name in ("postgresql", "mysql", "mariadb"):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def source_clause(table: str | None, query: str | None, columns: list[str], dialect: str) -> sa.FromClause:
    """The table or the query as a FROM clause exposing `columns`; sqltext.QueryError for a
    query that is not a single SELECT as `dialect` reads it."""
    cols: list[sa.ColumnClause[Any]] = [sa.column(name) for name in columns]
    if query is not None:
        return sa.text(sqltext.subquery_text(query, dialect)).columns(*cols).subquery("src")
    schema, _, name = (table or "").rpartition(".")
    return sa.table(name, *cols, schema=schema or None)


class SqlConnector(Connector):
    """Bookmark: {"cursor", "key"} = scan position (key None: from `cursor` inclusive),
    plus "hwm" and "seen" with a lookback, "known" and "reconciled_at" with reconcile."""

    def __init__(self, config: SqlConfig, bookmark: dict[str, Any] | None = None) -> None:
        super().__init__(config.id, bookmark)
        self.config = config
        url = readonly_url(config.url)
        connect_args: dict[str, Any] = {}
        if url.get_driver_name() in ("psycopg2", "psycopg") and "connect_timeout" not in url.query:
            # libpq waits for a host that does not answer for as long as TCP does (minutes), and
            # the runner's other connectors wait with it; PyMySQL gives up after 10s by default.
            connect_args["connect_timeout"] = CONNECT_TIMEOUT
        dialect = sqltext.dialect_of(url)
        self.lines = LinesReader(config.lines, dialect) if config.lines else None
        columns = [config.cursor, *config.key, *config.mapping.columns()]
        if config.actor:
            columns.append(config.actor)
        if config.lines:
            columns.append(config.lines.match)
        if config.ts is not None and config.ts.column is not None:
            columns.append(config.ts.column)
        self._columns = list(dict.fromkeys(columns))
        self._source = source_clause(config.table, config.query, self._columns, dialect)
        self.engine = read_only_engine(url, connect_args)
        # Rows are read as the DBAPI's tuples of `_columns`: these read them by index.
        self._at = {name: i for i, name in enumerate(self._columns)}
        self._icursor = self._at[config.cursor]
        self._iactor = self._at[config.actor] if config.actor else None
        self._imatch = self._at[config.lines.match] if config.lines else 0
        self._its = self._at[config.ts.column] if config.ts is not None and config.ts.column else None
        self._fields = config.mapping.reader(self._columns)
        self._key = key_reader(config.key, self._columns)
        # PostgreSQL walks an index on (cursor, key) for a row-value comparison; others may not.
        self._row_values = self.engine.dialect.name == "postgresql"
        # PostgreSQL NUMERIC columns that only feed `number` fields: after the first batch shows
        # their type, they are selected as double precision (see _read).
        keep = {config.cursor, *config.key, config.actor, config.lines.match if config.lines else None,
                config.ts.column if config.ts else None}
        kinds: dict[str, set[str]] = {}
        for spec in config.mapping.specs:
            if spec.column is not None:  # a mapped column's values are looked up as read
                kinds.setdefault(spec.column, set()).add(spec.type if spec.map is None else "map")
        self._numbers = frozenset(c for c, k in kinds.items() if k == {"number"} and c not in keep)
        self._as_double: frozenset[str] | None = None if self._numbers and self._row_values else frozenset()
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[tuple[Any, Any, int], Future[_Read]] | None = None

    def statement(self, bookmark: Mapping[str, Any], limit: int | None = None) -> sa.Select[Any]:
        """The SELECT of the next batch after `bookmark` (public for tests and `explain`)."""
        c = self._source.c
        order = [c[self.config.cursor], *(c[k] for k in self.config.key)]
        double = self._as_double or frozenset()
        stmt = sa.select(*(sa.cast(c[name], DOUBLE_PRECISION).label(name) if name in double else c[name]
                           for name in self._columns))
        stmt = stmt.where(*(col.isnot(None) for col in order))
        if bookmark.get("cursor") is not None:
            if bookmark.get("key") is None:
                stmt = stmt.where(order[0] >= cur.decode(bookmark["cursor"]))
            else:
                after = [cur.decode(bookmark["cursor"]), *(cur.decode(v) for v in bookmark["key"])]
                if self._row_values:
                    stmt = stmt.where(sa.tuple_(*order) > sa.tuple_(*(sa.literal(v) for v in after)))
                else:
                    stmt = stmt.where(cur.after(order, after))
        return stmt.order_by(*order).limit(limit or self.config.batch_size)

    def poll(self) -> PollResult:
        with gcpolicy.paused():
            return self._poll(self.bookmark, self.config.batch_size, reconcile=True)

    def export(self) -> Iterator[PollResult]:
        """Every row of the source from its beginning, batch by batch (`connectors export`)."""
        bookmark: Mapping[str, Any] = {}
        while True:
            result = self._poll(bookmark, self.config.batch_size, reconcile=False)
            yield result
            if not result.more or result.bookmark is None:
                return
            bookmark = result.bookmark

    def sample(self, rows: int) -> PollResult:
        result = self._poll({}, rows, reconcile=False)
        # The scan passes over rows without a cursor or key for good: say so while setting up.
        c = self._source.c
        cols = [c[self.config.cursor], *(c[k] for k in self.config.key)]
        with self.engine.connect() as conn:
            begin_read_only(conn)
            unread = conn.execute(sa.select(sa.func.count()).select_from(self._source)
                                  .where(sa.or_(*(col.is_(None) for col in cols)))).scalar_one()
            conn.rollback()
        if unread:
            names = ", ".join([self.config.cursor, *self.config.key])
            result.notices.append(Notice(f"{unread} row(s) have no value in {names} and are never read",
                                         {"table": self.config.table or "(query)"}))
        return result

    def _read(self, bookmark: Mapping[str, Any], limit: int, reconcile: bool) -> _Read:
        """One read-only transaction: the next batch after `bookmark`, its lines, and the
        source's keys when a reconciliation is due and the scan reached the end."""
        with self.engine.connect() as conn:
            begin_read_only(conn)
            try:
                found = conn.execute(self.statement(bookmark, limit))
            except sa.exc.DBAPIError:
                self._check_columns(conn)
                raise
            # The DBAPI cursor's own tuples: the columns are untyped (no result processing),
            # and SQLAlchemy's Row objects cost a sixth of a poll.
            if self._as_double is None:
                self._as_double = _numeric_columns(self._columns, found.cursor.description, self._numbers)
            rows: list[Sequence[Any]] = list(found.cursor.fetchall())
            found.close()
            try:
                lines = self.lines.read(conn, [r[self._imatch] for r in rows]) if self.lines else {}
            except sa.exc.DBAPIError:
                self._check_columns(conn)
                raise
            full = len(rows) >= limit
            present = self._keys(conn) if reconcile and not full and self._reconcile_due() else None
            conn.rollback()
        return _Read(rows, lines, present)

    def _check_columns(self, conn: sa.Connection) -> None:
        """After a failed read: MissingColumns naming every column the source lacks, if any."""
        cfg, dialect = self.config, sqltext.dialect_of(self.engine.url)
        check_columns(conn, cfg.table, cfg.query, dialect, self._columns)
        if cfg.lines is not None and self.lines is not None:
            needed = [cfg.lines.parent, *cfg.lines.order_by, *cfg.lines.mapping.columns()]
            check_columns(conn, cfg.lines.table, cfg.lines.query, dialect, needed, "lines: ")

    def _after(self, row: Sequence[Any]) -> dict[str, Any]:
        """The scan position just after `row`: its cursor and key values, bookmark-encoded."""
        return {"cursor": cur.encode(row[self._icursor]),
                "key": [cur.encode(row[self._at[k]]) for k in self.config.key]}

    def _read_ahead(self, position: dict[str, Any], limit: int) -> None:
        """Start reading the batch at `position` while this one is mapped and published: the
        database works on it meanwhile."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sql-{self.id}")
        self._ahead = (_position(position, limit), self._reader.submit(self._read, position, limit, False))

    def _take_ahead(self, bookmark: Mapping[str, Any], limit: int) -> _Read | None:
        """The batch read ahead for this bookmark, if that is where the scan stands now. A read
        ahead is what a poll a moment earlier would have read; one that reached the end is
        not used when a reconciliation is due (that needs the keys of the same transaction)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != _position(bookmark, limit):
            return None
        read = ahead[1].result()
        if len(read.rows) < limit and self._reconcile_due():
            return None
        return read

    def _poll(self, bookmark: Mapping[str, Any], limit: int, reconcile: bool) -> PollResult:
        cfg = self.config
        read = self._take_ahead(bookmark, limit) if reconcile else None
        if read is None:
            read = self._read(bookmark, limit, reconcile)
        rows, lines, present = read.rows, read.lines, read.present
        full = len(rows) >= limit
        after = self._after(rows[-1]) if rows and (full or not cfg.lookback) else None
        if full and reconcile and after is not None:
            self._read_ahead(after, limit)
        result = PollResult(rows_read=len(rows), more=full)
        now = datetime.now(UTC)
        seen: dict[str, Any] | None = dict(bookmark.get("seen", {})) if cfg.lookback else None
        known: set[str] | None = set(bookmark.get("known", [])) if cfg.reconcile is not None else None
        hwm = bookmark.get("hwm")
        icursor = self._icursor
        records, dead = result.records, result.dead
        for row, fields in zip(rows, self._fields(rows), strict=True):
            try:
                key = self._key(row)
                if seen is not None:
                    enc = cur.encode(row[icursor])
                    if seen.get(key) == enc:
                        continue  # read again by the lookback scan: emitted (or reported) already
                    seen[key] = enc
                if isinstance(fields, MappingError):
                    raise fields
                record = self._record(row, key, fields, lines, now)
            except (MappingError, LineError) as exc:
                dead.append(self._dead_letter(row, exc))
                continue
            if known is not None:
                known.add(key)
            records.append(record)
        if rows and (cfg.lookback is not None or cfg.reconcile is not None):
            top = max(row[icursor] for row in rows)
            if hwm is None or cur.decode(hwm) < top:
                hwm = cur.encode(top)
        if not rows and present is None and not cfg.lookback:
            return result  # nothing new: the bookmark stands
        new: dict[str, Any] = dict(bookmark)
        if after is not None:
            new.update(after)
        elif cfg.lookback and hwm is not None:
            # The scan reached the end: the next one starts `lookback` before the highest cursor.
            low = cur.shift_back(cur.decode(hwm), cfg.lookback, cfg.cursor)
            new["cursor"], new["key"] = cur.encode(low), None
            seen = {k: v for k, v in (seen or {}).items() if not cur.decode(v) < low}
        if cfg.lookback is not None or cfg.reconcile is not None:
            new["hwm"] = hwm
        if present is not None and known is not None:
            gone = sorted(known - present)
            seq = cur.delete_seq(cur.decode(hwm) if hwm is not None else None, now, cfg.timezone)
            for key in gone:
                result.records.append(self._delete(key, seq, now))
                if seen is not None:
                    seen.pop(key, None)
            known -= set(gone)
            new["reconciled_at"] = time.time()
        if seen is not None:
            new["seen"] = seen
        if known is not None:
            new["known"] = sorted(known)
        if new == dict(bookmark):
            return result
        result.bookmark = new
        return result

    def _reconcile_due(self) -> bool:
        every = self.config.reconcile
        return every is not None and time.time() - float(self.bookmark.get("reconciled_at", 0)) >= every

    def _keys(self, conn: sa.Connection) -> set[str]:
        """Every key present in the source now (rows with a cursor, as the scan reads them)."""
        c = self._source.c
        cols = [c[k] for k in self.config.key]
        stmt = sa.select(*cols).where(c[self.config.cursor].isnot(None), *(k.isnot(None) for k in cols))
        keys = set()
        for row in conn.execute(stmt).mappings():
            try:
                keys.add(make_key(dict(row), self.config.key))
            except MappingError:
                continue
        return keys

    def _record(self, row: Sequence[Any], key: str, fields: dict[str, Any],
                lines: dict[Any, list[dict[str, Any]]], now: datetime) -> ChangeRecord:
        cfg = self.config
        if self.lines is not None:
            fields["lines"] = self.lines.lines_of(row[self._imatch], lines)
        ts, seq = cur.ts_and_seq(row[self._icursor], now, cfg.timezone)
        if self._its is not None and cfg.ts is not None:
            ts = ts_of(cfg.ts, row[self._its], cfg.timezone) or ts
        actor = row[self._iactor] if self._iactor is not None else None
        if actor is not None:
            actor = (actor if type(actor) is str else str(actor)).strip() or None
        return ChangeRecord(source=cfg.id, entity=cfg.entity, key=key, op="upsert", ts=ts, seq=seq, fields=fields,
                            actor=actor)

    def _delete(self, key: str, seq: int | str, now: datetime) -> ChangeRecord:
        cfg = self.config
        return ChangeRecord(source=cfg.id, entity=cfg.entity, key=key, op="delete", ts=now, seq=seq)

    def _dead_letter(self, values: Sequence[Any], exc: MappingError | LineError) -> DeadLetter:
        row = dict(zip(self._columns, values, strict=True))
        try:
            key: str | None = make_key(row, self.config.key)
        except MappingError:
            key = None
        error = exc.error if isinstance(exc, LineError) else exc
        where: dict[str, Any] = {
            "table": self.config.table or "(query)",
            "key": key,
            "column": error.column,
            "text": error.text,
        }
        if isinstance(exc, LineError):
            lines = self.config.lines
            where["lines"] = (lines.table if lines else None) or "(query)"
            where["line"] = exc.index + 1
        return DeadLetter(str(exc), error.field, jsonable(row), self.config.id, where=where)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader, self._ahead = None, None
        self.engine.dispose()


@dataclass(slots=True)
class _Read:
    rows: list[Sequence[Any]]
    lines: dict[Any, list[dict[str, Any]]]
    present: set[str] | None  # the source's keys (a reconciliation), or None


def _numeric_columns(columns: Sequence[str], description: Sequence[Any], numbers: frozenset[str]) -> frozenset[str]:
    """Of `numbers`, the columns PostgreSQL returns as NUMERIC (type oid 1700).

    The driver makes a Decimal of every such cell, which the `number` mapping then turns
    into a float (or an int when whole): reading them as double precision skips both steps
    and gives the same values. PostgreSQL rounds the numeric to the nearest double, as
    float(Decimal) does, and writes it back exactly; a whole value still becomes an int.
    Together they were a fifth of a row's cost."""
    return frozenset(name for name, column in zip(columns, description, strict=True)
                     if name in numbers and column[1] == 1700)


def _position(bookmark: Mapping[str, Any], limit: int) -> tuple[Any, Any, int]:
    return bookmark.get("cursor"), bookmark.get("key"), limit


def lookback_of(text: str | int) -> cur.Lookback:
    """`10m`, `30s`, `2h`, `1d` → a duration; an integer → a count of ids."""
    if isinstance(text, int):
        return text
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 10m, 2h, 1d)")
    return timedelta(seconds=int(number) * units[unit])
