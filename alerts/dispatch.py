"""The dispatcher: from stored alerts to notifications in the outbox, one pass at a time.

Each pass reads the store's open alerts (and resolved ones whose resolution
may still be owed), then runs the stages, in Alertmanager's spirit:

    silences (sync states) → inhibit → route → time intervals (mute/active) → escalate
      → recipients → quiet hours → group → dedup against the notification log (nflog) → outbox

It is state-based: nothing depends on having seen an event in memory, so a
restart or a crash between storing an alert and notifying it loses nothing,
and a replayed alert event finds the notification log already up to date.
The nflog update and the outbox insert share one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from alerts import escalation, metrics, timeinterval
from alerts.clock import Clock, now_of
from alerts.config import AlertsConfig
from alerts.inhibit import Labelled, inhibited
from alerts.labels import row_labels
from alerts.message import AlertItem, Notification
from alerts.owners import Directory, Recipient
from alerts.recipients import AlertContext
from alerts.route import Route
from alerts.schema import OPEN_STATES, AlertRow, HistoryRow, NflogRow, OutboxRow
from alerts.silence import Silences
from alerts.store import AlertStore, Snapshot, utc

log = logging.getLogger(__name__)
NFLOG_RETENTION = timedelta(days=7)


@dataclass
class PassResult:
    queued: int = 0
    escalated: int = 0
    settled: int = 0
    muted: int = 0
    unmuted: int = 0


@dataclass
class Bucket:
    """What one recipient should hear on one receiver about one group, this pass."""

    key: str
    group_key: str
    group_labels: dict[str, str]
    route: Route
    receiver: str
    recipient: Recipient | None
    firing: dict[str, AlertItem] = field(default_factory=dict)
    resolved: dict[str, AlertItem] = field(default_factory=dict)
    since: float = float("inf")  # group_wait counts from the earliest alert that became due


def entry_key(group_key: str, receiver: str, recipient: str) -> str:
    return hashlib.sha1(f"{group_key}\x00{receiver}\x00{recipient}".encode()).hexdigest()


def _iso(dt: datetime | None) -> str | None:
    return utc(dt).isoformat() if dt else None  # type: ignore[union-attr]


def routing_context(directory: Directory, owner: str | None, labels: Mapping[str, str]) -> AlertContext:
    """The alert as routes see it: its labels plus `owner_known` and `owner_team` from the directory."""
    ctx = AlertContext(directory, owner, labels)
    ctx.labels = {**labels, "owner": directory.canonical(owner) or "", "owner_known": "true" if ctx.person else "false",
                  "owner_team": ctx.team.id if ctx.team else ""}
    return ctx


def grouping(route: Route, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The group key of an alert on a route (route id and the values of its group_by labels)."""
    group_labels = route.group_labels(labels)
    return f"{route.id}|{json.dumps(group_labels, sort_keys=True, ensure_ascii=False)}", group_labels


