"""The outbox: send queued notifications, retry failures with backoff, record what happened.

A notification stays in `ow_outbox` until its endpoint accepts it. A failed
attempt is retried after retry_initial, doubling up to retry_max; after
`failing_after` attempts its alerts show delivery "failing" (in the CLI, the
API and the history); after `give_up_after` it is marked dead and kept for
inspection, never silently dropped. Each row is claimed before sending (its
next attempt moved past the send timeout) so that two workers never send it
twice. Rows are claimed only as sending slots free up (at most `concurrency`
are claimed and unrecorded at any time) and each delivery is recorded in a
short transaction as soon as its endpoint answers, so a crash can repeat only
the messages in flight (at most `concurrency`): email carries a stable
Message-ID and webhooks an Idempotency-Key, so receivers can recognise them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import Text, cast, func, or_, select, update
from sqlalchemy.orm import Session

from alerts import metrics
from alerts.clock import Clock, now_of
from alerts.config import AlertsConfig
from alerts.dispatch import prune
from alerts.message import Notification
from alerts.notify import DeliveryError, SendContext
from alerts.schema import AlertRow, OutboxRow
from alerts.store import AlertStore, utc
from alerts.template import Renderer
from console.links import notification_linker

log = logging.getLogger(__name__)
KEEP_SENT = timedelta(days=7)


@dataclass
class Attempt:
    id: int
    notification: Notification
    attempts: int
    created_at: datetime
    error: str | None = None
    retry_after: float | None = None  # what the endpoint asked for (HTTP 429/503 Retry-After)


class Deliverer:
    def __init__(self, config: AlertsConfig, store: AlertStore, clock: Clock = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.renderer = Renderer(config.templates, clock, notification_linker(config, clock))
        self._http: aiohttp.ClientSession | None = None
        self._last_prune = 0.0
        self._unrecorded: list[tuple[Attempt, asyncio.Future[None]]] = []  # answered, not yet written
        self._writer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def backoff(self, attempts: int) -> float:
        d = self.config.delivery
        return float(min(d.retry_max, d.retry_initial * (2 ** max(0, attempts - 1))))

    async def run_once(self) -> tuple[int, int]:
        """Send the due notifications (at most concurrency x 8 per pass); return (sent, failed).

        A slot that frees up claims the next due row, so every claimed row is being sent; each
        one is recorded as soon as its endpoint answered. Cancelled (the worker stops), the
        sends in flight are abandoned: their rows stay claimed and are sent again after the lease.
        """
        concurrency = self.config.delivery.concurrency
        budget = concurrency * 8  # a pass ends even while new notifications keep coming
        in_flight: set[asyncio.Task[bool]] = set()
        sent = failed = 0
        exhausted = False
        try:
            while True:
                free = min(concurrency - len(in_flight), budget)
                if free > 0 and not exhausted:
                    batch, selected = await asyncio.to_thread(self._claim, now_of(self.clock), free)
                    budget -= selected
                    exhausted = selected < free
                    if batch and self._http is None:
                        self._http = aiohttp.ClientSession()
                    for attempt in batch:
                        in_flight.add(asyncio.create_task(self._deliver(attempt)))
                if not in_flight:
                    break
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.result():
                        sent += 1
                    else:
                        failed += 1
        finally:
            for task in in_flight:  # only when cancelled or a record failed: the rest is abandoned
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            writer, self._writer = self._writer, None
            if writer is not None and not writer.done():  # what was answered is still written down
                await asyncio.gather(writer, return_exceptions=True)
        await asyncio.to_thread(self._housekeeping, now_of(self.clock))
        return sent, failed

    async def _deliver(self, attempt: Attempt) -> bool:
        """Send one claimed notification and record the outcome at once; True if it was accepted.

        The slot is free again only once the outcome is committed: claimed and unrecorded rows,
        what a crash can repeat, never number more than `concurrency`.
        """
        assert self._http is not None
        await self._send(attempt, SendContext(self._http, self.renderer, self.clock))
        recorded = asyncio.get_running_loop().create_future()
        self._unrecorded.append((attempt, recorded))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await recorded
        return attempt.error is None

    async def _write(self) -> None:
        """Record answered deliveries, each as soon as possible: one short transaction for those that
        were answered while the previous one was being written (one commit each under light load)."""
        while self._unrecorded:
            batch, self._unrecorded = self._unrecorded, []
            try:
                await asyncio.to_thread(self._record, [a for a, _ in batch], now_of(self.clock))
            except Exception as exc:  # noqa: BLE001 - handed to each waiting delivery
                for _, recorded in batch:
                    if not recorded.done():
                        recorded.set_exception(exc)
            else:
                for _, recorded in batch:
                    if not recorded.done():
                        recorded.set_result(None)

    def _claim(self, now: datetime, limit: int) -> tuple[list[Attempt], int]:
        """Claim up to `limit` due rows; return those to send and how many due rows were looked at."""
        d = self.config.delivery
        lease = now + timedelta(seconds=max(60.0, 3 * max((r.timeout for r in self.config.receivers.values()),
                                                          default=10.0)))
        out: list[Attempt] = []
        with Session(self.store.engine) as session, session.begin():
            rows = list(session.scalars(select(OutboxRow).where(OutboxRow.status == "pending",
                                                                OutboxRow.next_attempt_at <= now)
                                        .order_by(OutboxRow.id).limit(limit)
                                        .with_for_update(skip_locked=True)))
            notifications = {row.id: Notification.from_dict(json.loads(row.payload), row.id) for row in rows}
            states = dict(session.execute(select(AlertRow.fingerprint, AlertRow.state).where(
                AlertRow.fingerprint.in_({a.fingerprint for n in notifications.values() for a in n.alerts}))).all())
            cancelled: set[str] = set()
            for row in rows:
                n = notifications[row.id]
                if n.firing and not n.resolved and all(states.get(a.fingerprint) != "firing" for a in n.firing):
                    cancelled.update(self._cancel(session, row, n, states, now))
                    continue
                if row.receiver not in self.config.receivers:
                    row.last_error = f"receiver {row.receiver!r} is no longer configured"
                    row.next_attempt_at = now + timedelta(seconds=d.retry_max)
                    continue
                row.next_attempt_at = lease  # claimed: nobody else picks it up meanwhile
                out.append(Attempt(row.id, n, row.attempts, utc(row.created_at) or row.created_at))
            self._delivery_status(session, cancelled)
        return out, len(rows)

    def _cancel(self, session: Session, row: OutboxRow, n: Notification, states: dict[str, str],
                now: datetime) -> list[str]:
        """A message still waiting (an endpoint was down) about alerts that have all been acknowledged,
        silenced or resolved since: sending it now would only call for what is already taken care of."""
        row.status, row.sent_at = "cancelled", now
        fps = [a.fingerprint for a in n.alerts]
        detail = {"receiver": n.receiver, "recipient": (n.recipient or {}).get("id", ""), "notification": row.id,
                  "level": n.level, "reason": ", ".join(sorted({states.get(fp, "gone") for fp in fps}))}
        self.store.record(session, fps, "notify_cancelled", n.receiver, now, detail)
        return fps

    async def _send(self, attempt: Attempt, ctx: SendContext) -> None:
        receiver = self.config.receivers[attempt.notification.receiver]
        started = time.perf_counter()
        try:
            await asyncio.wait_for(receiver.send(attempt.notification, ctx), receiver.timeout + 5)
        except DeliveryError as exc:
            attempt.error = str(exc)
            attempt.retry_after = exc.retry_after
        except TimeoutError:
            attempt.error = f"no answer within {receiver.timeout:.0f}s"
        except Exception as exc:  # a bug in one integration must not stop the others
            log.exception("receiver %s failed", receiver.name)
            attempt.error = f"{type(exc).__name__}: {exc}"
        metrics.DELIVERY_SECONDS.labels(receiver.type).observe(time.perf_counter() - started)
        if attempt.error:
            metrics.NOTIFICATIONS_FAILED.labels(receiver.name, receiver.type).inc()
            log.warning("notification %s to %s failed (attempt %d): %s", attempt.id, receiver.name,
                        attempt.attempts + 1, attempt.error)
        else:
            metrics.NOTIFICATIONS_SENT.labels(receiver.name, receiver.type).inc()

    def _record(self, batch: list[Attempt], now: datetime) -> None:
        d = self.config.delivery
        affected: set[str] = set()
        with Session(self.store.engine) as session, session.begin():
            for a in batch:
                n = a.notification
                fps = [x.fingerprint for x in n.alerts]
                affected.update(fps)
                who = (n.recipient or {}).get("id", "")
                detail = {"receiver": n.receiver, "recipient": who, "notification": a.id, "level": n.level,
                          "status": {x.fingerprint: x.status for x in n.alerts}}
                attempts = a.attempts + 1
                if a.error is None:
                    session.execute(update(OutboxRow).where(OutboxRow.id == a.id).values(
                        status="sent", sent_at=now, attempts=attempts, last_error=None))
                    self.store.record(session, fps, "notified", n.receiver, now, detail)
                    continue
                dead = now - a.created_at >= timedelta(seconds=d.give_up_after)
                # A rate-limited endpoint's Retry-After is honoured, still no longer than retry_max.
                delay = min(d.retry_max, max(self.backoff(attempts), a.retry_after or 0.0))
                session.execute(update(OutboxRow).where(OutboxRow.id == a.id).values(
                    status="dead" if dead else "pending", attempts=attempts, last_error=a.error[:2000],
                    next_attempt_at=now + timedelta(seconds=delay)))
                if attempts == d.failing_after or dead:
                    self.store.record(session, fps, "notify_failed", n.receiver, now,
                                      {**detail, "attempts": attempts, "error": a.error[:500], "gave_up": dead})
            self._delivery_status(session, affected)

    def _delivery_status(self, session: Session, fingerprints: set[str]) -> None:
        """Per alert: failing if any of its notifications keeps failing, pending if any waits, else sent."""
        if not fingerprints:
            return
        failing_after = self.config.delivery.failing_after
        status = {fp: "sent" for fp in fingerprints}
        errors: dict[str, str] = {}
        query = select(OutboxRow.fingerprints, OutboxRow.status, OutboxRow.attempts,
                       OutboxRow.last_error).where(OutboxRow.status.in_(("pending", "dead")))
        if len(fingerprints) <= 50:
            # Each delivery is recorded on its own: let the database skip the rows that cannot name
            # these alerts (the JSON text holds each fingerprint verbatim) rather than decode every
            # waiting row per delivery. The exact check stays below.
            text = cast(OutboxRow.fingerprints, Text)
            query = query.where(or_(*(text.contains(fp, autoescape=True) for fp in sorted(fingerprints))))
        rows = session.execute(query)
        for fps, state, attempts, error in rows:
            for fp in set(fps or ()) & fingerprints:
                if state == "dead" or attempts >= failing_after:
                    status[fp] = "failing"
                    errors[fp] = error or ""
                elif status[fp] != "failing":
                    status[fp] = "pending"
        for value in ("sent", "pending"):
            self.store.set_delivery(session, [fp for fp, s in status.items() if s == value], value, None)
        for fp in (fp for fp, s in status.items() if s == "failing"):
            self.store.set_delivery(session, [fp], "failing", errors.get(fp))

    def _housekeeping(self, now: datetime) -> None:
        pending = self.store_counts()
        metrics.OUTBOX_PENDING.clear()
        for receiver, count in pending["pending"].items():
            metrics.OUTBOX_PENDING.labels(receiver).set(count)
        metrics.OUTBOX_DEAD.set(sum(pending["dead"].values()))
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            with Session(self.store.engine) as session, session.begin():
                prune(session, now - KEEP_SENT)

    def store_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"pending": {}, "dead": {}}
        with Session(self.store.engine) as session:
            query = (select(OutboxRow.status, OutboxRow.receiver, func.count())
                     .where(OutboxRow.status.in_(("pending", "dead"))).group_by(OutboxRow.status, OutboxRow.receiver))
            for status, receiver, count in session.execute(query):
                out[status][receiver] = count
        return out
