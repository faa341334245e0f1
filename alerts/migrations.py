"""Versioned schema migrations of the alert store, run when a store is opened.

`ow_meta.schema_version` says which version a database holds. A fresh
database gets the current schema in one go; an older one is upgraded step by
step, each step in the same transaction as the version bump (PostgreSQL's
DDL is transactional; SQLite's is too, and the store begins SQLite transactions
with BEGIN IMMEDIATE). Workers that
start together serialise on a lock, so one migrates and the others see the
result. A database newer than this code is refused, never downgraded.

Each step freezes its own DDL (it must keep producing the same schema after
alerts/schema.py moves on); tests check that an upgraded v1 store and a
fresh store end up with the same tables and columns.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine

from alerts.schema import SCHEMA_VERSION, Base


class SchemaTooNew(RuntimeError):
    """The database was written by a newer orderwatch."""


def _add_columns(conn: Connection, table: str, columns: list[tuple[str, str]]) -> None:
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, ddl in columns:
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")


def _v2(conn: Connection) -> None:
    """Acknowledgement, silences, escalation and delivery state; the notification log and outbox."""
    ts = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    _add_columns(conn, "ow_alerts", [
        ("acked_by", "VARCHAR(200)"), ("acked_at", ts), ("ack_comment", "TEXT"),
        ("resolved_by", "VARCHAR(200)"), ("silenced_by", "VARCHAR(64)"),
        ("escalation_level", "INTEGER DEFAULT 0 NOT NULL"), ("delivery", "VARCHAR(16) DEFAULT '' NOT NULL"),
        ("delivery_error", "TEXT"), ("notified_at", ts), ("escalate", "JSON"),
        ("dispatch_pending", "BOOLEAN DEFAULT false NOT NULL"),
    ])
    _add_columns(conn, "ow_alert_history", [("comment", "TEXT")])
    md = MetaData()
    Table("ow_silences", md,
          Column("id", String(36), primary_key=True), Column("matchers", JSON, nullable=False),
          Column("starts_at", DateTime(timezone=True), nullable=False),
          Column("ends_at", DateTime(timezone=True), nullable=False, index=True),
          Column("created_by", String(200), nullable=False), Column("comment", Text, nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          Column("updated_at", DateTime(timezone=True), nullable=False))
    Table("ow_nflog", md,
          Column("key", String(64), primary_key=True), Column("group_key", Text, nullable=False),
          Column("receiver", String(200), nullable=False), Column("recipient", String(200), nullable=False),
          Column("firing", JSON, nullable=False), Column("resolved", JSON, nullable=False),
          Column("sent_at", DateTime(timezone=True), nullable=False))
    outbox = Table("ow_outbox", md,
                   Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("created_at", DateTime(timezone=True), nullable=False),
                   Column("receiver", String(200), nullable=False), Column("recipient", String(200), nullable=False),
                   Column("group_key", Text, nullable=False), Column("payload", Text, nullable=False),
                   Column("fingerprints", JSON, nullable=False), Column("status", String(16), nullable=False),
                   Column("attempts", Integer, nullable=False),
                   Column("next_attempt_at", DateTime(timezone=True), nullable=False),
                   Column("last_error", Text), Column("sent_at", DateTime(timezone=True)))
    Index("ix_ow_outbox_due", outbox.c.status, outbox.c.next_attempt_at)
    md.create_all(conn)


def _v3(conn: Connection) -> None:
    """An alert's facts (the rule's texts by language and their values), for messages rendered when sent."""
    _add_columns(conn, "ow_alerts", [("facts", "JSON")])


#: version → the step that upgrades a database from version - 1.
STEPS: dict[int, Callable[[Connection], None]] = {2: _v2, 3: _v3}
assert max(STEPS) == SCHEMA_VERSION, "a schema change needs its migration step"


def _lock(conn: Connection) -> None:
    """Serialise migrations between processes opening the same store."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4711000001)")
    # SQLite: the store's engine begins every transaction with BEGIN IMMEDIATE (alerts/store.py).


def current_version(conn: Connection) -> int | None:
    """The stored schema version; None for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "ow_meta" not in tables:
        return 1 if "ow_alerts" in tables else None
    row = conn.execute(text("SELECT value FROM ow_meta WHERE name = 'schema_version'")).first()
    return int(row[0]) if row else (1 if "ow_alerts" in tables else None)


def migrate(engine: Engine) -> tuple[int | None, int]:
    """Bring the database to SCHEMA_VERSION; return (version found, version now)."""
    with engine.connect() as conn:
        _lock(conn)
        found = current_version(conn)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaTooNew(f"the alert store has schema version {found}; this orderwatch knows up to "
                               f"{SCHEMA_VERSION}: upgrade orderwatch")
        if found is None:
            Base.metadata.create_all(conn)
        else:
            for version in range(found + 1, SCHEMA_VERSION + 1):
                STEPS[version](conn)
        if found != SCHEMA_VERSION:
            _set_version(conn, found)
        conn.commit()
    return found, SCHEMA_VERSION


def _set_version(conn: Connection, found: int | None) -> None:
    if "ow_meta" not in inspect(conn).get_table_names():
        Base.metadata.tables["ow_meta"].create(conn)
    updated = conn.execute(text("UPDATE ow_meta SET value = :v WHERE name = 'schema_version'"),
                           {"v": str(SCHEMA_VERSION)})
    if updated.rowcount == 0:
        conn.execute(text("INSERT INTO ow_meta (name, value) VALUES ('schema_version', :v)"),
                     {"v": str(SCHEMA_VERSION)})
