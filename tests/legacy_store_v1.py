"""A frozen copy of alerts/store.py as of schema version 1 (commit 8a2ec61), for the upgrade tests.

Do not edit: it is what existing installations ran.
"""


from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from orderwatch.alert import AlertEvent

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class AlertRow(Base):
    __tablename__ = "ow_alerts"

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(200), index=True)
    entity: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_change: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HistoryRow(Base):
    __tablename__ = "ow_alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(ForeignKey("ow_alerts.fingerprint"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200), default="engine")
    detail: Mapped[str] = mapped_column(Text, default="")


class MetaRow(Base):
    __tablename__ = "ow_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    fingerprint: str
    rule: str
    entity: str
    key: str
    state: str
    severity: str
    owner: str | None
    title: str
    summary: str
    labels: dict[str, str]
    first_seen: datetime
    starts_at: datetime
    last_change: datetime
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


def _utc(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone=True columns.
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            # Several workers may share one SQLite file: WAL lets readers and one writer coexist.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")

        return engine
    return create_engine(url, pool_pre_ping=True)


class AlertStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        for attempt in range(5):
            try:
                self._create_schema()
                break
            except (OperationalError, IntegrityError, ProgrammingError):
                # Workers starting together race to create the schema; the loser retries.
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _create_schema(self) -> None:
        Base.metadata.create_all(self.engine)
        with Session(self.engine) as session, session.begin():
            if session.get(MetaRow, "schema_version") is None:
                session.add(MetaRow(name="schema_version", value=str(SCHEMA_VERSION)))

    def close(self) -> None:
        self.engine.dispose()

    def apply(self, events: Iterable[AlertEvent]) -> list[AlertEvent]:
        """Apply transitions in order; return those that changed the store.

        One SELECT (locking the rows) for the whole batch and one flush: the
        sink hands over hundreds of transitions at a time.
        """
        events = list(events)
        if not events:
            return []
        changed: list[AlertEvent] = []
        with Session(self.engine) as session, session.begin(), session.no_autoflush:
            wanted = sorted({ev.fingerprint for ev in events})
            rows: dict[str, AlertRow] = {}
            for chunk in range(0, len(wanted), 500):
                query = select(AlertRow).where(AlertRow.fingerprint.in_(wanted[chunk:chunk + 500]))
                rows.update((r.fingerprint, r) for r in session.scalars(query.with_for_update()))
            history: list[HistoryRow] = []
            for ev in events:
                row = rows.get(ev.fingerprint)
                if row is None:
                    row = rows[ev.fingerprint] = AlertRow(
                        fingerprint=ev.fingerprint, rule=ev.rule, entity=ev.entity, key=ev.key,
                        first_seen=ev.since, starts_at=ev.since, last_change=ev.at, state="",
                    )
                    session.add(row)
                elif not _changes(row, ev):
                    continue
                _update(row, ev)
                history.append(HistoryRow(fingerprint=ev.fingerprint, state=ev.state, at=ev.at,
                                          detail=json.dumps({"summary": ev.summary}, ensure_ascii=False)))
                changed.append(ev)
            session.flush()
            session.add_all(history)
        return changed

    def list(self, state: str | None = None, rule: str | None = None) -> list[StoredAlert]:
        query = select(AlertRow).order_by(AlertRow.starts_at, AlertRow.fingerprint)
        if state:
            query = query.where(AlertRow.state == state)
        if rule:
            query = query.where(AlertRow.rule == rule)
        with Session(self.engine) as session:
            return [_stored(row) for row in session.scalars(query)]

    def history(self, fingerprint: str) -> list[tuple[str, datetime, str]]:
        query = select(HistoryRow).where(HistoryRow.fingerprint == fingerprint).order_by(HistoryRow.id)
        with Session(self.engine) as session:
            return [(h.state, _utc(h.at) or h.at, h.actor) for h in session.scalars(query)]


def _changes(row: AlertRow, ev: AlertEvent) -> bool:
    """Whether a transition changes a stored alert (a replay or a stale event does not)."""
    last = _utc(row.last_change)
    if last is not None and ev.at < last:
        return False  # stale: a newer transition is already stored
    if ev.state == row.state and _utc(row.starts_at) == ev.since:
        return False  # replay of the transition we hold
    return not (ev.state == "resolved" and row.state == "resolved")


def _update(row: AlertRow, ev: AlertEvent) -> None:
    row.state = ev.state
    row.severity = ev.severity
    row.owner = ev.owner
    row.title = ev.title
    row.summary = ev.summary
    row.labels = dict(ev.labels)
    row.last_change = ev.at
    if ev.state == "firing":
        row.starts_at = ev.since
        row.resolved_at = None
    else:
        row.resolved_at = ev.at


def _stored(row: AlertRow) -> StoredAlert:
    return StoredAlert(
        fingerprint=row.fingerprint, rule=row.rule, entity=row.entity, key=row.key, state=row.state,
        severity=row.severity, owner=row.owner, title=row.title, summary=row.summary,
        labels=dict(row.labels or {}), first_seen=_utc(row.first_seen) or row.first_seen,
        starts_at=_utc(row.starts_at) or row.starts_at, last_change=_utc(row.last_change) or row.last_change,
        resolved_at=_utc(row.resolved_at),
    )
