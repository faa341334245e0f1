"""Helpers shared by the alert-layer tests: events, configs from YAML text, a movable clock."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alerts.config import AlertsConfig, parse_config
from alerts.deliver import Deliverer
from alerts.dispatch import Dispatcher, PassResult
from alerts.store import AlertStore
from orderwatch.alert import AlertEvent
from orderwatch.yamlsrc import load_text
from tests.dbservers import server_url, unique_name

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC).timestamp()  # Monday 09:00 in Shanghai
HOUR = 3600.0
DAY = 86400.0


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def config(text: str, base: Path | None = None, name: str = "alerts.yaml") -> AlertsConfig:
    return parse_config(load_text(textwrap.dedent(text), name), name, base or Path("."))


def event(key: str = "PO-1", state: str = "firing", *, at: float = T0, since: float | None = None,
          owner: str | None = "li.wei", severity: str = "warning", rule: str = "po-delivery-overdue",
          labels: dict[str, str] | None = None, escalate: tuple[dict[str, Any], ...] = ()) -> AlertEvent:
    return AlertEvent(
        rule=rule, entity="purchase_order", key=key, state=state,  # type: ignore[arg-type]
        at=datetime.fromtimestamp(at, UTC), since=datetime.fromtimestamp(since or at, UTC),
        severity=severity, title="采购到货逾期 / PO delivery overdue", summary=f"PO {key} is 9 days late",
        owner=owner, labels={"family": "delay", "supplier": "Acme Bearings", **(labels or {})},
        escalate=escalate,
    )


class Pipeline:
    """Store + dispatcher + outbox on one clock: `step(seconds)` moves time and runs one pass."""

    def __init__(self, cfg: AlertsConfig, store: AlertStore, clock: Clock) -> None:
        self.config, self.store, self.clock = cfg, store, clock
        self.dispatcher = Dispatcher(cfg, store, clock)
        self.deliverer = Deliverer(cfg, store, clock)

    def step(self, seconds: float = 0.0) -> PassResult:
        self.clock.advance(seconds)
        result = self.dispatcher.run_once()
        asyncio.run(self._deliver())
        return result

    async def _deliver(self) -> None:
        try:
            await self.deliverer.run_once()
        finally:
            await self.deliverer.close()


def alerts_cli() -> list[str]:
    """The command that runs `alerts …` verbs, as a user runs it."""
    import sys

    return [sys.executable, "-m", "orderwatch"]


BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema on the PostgreSQL server
    (skipped off CI when the server is not there, failed on CI: tests/dbservers.py)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.sqlite'}"
        return
    base = server_url("postgresql")
    schema = unique_name("ow_test")
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
