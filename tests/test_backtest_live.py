"""`backtest` over the demo history gives the same alerts as the live pipeline on the same records.

The live side is a real worker on the embedded broker, fed with `orderwatch produce`;
the offline side is `orderwatch backtest --to now` on the same file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from tests.conftest import ORDERWATCH, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]


def firing_at_end(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    state: dict[tuple[str, str, str], str] = {}
    for e in events:
        state[(e["rule"], e["entity"], e["key"])] = e["state"]
    return {k for k, s in state.items() if s == "firing"}


@pytest.mark.parametrize("n_workers", [1, 2], ids=["one-worker", "two-workers"])
def test_backtest_gives_the_live_pipelines_alerts_on_the_demo_history(workers: Any, broker: Any, app_id: str,
                                                                     tmp_path: Path, n_workers: int) -> None:
    history = tmp_path / "demo.jsonl"
    subprocess.run([sys.executable, "-m", "orderwatch.demo", "history", str(history)], check=True, cwd=REPO)
    records = len(history.read_text(encoding="utf-8").splitlines())

    group = workers(n_workers)
    for worker in group:
        worker.wait_ready()
    if n_workers > 1:
        # Each owns part of the changes topic and, co-partitioned with it, of the derived topic.
        wait_for(lambda: all(len((w.status() or {}).get("partitions") or []) < 4 for w in group),
                 60, "the group to split the partitions")
    produce = subprocess.run(ORDERWATCH + ["produce", str(history), "--broker", broker.url, "--app-id", app_id],
                             capture_output=True, text=True, timeout=120, check=False)
    assert produce.returncode == 0, produce.stderr
    wait_for(lambda: sum((w.status() or {}).get("records", 0) for w in group) == records, 60,
             "the workers to process the history")
    store = AlertStore(workers.store)

    def live() -> set[tuple[str, str, str]]:
        return {(a.rule, a.entity, a.key) for a in store.list(state="firing")}

    # Settled: the same set twice, a few ticks apart.
    previous: set[tuple[str, str, str]] | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = live()
        if current and current == previous:
            break
        previous = current
        time.sleep(3)
    live_firing = live()
    store.close()

    res = subprocess.run(CLI + ["backtest", "--input", str(history), "--to", "now", "--format", "json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert res.returncode == 0, res.stderr
    offline = firing_at_end([json.loads(line) for line in res.stdout.splitlines()])

    # Derived entities included: the worker folds stock and customer accounts from the repartition topic.
    assert live_firing == offline
    assert {a[1] for a in offline} >= {"purchase_order", "sales_order", "invoice", "stock", "customer_account"}
    assert len(offline) >= 15
