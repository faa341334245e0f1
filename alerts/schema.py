"""The alert store's tables (schema version 2). Changes go through alerts/migrations.py.

    ow_meta            schema_version
    ow_alerts          one row per fingerprint: state, owner, labels, ack, silence, escalation, delivery
    ow_alert_history   every transition and notification of an alert: what, when, who, comment
    ow_silences        matchers, start/end, author, comment
    ow_nflog           the notification log: what each (group, receiver, recipient) was last told
    ow_outbox          notifications to deliver, with attempts and errors (nothing lost on a crash)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alerts.states import OPEN_STATES, STATES  # noqa: F401  (re-exported)

SCHEMA_VERSION = 3


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
    # --- version 2 ---
    acked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ack_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    silenced_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    delivery: Mapped[str] = mapped_column(String(16), default="", server_default=text("''"))
    delivery_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The rule's escalation steps ({after_seconds, severity?, notify?}); none: the route's steps apply.
    escalate: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    # A resolved alert whose resolution may still have to be told to someone.
    dispatch_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The rule's texts by language and the values they name (orderwatch/alert.py): messages are
    # rendered from these when sent, in each reader's language.
    facts: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)


class HistoryRow(Base):
    __tablename__ = "ow_alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(ForeignKey("ow_alerts.fingerprint"), index=True)
    # firing, resolved, acknowledged, silenced, unsilenced, escalated, notified, notify_failed
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200), default="engine")
    detail: Mapped[str] = mapped_column(Text, default="")
    # --- version 2 ---
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class MetaRow(Base):
    __tablename__ = "ow_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SilenceRow(Base):
    __tablename__ = "ow_silences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    matchers: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NflogRow(Base):
    __tablename__ = "ow_nflog"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha1 of group|receiver|recipient
    group_key: Mapped[str] = mapped_column(Text)
    receiver: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(200), default="")
    firing: Mapped[list[str]] = mapped_column(JSON, default=list)
    resolved: Mapped[list[str]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxRow(Base):
    __tablename__ = "ow_outbox"
    __table_args__ = (Index("ix_ow_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    receiver: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(200), default="")
    group_key: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # the Notification as JSON
    fingerprints: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, dead, cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
