"""Poll an SQL table or query by a growing cursor column (SQLAlchemy 2.x).

Replication key = (cursor, key columns): each poll reads the rows ordered
after the bookmark, so rows sharing a cursor value are neither lost nor
repeated when a batch ends among them. Rows whose cursor or key is NULL are
not read. The connector never writes: SQLite files are opened read-only and
PostgreSQL/MySQL transactions are declared READ ONLY.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.base import Connector, PollResult
from connectors.dates import parse_date
from connectors.mapping import FieldMapping, MappingError, jsonable, make_key
from orderwatch.record import ChangeRecord, DeadLetter


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


def begin_read_only(conn: sa.Connection) -> None:
    """Make the transaction `conn` is about to begin READ ONLY where the dialect allows."""
    # SQLite has no such statement; its file is opened with mode=ro instead.
    if conn.dialect.name in ("postgresql", "mysql", "mariadb"):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


class SqlConnector(Connector):
    """Reads changed rows of one table or query; bookmark = last (cursor, key) read."""

    def __init__(self, config: SqlConfig, bookmark: dict[str, Any] | None = None) -> None:
        super().__init__(config.id, bookmark)
        self.config = config
        self.engine = sa.create_engine(readonly_url(config.url), pool_pre_ping=True)
        columns = [config.cursor, *config.key, *config.mapping.columns()]
        if config.actor:
            columns.append(config.actor)
        self._columns = list(dict.fromkeys(columns))
        self._source = self._from_clause()

    def _from_clause(self) -> sa.FromClause:
        cols: list[sa.ColumnClause[Any]] = [sa.column(name) for name in self._columns]
        if self.config.query is not None:
            # Colons escaped so that '10:30' or ::casts in the user's SQL are not bind params.
            text = sa.text(self.config.query.replace(":", "\\:"))
            return text.columns(*cols).subquery("src")
        schema, _, name = (self.config.table or "").rpartition(".")
        return sa.table(name, *cols, schema=schema or None)

    def statement(self, bookmark: Mapping[str, Any]) -> sa.Select[Any]:
        """The SELECT of the next batch after `bookmark` (public for tests and `explain`)."""
        c = self._source.c
        order = [c[self.config.cursor], *(c[k] for k in self.config.key)]
        stmt = sa.select(*(c[name] for name in self._columns))
        stmt = stmt.where(*(col.isnot(None) for col in order))
        if bookmark.get("cursor") is not None:
            after = [_decode(bookmark["cursor"]), *(_decode(v) for v in bookmark["key"])]
            stmt = stmt.where(_after(order, after))
        return stmt.order_by(*order).limit(self.config.batch_size)

    def poll(self) -> PollResult:
        with self.engine.connect() as conn:
            begin_read_only(conn)
            rows = [dict(row) for row in conn.execute(self.statement(self.bookmark)).mappings()]
            conn.rollback()
        result = PollResult(rows_read=len(rows))
        now = datetime.now(UTC)
        for row in rows:
            try:
                result.records.append(self._record(row, now))
            except MappingError as exc:
                result.dead.append(self._dead_letter(row, exc))
        if rows:
            last = rows[-1]
            result.bookmark = {
                "cursor": _encode(last[self.config.cursor]),
                "key": [_encode(last[k]) for k in self.config.key],
            }
        return result

    def _record(self, row: dict[str, Any], now: datetime) -> ChangeRecord:
        cfg = self.config
        key = make_key(row, cfg.key)
        fields = cfg.mapping.apply(row)
        ts, seq = _ts_and_seq(row[cfg.cursor], now, cfg.timezone)
        actor = row.get(cfg.actor) if cfg.actor else None
        return ChangeRecord(
            source=cfg.id,
            entity=cfg.entity,
            key=key,
            op="upsert",
            ts=ts,
            seq=seq,
            fields=fields,
            actor=None if actor is None or str(actor).strip() == "" else str(actor).strip(),
        )

    def _dead_letter(self, row: dict[str, Any], exc: MappingError) -> DeadLetter:
        try:
            key: str | None = make_key(row, self.config.key)
        except MappingError:
            key = None
        where = {
            "table": self.config.table or "(query)",
            "key": key,
            "column": exc.column,
            "text": exc.text,
        }
        return DeadLetter(str(exc), exc.field, jsonable(row), self.config.id, where=where)

    def close(self) -> None:
        self.engine.dispose()


def _after(cols: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """(c0, c1, …) > (v0, v1, …) spelled out: row-value comparison is not indexed everywhere."""
    first, value = cols[0], values[0]
    if len(cols) == 1:
        return first > value
    return sa.or_(first > value, sa.and_(first == value, _after(cols[1:], values[1:])))


def _ts_and_seq(cursor: Any, now: datetime, tz: tzinfo) -> tuple[datetime, int | str]:
    """ts = the cursor when it is a time (naive = `tz`), else now; seq = the cursor."""
    if isinstance(cursor, int) or (isinstance(cursor, str) and cursor.isdigit()):
        return now, int(cursor)  # an id, even as text: never an Excel serial date
    if isinstance(cursor, Decimal) and cursor == cursor.to_integral_value():
        return now, int(cursor)
    when: date | datetime | None = None
    if isinstance(cursor, (date, str)):
        try:  # SQLite hands timestamps back as text
            when = parse_date(cursor, tz)
        except ValueError:
            when = None
    if when is None:
        return now, str(cursor)
    if not isinstance(when, datetime):
        when = datetime.combine(when, time(), tzinfo=tz)
    # Fixed-width UTC text, so that seq strings sort as the times do.
    return when, when.astimezone(UTC).isoformat(timespec="microseconds")


def _encode(value: Any) -> Any:
    """A cursor/key value as JSON that `_decode` turns back into the same DB value."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    raise TypeError(f"cannot bookmark a {type(value).__name__} cursor/key value: {value!r}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    if "date" in value:
        return date.fromisoformat(value["date"])
    return Decimal(value["decimal"])