class Dispatcher:
    def __init__(self, config: AlertsConfig, store: AlertStore, clock: Clock = time.time) -> None:
        assert config.route is not None, "the dispatcher needs a routing tree"
        self.config = config
        self.route: Route = config.route
        self.routes = {r.id: r for r in self.route.walk()}
        self.store = store
        self.clock = clock
        self.silences = Silences(store)
        self._ack_mark: int | None = None

    def run_once(self) -> PassResult:
        """One pass; blocking (run it in a thread from async code)."""
        started = time.perf_counter()
        now = now_of(self.clock)
        result = PassResult()
        with Session(self.store.engine) as session, session.begin():
            rows = self.store.dispatchable(session)
            result.muted, result.unmuted = self.silences.sync_rows(session, rows, now)
            entries = {e.key: e for e in session.scalars(select(NflogRow))}
            buckets = self._plan(session, rows, now, result)
            self._resolved(rows, entries, buckets, now)
            self._flush(session, rows, entries, buckets, now, result)
            self._observe_acks(session)
            self._gauges(rows, self.config.directory)
        metrics.DISPATCH_SECONDS.observe(time.perf_counter() - started)
        return result

    # --- stages: inhibit, route, escalate, recipients, quiet hours, group -----

    def _plan(self, session: Session, rows: list[Snapshot], now: datetime, result: PassResult) -> dict[str, Bucket]:
        open_rows = [r for r in rows if r.state in OPEN_STATES]
        muted = inhibited(self.config.inhibit_rules, [Labelled(r.fingerprint, row_labels(r)) for r in open_rows])
        buckets: dict[str, Bucket] = {}
        for row in open_rows:
            if row.state != "firing" or row.fingerprint in muted:
                continue  # acknowledged, silenced and inhibited alerts are not notified
            starts = utc(row.starts_at) or now
            firing_for = (now - starts).total_seconds()
            own = escalation.rule_levels(row.escalate)
            severity = escalation.severity(row.severity, own, escalation.reached(own, firing_for))
            ctx = routing_context(self.config.directory, row.owner, {**row_labels(row), "severity": severity})
            labels = ctx.labels
            top_level, escalated_to = 0, set()
            for route in self.route.match(labels):
                if self.muted(route, now):
                    continue  # held, not dropped: the first pass after the interval notifies it
                steps = escalation.levels(route, row.escalate) if route.to else []
                level = escalation.reached(steps, firing_for)
                top_level = max(top_level, level)
                group_key, group_labels = grouping(route, labels)
                for recipient, lvl in self._recipients(ctx, route, steps, level):
                    due = starts.timestamp() + (steps[lvl - 1].after if lvl else 0.0)
                    if recipient is not None and lvl > (row.escalation_level or 0):
                        escalated_to.add(recipient.ref)
                    item = self._item(row, severity, lvl, owner_name=ctx.person.name if ctx.person else None)
                    self._add(buckets, route, group_key, group_labels, recipient, item, due, now)
            if top_level > (row.escalation_level or 0):
                self._escalated(session, row, top_level, sorted(escalated_to), now)
                result.escalated += 1
        return buckets

    def muted(self, route: Route, now: datetime) -> list[str]:
        """The time intervals that mute this route at `now` (empty: not muted)."""
        return timeinterval.muted_by(route.mute_time_intervals, route.active_time_intervals,
                                     self.config.time_intervals, now)

    def _recipients(self, ctx: AlertContext, route: Route, steps: list[escalation.Level],
                    level: int) -> list[tuple[Recipient | None, int]]:
        """(recipient, the escalation level that brought them in); (None, 0) for fixed destinations."""
        if not route.to:
            return [(None, 0)]
        found: dict[str, tuple[Recipient, int]] = {}
        for r in ctx.resolve(route.to) or ctx.first(route.fallback):
            found.setdefault(r.ref, (r, 0))
        for i, step in enumerate(steps[:level]):
            for r in ctx.resolve(step.to):
                found.setdefault(r.ref, (r, i + 1))
        if not found:
            metrics.NOTIFICATIONS_SKIPPED.labels("no_recipient").inc()
            return [(None, 0)]  # the route's receivers still get it (a group chat, a fixed mailbox)
        return list(found.values())

    def _add(self, buckets: dict[str, Bucket], route: Route, group_key: str, group_labels: dict[str, str],
             recipient: Recipient | None, item: AlertItem, due: float, now: datetime) -> None:
        names = route.receivers or (recipient.receivers if recipient else ())
        if not names:
            metrics.NOTIFICATIONS_SKIPPED.labels("no_receiver").inc()
            return
        quiet = recipient is not None and recipient.quiet is not None and item.severity != "critical" \
            and recipient.quiet.active(now)
        if quiet:
            return  # held: it joins the next notification after the quiet hours
        for name in names:
            receiver = self.config.receivers.get(name)
            rdict = recipient.to_dict() if recipient else None
            if receiver is None or not receiver.reaches(rdict):
                metrics.NOTIFICATIONS_SKIPPED.labels("no_address").inc()
                continue
            ref = recipient.ref if recipient else ""
            key = entry_key(group_key, name, ref)
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = Bucket(key, group_key, group_labels, route, name, recipient)
            bucket.firing[item.fingerprint] = item
            bucket.since = min(bucket.since, due)

    @staticmethod
    def _item(row: Snapshot, severity: str, level: int, status: str = "firing",
              owner_name: str | None = None) -> AlertItem:
        return AlertItem(
            fingerprint=row.fingerprint, rule=row.rule, entity=row.entity, key=row.key, status=status,
            state=row.state, severity=severity, title=row.title or "", summary=row.summary or "", owner=row.owner,
            labels=dict(row.labels or {}), starts_at=_iso(row.starts_at) or "",
            ends_at=_iso(row.resolved_at) if status == "resolved" else None, level=level, owner_name=owner_name,
            facts=dict(row.facts or {}),
        )

    def _escalated(self, session: Session, row: Snapshot, level: int, to: list[str], now: datetime) -> None:
        session.execute(update(AlertRow).where(AlertRow.fingerprint == row.fingerprint)
                        .values(escalation_level=level).execution_options(synchronize_session=False))
        self.store.record(session, [row.fingerprint], "escalated", "orderwatch", now,
                          {"level": level, "to": to, "reason": "not acknowledged in time"})
        metrics.ESCALATIONS.labels(str(level)).inc()

    # --- resolved alerts: tell whoever was told they fire ---------------------------

    def _resolved(self, rows: list[Snapshot], entries: dict[str, NflogRow], buckets: dict[str, Bucket],
                  now: datetime) -> None:
        resolved = {r.fingerprint: r for r in rows if r.state == "resolved"}
        if not resolved:
            return
        for entry in entries.values():
            gone = [fp for fp in entry.firing or () if fp in resolved]
            if not gone:
                continue
            bucket = buckets.get(entry.key) or self._bucket_of(entry)
            if bucket is None or self.muted(bucket.route, now):
                continue  # a muted route's resolutions are held too
            quiet = bucket.recipient is not None and bucket.recipient.quiet is not None \
                and bucket.recipient.quiet.active(now)
            for fp in gone:
                if quiet and resolved[fp].severity != "critical":
                    continue  # the good news can wait for the morning too
                person = self.config.directory.person(resolved[fp].owner)
                bucket.resolved[fp] = self._item(resolved[fp], resolved[fp].severity, 0, "resolved",
                                                 person.name if person else None)
            if bucket.firing or bucket.resolved:
                buckets[entry.key] = bucket

    def _bucket_of(self, entry: NflogRow) -> Bucket | None:
        """Rebuild a bucket from a notification log entry (its group has no firing alert now)."""
        route_id, _, labels = entry.group_key.partition("|")
        route = self.routes.get(route_id)
        if route is None or entry.receiver not in self.config.receivers:
            return None  # the configuration changed: nobody to tell any more
        recipient = None
        if entry.recipient:
            kind, _, ident = entry.recipient.partition(":")
            d = self.config.directory
            person, team = (d.people.get(ident), None) if kind == "person" else (None, d.teams.get(ident))
            recipient = person.recipient() if person else d.team_recipient(team) if team else None
            if recipient is None:
                return None
        return Bucket(entry.key, entry.group_key, json.loads(labels or "{}"), route, entry.receiver, recipient)

    # --- dedup against the notification log, then the outbox -------------------------

    def _flush(self, session: Session, rows: list[Snapshot], entries: dict[str, NflogRow],
               buckets: dict[str, Bucket], now: datetime, result: PassResult) -> None:
        live = {r.fingerprint for r in rows}
        notified: set[str] = set()
        undelivered = {entry_key(*k) for k in session.execute(
            select(OutboxRow.group_key, OutboxRow.receiver, OutboxRow.recipient).where(OutboxRow.status == "pending"))}
        for bucket in buckets.values():
            entry = entries.get(bucket.key)
            if self._due(bucket, entry, now, bucket.key in undelivered):
                self._enqueue(session, bucket, now)
                sent_resolved = set(bucket.resolved) if self.config.receivers[bucket.receiver].send_resolved else set()
                entry = self._log(session, entries, bucket, sorted(bucket.firing), sorted(sent_resolved), now)
                notified.update(bucket.firing)
                result.queued += 1
            elif entry is not None and bucket.resolved and not self.config.receivers[bucket.receiver].send_resolved:
                entry.firing = sorted(set(entry.firing) - set(bucket.resolved))  # told nothing, owed nothing
        for entry in list(entries.values()):
            kept = [fp for fp in entry.firing or () if fp in live]
            if kept != list(entry.firing or ()):
                entry.firing = kept  # alerts settled elsewhere
            if not kept and utc(entry.sent_at) < now - NFLOG_RETENTION:  # type: ignore[operator]
                session.delete(entry)
        if notified:
            session.execute(update(AlertRow)
                            .where(AlertRow.fingerprint.in_(sorted(notified)), AlertRow.notified_at.is_(None))
                            .values(notified_at=now).execution_options(synchronize_session=False))
        still_owed = {fp for e in entries.values() for fp in e.firing or ()}
        settled = [r.fingerprint for r in rows if r.state == "resolved" and r.fingerprint not in still_owed]
        if settled:
            session.execute(update(AlertRow).where(AlertRow.fingerprint.in_(settled), AlertRow.state == "resolved")
                            .values(dispatch_pending=False).execution_options(synchronize_session=False))
            result.settled = len(settled)

    def _due(self, bucket: Bucket, entry: NflogRow | None, now: datetime, undelivered: bool = False) -> bool:
        """Alertmanager's dedup: new alerts after group_wait/group_interval, else every repeat_interval
        (unless the last message is still in the outbox: it is the reminder, not one more behind it)."""
        route, firing = bucket.route, set(bucket.firing)
        if entry is None:
            return bool(firing) and now.timestamp() >= bucket.since + route.group_wait
        told = set(entry.firing or ())
        sent = (utc(entry.sent_at) or now).timestamp()
        resolved = set(bucket.resolved) & told
        if not self.config.receivers[bucket.receiver].send_resolved:
            resolved = set()
        if firing - told or resolved:
            waited = bucket.since + route.group_wait if firing - told else 0.0
            return now.timestamp() >= max(sent + route.group_interval, waited)
        return bool(firing) and not undelivered and now.timestamp() >= sent + route.repeat_interval

    def _enqueue(self, session: Session, bucket: Bucket, now: datetime) -> None:
        receiver = self.config.receivers[bucket.receiver]
        recipient = bucket.recipient
        resolved = sorted(bucket.resolved.values(), key=lambda a: (a.entity, a.key)) if receiver.send_resolved else []
        alerts = sorted(bucket.firing.values(), key=lambda a: (a.starts_at, a.entity, a.key)) + resolved
        firing_levels = [a.level for a in bucket.firing.values()]
        n = Notification(
            receiver=bucket.receiver, group_key=bucket.group_key, group_labels=bucket.group_labels,
            recipient=recipient.to_dict() if recipient else None,
            language=recipient.language if recipient else self.config.language,
            timezone=recipient.timezone if recipient else self.config.timezone,
            level=min(firing_levels) if firing_levels else 0, alerts=alerts, created_at=now.isoformat(),
            external_url=self.config.external_url,
        )
        fps = [a.fingerprint for a in alerts]
        session.add(OutboxRow(created_at=now, receiver=bucket.receiver, recipient=recipient.ref if recipient else "",
                              group_key=bucket.group_key, payload=json.dumps(n.to_dict(), ensure_ascii=False),
                              fingerprints=fps, status="pending", attempts=0, next_attempt_at=now))
        session.execute(update(AlertRow).where(AlertRow.fingerprint.in_(fps), AlertRow.delivery != "failing")
                        .values(delivery="pending").execution_options(synchronize_session=False))
        metrics.NOTIFICATIONS_QUEUED.labels(bucket.receiver).inc()

    @staticmethod
    def _log(session: Session, entries: dict[str, NflogRow], bucket: Bucket, firing: list[str],
             resolved: list[str], now: datetime) -> NflogRow:
        entry = entries.get(bucket.key)
        if entry is None:
            entry = entries[bucket.key] = NflogRow(
                key=bucket.key, group_key=bucket.group_key, receiver=bucket.receiver,
                recipient=bucket.recipient.ref if bucket.recipient else "", firing=firing, resolved=resolved,
                sent_at=now)
            session.add(entry)
        else:
            entry.firing, entry.resolved, entry.sent_at = firing, resolved, now
        return entry

    # --- metrics ------------------------------------------------------------------

    def _observe_acks(self, session: Session) -> None:
        """Time to acknowledge, for acknowledgements made since the last pass (by anyone, anywhere)."""
        top = session.scalar(select(func.max(HistoryRow.id))) or 0
        if self._ack_mark is None:
            self._ack_mark = top  # acknowledgements before this worker started were counted elsewhere
            return
        query = (select(HistoryRow.at, AlertRow.starts_at).join(AlertRow, AlertRow.fingerprint == HistoryRow.fingerprint)
                 .where(HistoryRow.id > self._ack_mark, HistoryRow.id <= top, HistoryRow.state == "acknowledged"))
        for at, starts in session.execute(query):
            metrics.ACK_SECONDS.observe(max(0.0, ((utc(at) or at) - (utc(starts) or starts)).total_seconds()))
        self._ack_mark = top

    @staticmethod
    def _gauges(rows: list[Snapshot], directory: Directory) -> None:
        counts: dict[tuple[str, str, str, str], int] = {}
        for r in rows:
            if r.state in OPEN_STATES:
                owner = directory.canonical(r.owner) or ""  # one person, however the ERP wrote them
                k = ((r.labels or {}).get("family", ""), r.severity, owner, r.state)
                counts[k] = counts.get(k, 0) + 1
        metrics.ALERTS_OPEN.clear()
        for labels, value in counts.items():
            metrics.ALERTS_OPEN.labels(*labels).set(value)


def prune(session: Session, before: datetime) -> int:
    """Forget delivered (or cancelled) outbox rows older than `before` (their history entries stay)."""
    result = session.execute(delete(OutboxRow).where(OutboxRow.status.in_(("sent", "cancelled")),
                                                     OutboxRow.sent_at < before))
    return int(getattr(result, "rowcount", 0) or 0)

