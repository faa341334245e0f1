"""Silences: mute alerts matching label matchers between a start and an end, with author and comment.

A silence mutes notifications; while it is active, the alerts it matches
show the state `silenced` (and who silenced them, in their history). When it
ends, they return to `firing` and are notified again if still open. The
matchers see the rule's labels plus alertname/rule, entity, key, severity
and owner; a silence must have a matcher that does not match the empty
string, so that it cannot mute everything by accident.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts import matchers as m
from alerts.labels import row_labels
from alerts.schema import AlertRow, SilenceRow
from alerts.store import AlertStore, Snapshot, snapshots, utc


class SilenceError(ValueError):
    """A silence that cannot be created as asked; the message says why."""


SILENCE_STATES = ("pending", "active", "expired")


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[m.Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    updated_at: datetime

    def status(self, now: datetime) -> str:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def matches(self, labels: dict[str, str]) -> bool:
        return m.match_all(self.matchers, labels)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """Alertmanager API v2's gettableSilence shape."""
        return {"id": self.id, "matchers": [x.to_dict() for x in self.matchers],
                "startsAt": self.starts_at.isoformat(), "endsAt": self.ends_at.isoformat(),
                "createdBy": self.created_by, "comment": self.comment, "updatedAt": self.updated_at.isoformat(),
                "status": {"state": self.status(now)}}


def _silence(row: SilenceRow) -> Silence:
    return Silence(row.id, tuple(m.from_dict(d) for d in row.matchers), utc(row.starts_at) or row.starts_at,
                   utc(row.ends_at) or row.ends_at, row.created_by, row.comment or "",
                   utc(row.created_at) or row.created_at, utc(row.updated_at) or row.updated_at)


class Silences:
    """Silence operations on an alert store."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store

    def add(self, matchers: Sequence[m.Matcher], starts_at: datetime, ends_at: datetime, created_by: str,
            comment: str, now: datetime) -> Silence:
        if not matchers:
            raise SilenceError("a silence needs at least one matcher")
        if all(x.matches({}) for x in matchers):
            raise SilenceError("these matchers also match alerts without those labels: add one that needs a value")
        if ends_at <= starts_at:
            raise SilenceError("a silence must end after it starts")
        if ends_at <= now:
            raise SilenceError("a silence must end in the future")
        if not created_by.strip():
            raise SilenceError("a silence needs its author (createdBy)")
        if not comment.strip():
            raise SilenceError("a silence needs a comment saying why")
        # SQLite keeps the wall time and drops the offset: store UTC, as PostgreSQL would compare it.
        starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
        row = SilenceRow(id=str(uuid.uuid4()), matchers=[x.to_dict() for x in matchers], starts_at=starts_at,
                         ends_at=ends_at, created_by=created_by, comment=comment, created_at=now, updated_at=now)
        with Session(self.store.engine) as session, session.begin():
            session.add(row)
            session.flush()
            silence = _silence(row)
            self.sync(session, now)
        return silence

    def expire(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence now; None if there is no such silence. Its alerts fire again at once."""
        with Session(self.store.engine) as session, session.begin():
            row = session.get(SilenceRow, silence_id, with_for_update=True)
            if row is None:
                return None
            if (utc(row.ends_at) or row.ends_at) > now:
                row.ends_at = now
                if (utc(row.starts_at) or row.starts_at) > now:
                    row.starts_at = now
                row.updated_at = now
            session.flush()
            silence = _silence(row)
            self.sync(session, now)
        return silence

    def get(self, silence_id: str) -> Silence | None:
        with Session(self.store.engine) as session:
            row = session.get(SilenceRow, silence_id)
            return _silence(row) if row else None

    def list(self, now: datetime, state: str | None = None) -> builtins.list[Silence]:
        with Session(self.store.engine) as session:
            rows = session.scalars(select(SilenceRow).order_by(SilenceRow.ends_at.desc()))
            out = [_silence(r) for r in rows]
        return [s for s in out if state is None or s.status(now) == state]

    def active(self, session: Session, now: datetime) -> builtins.list[Silence]:
        rows = session.scalars(select(SilenceRow).where(SilenceRow.ends_at > now, SilenceRow.starts_at <= now))
        return [_silence(r) for r in rows]

    def sync(self, session: Session, now: datetime) -> tuple[int, int]:
        """Mark open alerts silenced or firing again as silences start and end; return (muted, unmuted)."""
        return self.sync_rows(session, snapshots(session, AlertRow.state.in_(("firing", "silenced"))), now)

    def sync_rows(self, session: Session, rows: Iterable[Snapshot], now: datetime) -> tuple[int, int]:
        """`sync` over alerts already read (the dispatcher's pass); the snapshots are updated too."""
        active = self.active(session, now)
        muted = unmuted = 0
        for row in rows:
            if row.state not in ("firing", "silenced"):
                continue
            hit = next((s for s in active if s.matches(row_labels(row))), None) if active else None
            if hit and (row.state != "silenced" or row.silenced_by != hit.id):
                if self._set(session, row, "silenced", hit.id):
                    self.store.record(session, [row.fingerprint], "silenced", hit.created_by, now,
                                      {"silence": hit.id}, hit.comment)
                    muted += 1
            elif hit is None and row.state == "silenced":
                ended = row.silenced_by
                if self._set(session, row, "firing", None):
                    self.store.record(session, [row.fingerprint], "unsilenced", "orderwatch", now,
                                      {"silence": ended, "reason": "the silence ended"})
                    unmuted += 1
        return muted, unmuted

    @staticmethod
    def _set(session: Session, row: Snapshot, state: str, silence: str | None) -> bool:
        # Conditional: the sink may have resolved or a person acknowledged it meanwhile.
        done = session.execute(update(AlertRow).where(AlertRow.fingerprint == row.fingerprint,
                                                      AlertRow.state.in_(("firing", "silenced")))
                               .values(state=state, silenced_by=silence)
                               .execution_options(synchronize_session=False))
        if not getattr(done, "rowcount", 1):
            return False
        row.state, row.silenced_by = state, silence
        return True
