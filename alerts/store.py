"""The alert lifecycle store (SQLAlchemy): SQLite by default, PostgreSQL in production.

Applying a transition is idempotent: at-least-once delivery replays alert
events after a crash, and a replay must change nothing. `apply` returns only
the transitions that changed the store. People act on alerts here too
(acknowledge, resolve); every change is a history row with who, when and why.

Notifications are not sent from here: the dispatcher (alerts/dispatch.py)
reads the stored state, so a crash between storing and notifying loses
nothing.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, create_engine, event, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from alerts.migrations import migrate
from alerts.schema import (  # noqa: F401  (re-exported: the tables live in alerts/schema.py)
    OPEN_STATES,
    SCHEMA_VERSION,
    AlertRow,
    Base,
    HistoryRow,
    MetaRow,
)
from orderwatch.alert import AlertEvent


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
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_comment: str | None = None
    resolved_by: str | None = None
    silenced_by: str | None = None
    escalation_level: int = 0
    delivery: str = ""
    delivery_error: str | None = None
    notified_at: datetime | None = None
    escalate: tuple[dict[str, Any], ...] = ()  # the rule's escalation steps
    facts: dict[str, Any] = field(default_factory=dict)  # texts by language and their values

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        out["escalate"] = [dict(step) for step in self.escalate]
        return out


@dataclass(slots=True)
class Snapshot:
    """What the dispatcher reads of an alert; changing it changes nothing in the store."""

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
    starts_at: datetime
    resolved_at: datetime | None
    escalation_level: int
    escalate: list[dict[str, Any]] | None
    silenced_by: str | None
    facts: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    fingerprint: str
    state: str  # what happened: firing, resolved, acknowledged, silenced, notified, …
    at: datetime
    actor: str
    comment: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "fingerprint": self.fingerprint, "event": self.state, "at": self.at.isoformat(),
                "by": self.actor, "comment": self.comment, "detail": self.detail}


def utc(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone=True columns.
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def json_text(value: Any) -> str:
    """JSON text of a column value: orjson (a tenth of the json module's time; the sink writes three
    JSON columns per alert transition); what orjson refuses (integers beyond 64 bits) or would write
    where the json module raises (datetimes, dataclasses) goes through the json module as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            # Several workers may share one SQLite file: WAL lets readers and one writer coexist.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.isolation_level = None  # transactions are begun below, not by the driver

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # The sink, the dispatcher, the API and the CLI all write. A deferred transaction
            # that reads and then writes fails (SQLITE_BUSY_SNAPSHOT) when another writer
            # committed in between; taking the write lock up front makes them queue instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text)


class AlertStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        for attempt in range(5):
            try:
                self.migrated_from, _ = migrate(self.engine)
                break
            except (OperationalError, IntegrityError, ProgrammingError):
                # Workers starting together race for the schema; the loser retries.
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine)

    # --- the engine's transitions -------------------------------------------

    def apply(self, events: Iterable[AlertEvent]) -> builtins.list[AlertEvent]:
        """Apply transitions in order; return those that changed the store.

        One SELECT (locking the rows) for the whole batch, then one executemany each for
        new alerts, changed alerts and history rows (SQLAlchemy Core: the ORM's unit of
        work cost more than the engine itself at thousands of transitions a second).
        """
        events = list(events)
        if not events:
            return []
        alerts, history_table = cast(Table, AlertRow.__table__), cast(Table, HistoryRow.__table__)
        changed: builtins.list[AlertEvent] = []
        # A fingerprint is a hash: worked out once per transition, not at each use below.
        keyed = [(ev.fingerprint, ev) for ev in events]
        with self.engine.begin() as conn:
            wanted = sorted({fp for fp, _ in keyed})
            rows: dict[str, SimpleNamespace] = {}
            for chunk in range(0, len(wanted), 500):
                query = select(alerts).where(alerts.c.fingerprint.in_(wanted[chunk:chunk + 500]))
                rows.update((r.fingerprint, SimpleNamespace(**r)) for r in
                            conn.execute(query.with_for_update()).mappings())
            existing = set(rows)
            touched: dict[str, SimpleNamespace] = {}
            history: builtins.list[dict[str, Any]] = []
            for fp, ev in keyed:
                row = rows.get(fp)
                if row is None:
                    row = rows[fp] = SimpleNamespace(
                        fingerprint=fp, rule=ev.rule, entity=ev.entity, key=ev.key,
                        first_seen=ev.since, starts_at=ev.since, last_change=ev.at, state="",
                        resolved_at=None, acked_by=None, acked_at=None, ack_comment=None, resolved_by=None,
                        silenced_by=None, escalation_level=0, delivery="", delivery_error=None,
                        notified_at=None, dispatch_pending=False, facts=None,
                    )
                else:
                    ev = _keep_assignment(row, ev)
                    if not _changes(row, ev):
                        continue
                kind = _update(row, ev)
                touched[fp] = row
                history.append({
                    "fingerprint": fp, "state": kind, "at": ev.at, "actor": "engine",
                    "detail": json_text({"summary": ev.summary, "severity": ev.severity}),
                    "comment": None,
                })
                changed.append(ev)
            inserts = [vars(r) for fp, r in touched.items() if fp not in existing]
            updates = [{**{c: getattr(r, c) for c in _UPDATED}, "b_fp": fp}
                       for fp, r in touched.items() if fp in existing]
            if inserts:
                conn.execute(alerts.insert(), inserts)
            if updates:
                conn.execute(alerts.update().where(alerts.c.fingerprint == bindparam("b_fp")), updates)
            if history:
                conn.execute(history_table.insert(), history)
        return changed

    # --- reading --------------------------------------------------------------

    def list(self, state: str | Sequence[str] | None = None, rule: str | None = None, owner: str | None = None,
             severity: str | None = None, entity: str | None = None, key: str | None = None,
             limit: int | None = None) -> builtins.list[StoredAlert]:
        query = select(AlertRow).order_by(AlertRow.starts_at, AlertRow.fingerprint)
        if isinstance(state, str):
            query = query.where(AlertRow.state == state)
        elif state:
            query = query.where(AlertRow.state.in_(list(state)))
        for column, value in ((AlertRow.rule, rule), (AlertRow.owner, owner), (AlertRow.severity, severity),
                              (AlertRow.entity, entity), (AlertRow.key, key)):
            if value:
                query = query.where(column == value)
        if limit:
            query = query.limit(limit)
        with Session(self.engine) as session:
            return [stored(row) for row in session.scalars(query)]

    def get(self, fingerprint: str) -> StoredAlert | None:
        with Session(self.engine) as session:
            row = session.get(AlertRow, fingerprint)
            return stored(row) if row else None

    def resolve_ids(self, ids: Iterable[str]) -> tuple[builtins.list[str], builtins.list[str]]:
        """Full fingerprints for ids or unique prefixes (like git's short hashes); and those not found."""
        found: builtins.list[str] = []
        missing: builtins.list[str] = []
        with Session(self.engine) as session:
            for ident in ids:
                fps = list(session.scalars(select(AlertRow.fingerprint)
                                           .where(AlertRow.fingerprint.like(f"{ident}%")).limit(2)))
                if len(fps) == 1 and len(ident) >= 4:
                    found.append(fps[0])
                else:
                    missing.append(ident)
        return found, missing

    def history(self, fingerprint: str) -> builtins.list[tuple[str, datetime, str]]:
        """(what, when, who) of every history entry, oldest first."""
        return [(h.state, h.at, h.actor) for h in self.events(fingerprint)]

    def events(self, fingerprint: str) -> builtins.list[HistoryEntry]:
        query = select(HistoryRow).where(HistoryRow.fingerprint == fingerprint).order_by(HistoryRow.id)
        with Session(self.engine) as session:
            return [entry(h) for h in session.scalars(query)]

    # --- people acting on alerts -------------------------------------------------

    def acknowledge(self, fingerprints: Iterable[str], actor: str, comment: str | None = None,
                    at: datetime | None = None) -> builtins.list[str]:
        """Acknowledge open alerts: stops reminders and escalation. Returns those that changed."""
        at = at or datetime.now(UTC)
        return self._act(fingerprints, ("firing", "silenced"), "acknowledged", actor, comment, at,
                         {"acked_by": actor, "acked_at": at, "ack_comment": comment, "silenced_by": None})

    def resolve(self, fingerprints: Iterable[str], actor: str, comment: str | None = None,
                at: datetime | None = None) -> builtins.list[str]:
        """Close open alerts by hand; the engine's next episode of the same alert opens it again."""
        at = at or datetime.now(UTC)
        return self._act(fingerprints, OPEN_STATES, "resolved", actor, comment, at,
                         {"resolved_by": actor, "resolved_at": at, "dispatch_pending": True})

    def comment(self, fingerprint: str, actor: str, comment: str, at: datetime | None = None) -> bool:
        """Add a comment to an alert's history (in any state); False if there is no such alert."""
        if not comment.strip():
            raise ValueError("a comment needs some text")
        with Session(self.engine) as session, session.begin():
            if session.get(AlertRow, fingerprint) is None:
                return False
            self.record(session, [fingerprint], "commented", actor, at or datetime.now(UTC), comment=comment)
            return True

    def reassign(self, fingerprint: str, to: str, actor: str, comment: str | None = None,
                 at: datetime | None = None) -> bool:
        """Give an open alert to another person (an id of the owners directory): routing, the console
        and the metrics follow the new owner, and the engine's later updates of this episode keep it
        (the ERP's owner field does not take it back). False if the alert is not open."""
        at = at or datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.get(AlertRow, fingerprint, with_for_update=True)
            if row is None or row.state not in OPEN_STATES:
                return False
            before = row.owner
            row.owner = to
            row.facts = {**(row.facts or {}), "assigned_to": to}
            self.record(session, [fingerprint], "reassigned", actor, at, {"from": before, "to": to}, comment)
            return True

    def _act(self, fingerprints: Iterable[str], from_states: Sequence[str], to_state: str, actor: str,
             comment: str | None, at: datetime, values: dict[str, Any]) -> builtins.list[str]:
        fps = sorted(set(fingerprints))
        if not fps:
            return []
        with Session(self.engine) as session, session.begin():
            rows = list(session.scalars(select(AlertRow).where(AlertRow.fingerprint.in_(fps),
                                                               AlertRow.state.in_(list(from_states)))
                                        .with_for_update()))
            for row in rows:
                row.state = to_state
                for k, v in values.items():
                    setattr(row, k, v)
                session.add(HistoryRow(fingerprint=row.fingerprint, state=to_state, at=at, actor=actor,
                                       comment=comment, detail=""))
            return [r.fingerprint for r in rows]

    def record(self, session: Session, fingerprints: Iterable[str], what: str, actor: str, at: datetime,
               detail: dict[str, Any] | None = None, comment: str | None = None) -> None:
        """Add one history entry per alert inside the caller's transaction."""
        text = json.dumps(detail or {}, ensure_ascii=False)
        session.add_all([HistoryRow(fingerprint=fp, state=what, at=at, actor=actor, detail=text, comment=comment)
                         for fp in fingerprints])

    def set_delivery(self, session: Session, fingerprints: Sequence[str], status: str, error: str | None) -> None:
        """Mark the delivery status of alerts (targeted UPDATE: the sink may be writing the same rows)."""
        if fingerprints:
            session.execute(update(AlertRow).where(AlertRow.fingerprint.in_(list(fingerprints)))
                            .values(delivery=status, delivery_error=error)
                            .execution_options(synchronize_session=False))

    def dispatchable(self, session: Session) -> builtins.list[Snapshot]:
        """Open alerts and resolved alerts whose resolution may still need telling."""
        return snapshots(session, or_(AlertRow.state.in_(OPEN_STATES), AlertRow.dispatch_pending.is_(True)))


