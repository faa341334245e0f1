"""A crash while the outbox sends: nothing is lost, and at most the messages in flight are sent twice.

A sending process (tests/outbox_sender.py, the Deliverer's public API) works
through 40 queued notifications to a real local webhook that answers the
first 12 and then holds every request. With `concurrency: 4`, four messages
are in flight when the process is SIGKILLed. After a restart every message
arrives; the only copies are those four.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.config import load_alerts_config
from alerts.deliver import Deliverer
from alerts.dispatch import Dispatcher
from alerts.schema import OutboxRow
from alerts.store import AlertStore
from tests.alerts_helpers import BACKENDS, Clock, database, event
from tests.conftest import wait_for
from tests.notify_servers import HttpRecorderThread

MESSAGES = 40
CONCURRENCY = 4
ANSWERED = 12  # the endpoint answers these, then holds the next ones until the crash


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.integration) if b != "sqlite" else b for b in BACKENDS])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


def _keys(requests: list) -> Counter[str]:
    return Counter(a["labels"]["key"] for r in requests for a in r.json()["alerts"])


def test_a_crash_mid_delivery_loses_nothing_and_repeats_only_what_was_in_flight(
        tmp_path: Path, store_url: str) -> None:
    with HttpRecorderThread(hold_after=ANSWERED) as server:
        alerts = tmp_path / "alerts.yaml"
        alerts.write_text(f"""
receivers: [{{name: hook, type: webhook, url: '{server.url}/hook', timeout: 30s}}]
route: {{receivers: [hook], group_by: [key], group_wait: 0s}}
delivery: {{concurrency: {CONCURRENCY}, retry_initial: 10s}}
""", encoding="utf-8")
        config = load_alerts_config(alerts)
        store = AlertStore(store_url)
        now = time.time()
        store.apply([event(f"PO-{i:03d}", at=now - 60) for i in range(MESSAGES)])
        assert Dispatcher(config, store, Clock(now)).run_once().queued == MESSAGES

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get("PYTHONPATH", "")])}
        sender = subprocess.Popen([sys.executable, "-m", "tests.outbox_sender", str(alerts), store_url], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(server.requests) >= ANSWERED + CONCURRENCY or sender.poll() is not None, 60,
                     "the endpoint to hold a full set of messages in flight")
            assert sender.poll() is None, sender.communicate()[0].decode(errors="replace")
        finally:
            sender.send_signal(signal.SIGKILL)
            sender.wait()
        received_before = len(server.requests)
        server.release()

        # The restart: a new process, after the claims of the dead one have expired.
        async def restart() -> None:
            deliverer = Deliverer(config, store, Clock(time.time() + 3600))
            try:
                for _ in range(5):
                    await deliverer.run_once()
            finally:
                await deliverer.close()

        asyncio.run(restart())
        seen = _keys(server.requests)
        assert sorted(seen) == sorted(f"PO-{i:03d}" for i in range(MESSAGES)), "a message was lost"
        repeated = sum(n - 1 for n in seen.values())
        assert repeated <= CONCURRENCY, f"{repeated} messages sent twice (at most {CONCURRENCY} were in flight)"
        assert received_before == ANSWERED + CONCURRENCY
        with Session(store.engine) as session:
            statuses = dict(session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all())
        assert statuses == {"sent": MESSAGES}
        store.close()