def snapshots(session: Session, where: Any) -> list[Snapshot]:
    """Plain copies of the alert rows matching `where` (no ORM bookkeeping: a pass reads thousands)."""
    columns = [getattr(AlertRow, name) for name in Snapshot.__slots__]
    return [Snapshot(*row) for row in session.execute(select(*columns).where(where))]


def _changes(row: Any, ev: AlertEvent) -> bool:
    """Whether a transition changes a stored alert (a replay or a stale event does not)."""
    last = utc(row.last_change)
    if last is not None and ev.at < last:
        return False  # stale: a newer transition is already stored
    same_episode = utc(row.starts_at) == ev.since
    if ev.state == "firing":
        if same_episode and row.state == "resolved" and row.resolved_by:
            return False  # a person closed this episode; only a new one reopens it
        if row.state in OPEN_STATES:
            if not same_episode and (last is None or ev.at > last):
                # An engine that rebuilt its state (the broker restarted empty) fires an alert that is
                # still open here: the same episode, confirmed again; acknowledged stays acknowledged.
                return True
            return _content(row) != _content_of(ev)  # same episode: only new severity/text counts
        return True
    return row.state != "resolved"


def _keep_assignment(row: Any, ev: AlertEvent) -> AlertEvent:
    """A person reassigned this open alert: the engine's owner (the ERP's field) does not take it back
    while the episode lasts."""
    assigned = (row.facts or {}).get("assigned_to")
    if assigned and ev.state == "firing" and row.state in OPEN_STATES:
        return replace(ev, owner=assigned, facts={**(ev.facts or {}), "assigned_to": assigned})
    return ev


def _content(row: Any) -> tuple[Any, ...]:
    return (row.severity, row.owner, row.title, row.summary, dict(row.labels or {}), row.escalate or None,
            row.facts or None)


def _content_of(ev: AlertEvent) -> tuple[Any, ...]:
    return (ev.severity, ev.owner, ev.title, ev.summary, dict(ev.labels),
            [dict(step) for step in getattr(ev, "escalate", ())] or None, getattr(ev, "facts", None) or None)


# What _update may change on a stored alert (the columns of the batched UPDATE).
_UPDATED = ("severity", "owner", "title", "summary", "labels", "escalate", "last_change", "state", "starts_at",
            "resolved_at", "acked_by", "acked_at", "ack_comment", "resolved_by", "silenced_by",
            "escalation_level", "delivery", "delivery_error", "notified_at", "dispatch_pending", "facts")


def _update(row: Any, ev: AlertEvent) -> str:
    """Write the transition; return what happened (the history entry's kind)."""
    continuing = ev.state == "firing" and row.state in OPEN_STATES  # an open alert keeps its episode
    row.severity = ev.severity
    row.owner = ev.owner
    row.title = ev.title
    row.summary = ev.summary
    row.labels = dict(ev.labels)
    row.escalate = [dict(step) for step in getattr(ev, "escalate", ())] or None
    row.facts = _facts(row.facts, getattr(ev, "facts", None) or None, ev.state)
    row.last_change = ev.at
    if continuing:
        return "updated"  # acknowledged/silenced stays so; the new text is what is shown
    row.state = ev.state
    if ev.state == "firing":
        row.starts_at = ev.since
        row.resolved_at = None
        row.acked_by = row.acked_at = row.ack_comment = row.resolved_by = row.silenced_by = None
        row.escalation_level = 0
        row.delivery, row.delivery_error, row.notified_at = "", None, None
        row.dispatch_pending = False
    else:
        row.resolved_at = ev.at
        row.dispatch_pending = True  # whoever was told it fires is told it resolved
    return ev.state


def _facts(old: dict[str, Any] | None, new: dict[str, Any] | None, state: str) -> dict[str, Any] | None:
    """The facts to keep: a resolution keeps the values it no longer has (a deleted order's supplier)
    from the firing, so that the resolved message still says what it was about."""
    if state != "resolved" or not old:
        return new
    if not new:
        return old  # resolved without texts of its own (its rule was removed): told with the firing's
    values = {**(old.get("values") or {}), **(new.get("values") or {})}
    return {**old, **new, "values": values, "fired_status": (old.get("values") or {}).get("status")}


def stored(row: AlertRow) -> StoredAlert:
    return StoredAlert(
        fingerprint=row.fingerprint, rule=row.rule, entity=row.entity, key=row.key, state=row.state,
        severity=row.severity, owner=row.owner, title=row.title, summary=row.summary,
        labels=dict(row.labels or {}), first_seen=utc(row.first_seen) or row.first_seen,
        starts_at=utc(row.starts_at) or row.starts_at, last_change=utc(row.last_change) or row.last_change,
        resolved_at=utc(row.resolved_at), acked_by=row.acked_by, acked_at=utc(row.acked_at),
        ack_comment=row.ack_comment, resolved_by=row.resolved_by, silenced_by=row.silenced_by,
        escalation_level=row.escalation_level or 0, delivery=row.delivery or "",
        delivery_error=row.delivery_error, notified_at=utc(row.notified_at),
        escalate=tuple(row.escalate or ()), facts=dict(row.facts or {}),
    )


def entry(h: HistoryRow) -> HistoryEntry:
    try:
        detail = json.loads(h.detail) if h.detail else {}
    except ValueError:
        detail = {"text": h.detail}
    return HistoryEntry(h.id, h.fingerprint, h.state, utc(h.at) or h.at, h.actor, h.comment,
                        detail if isinstance(detail, dict) else {"value": detail})
