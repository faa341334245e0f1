"""Acceptance 4: the embedded broker restarts empty under a running setup (or between runs).

A broker (`orderwatch broker --port N`), a worker and an sql connector on a
SQLite ERP run as real processes. Three purchase orders are overdue, and a
fourth has two lines short-received past their dates (a per-line rule: alerts
`PO-5#1`, `PO-5#2`); one order alert and one line alert are acknowledged. The
broker is stopped, one PO and one line are received in the ERP while it is
down, and the broker starts again on the same port, empty. Afterwards the
restart has been reported (log line and metric), the worker holds the ERP's
orders again, and the alerts are those of an uninterrupted run: the same
fingerprints, the acknowledged ones still acknowledged in the same episode,
the received PO's and the received line's alerts resolved.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.store import AlertStore
from orderwatch.broker import free_port
from tests.conftest import get_json, wait_for, with_api_token

pytestmark = pytest.mark.integration
ORDERWATCH = [sys.executable, "-m", "orderwatch"]
REPO = Path(__file__).resolve().parent.parent
RULES = [REPO / "rules" / "delays.yaml", REPO / "examples" / "rules"]  # the latter: po-line-short-received


class Setup:
    """The processes of one setup, each restartable, all stopped at the end whatever happens."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.web, self.metrics = free_port(), free_port(), free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.erp = tmp / "erp.sqlite"
        self.store_url = f"sqlite:///{tmp / 'alerts.sqlite'}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = with_api_token(tmp, {**os.environ, "ORDERWATCH_BROKER_CHECK_SECONDS": "1"})
        con = sqlite3.connect(self.erp)
        con.execute("CREATE TABLE po (po_number TEXT PRIMARY KEY, supplier_name TEXT, buyer TEXT, status TEXT, "
                    "expected_date TEXT, updated_at TEXT)")
        con.executemany("INSERT INTO po VALUES (?, 'ACME', 'alice', 'open', ?, ?)", [
            ("PO-1", "2020-01-01", "2024-01-01 00:00:01"),
            ("PO-2", "2020-01-01", "2024-01-01 00:00:02"),
            ("PO-3", "2020-01-01", "2024-01-01 00:00:03"),
            ("PO-4", "2999-01-01", "2024-01-01 00:00:04"),  # not due: no alert
            ("PO-5", None, "2024-01-01 00:00:05"),  # its lines have their own dates
        ])
        con.execute("CREATE TABLE po_line (po_number TEXT, line_no INTEGER, sku TEXT, qty REAL, received_qty REAL, "
                    "expected_date TEXT)")
        con.executemany("INSERT INTO po_line VALUES ('PO-5', ?, ?, ?, ?, '2020-01-01')", [
            (1, "NUT", 200, 50), (2, "BOLT", 100, 10),
        ])
        con.commit()
        con.close()
        (tmp / "connectors.yaml").write_text(f"""connectors:
  - id: erp
    type: sql
    url: sqlite:///{self.erp}
    entity: purchase_order
    table: po
    key: po_number
    cursor: updated_at
    fields:
      supplier: supplier_name
      buyer: buyer
      status: status
      expected_date: {{column: expected_date, type: date}}
    lines:
      table: po_line
      parent: po_number
      order_by: [line_no]
      fields:
        line_no: {{column: line_no, type: integer}}
        sku: sku
        qty: {{column: qty, type: number}}
        received_qty: {{column: received_qty, type: number}}
        expected_date: {{column: expected_date, type: date}}
""")

    def start(self, name: str) -> None:
        args = {
            "broker": ["broker", "--port", str(self.port)],
            "worker": ["worker", "--broker", self.url, "--app-id", "rs", "--datadir", str(self.tmp / "worker"),
                       "--web-port", str(self.web), "--store", self.store_url, "--tick", "1",
                       *(arg for rules in RULES for arg in ("--rules", str(rules)))],
            "connectors": ["connectors", "run", str(self.tmp / "connectors.yaml"), "--broker", self.url,
                           "--app-id", "rs", "--datadir", str(self.tmp / "connectors"), "--interval", "0.5",
                           "--metrics-port", str(self.metrics)],
        }[name]
        runs = self.log(name).count("listening")
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(ORDERWATCH + args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        if name == "broker":
            wait_for(lambda: self.log("broker").count("listening") > runs, 20, "the broker")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{self.log(name)[-3000:]}"

    def status(self) -> dict[str, object] | None:
        try:
            return get_json(f"http://127.0.0.1:{self.web}/api/status")
        except OSError:
            return None

    def metric(self, port: int, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return -1.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))

    def alerts(self) -> dict[str, tuple[str, str, object, str | None]]:
        store = AlertStore(self.store_url)
        try:
            return {a.key: (a.fingerprint, a.state, a.starts_at, a.acked_by) for a in store.list()}
        finally:
            store.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        for name in ("connectors", "worker", "broker"):
            s.stop(name)


def receive(erp: Path, po: str) -> None:
    con = sqlite3.connect(erp)
    con.execute("UPDATE po SET status = 'received', updated_at = '2024-02-01 00:00:00' WHERE po_number = ?", (po,))
    con.commit()
    con.close()


def receive_line(erp: Path, po: str, line_no: int) -> None:
    """The rest of a line arrives; the order's cursor moves with it (as the presets' do)."""
    con = sqlite3.connect(erp)
    con.execute("UPDATE po_line SET received_qty = qty WHERE po_number = ? AND line_no = ?", (po, line_no))
    con.execute("UPDATE po SET updated_at = '2024-02-01 00:00:01' WHERE po_number = ?", (po,))
    con.commit()
    con.close()


@pytest.mark.parametrize("how", ["under-running-processes", "everything-restarted"])
def test_a_broker_restart_is_reported_and_repaired(setup: Setup, how: str) -> None:
    for name in ("broker", "worker", "connectors"):
        setup.start(name)

    def firing() -> bool:
        setup.alive()
        alerts = setup.alerts()
        return sorted(k for k, a in alerts.items() if a[1] == "firing") == ["PO-1", "PO-2", "PO-3", "PO-5#1",
                                                                           "PO-5#2"]

    wait_for(firing, 90, "three overdue POs and two short lines of PO-5 firing")
    store = AlertStore(setup.store_url)
    try:
        assert store.acknowledge([setup.alerts()["PO-1"][0]], "bob", "chasing the supplier")
        assert store.acknowledge([setup.alerts()["PO-5#1"][0]], "bob", "the nuts come next week")
    finally:
        store.close()
    before = setup.alerts()

    if how == "everything-restarted":
        setup.stop("connectors")
        setup.stop("worker")
    setup.stop("broker")
    receive(setup.erp, "PO-2")  # while the broker is down
    receive_line(setup.erp, "PO-5", 2)
    setup.start("broker")
    if how == "everything-restarted":
        setup.start("worker")
        setup.start("connectors")

    def repaired() -> bool:
        setup.alive()
        st = setup.status()
        alerts = setup.alerts()
        return bool(st and st["entities"] == 5 and alerts["PO-2"][1] == alerts["PO-5#2"][1] == "resolved")

    wait_for(repaired, 120, "the worker to hold the ERP's 5 orders again and PO-2's and PO-5#2's alerts to resolve")
    after = setup.alerts()
    assert after == {
        "PO-1": (before["PO-1"][0], "acknowledged", before["PO-1"][2], "bob"),  # same episode, still acked
        "PO-2": (before["PO-2"][0], "resolved", before["PO-2"][2], None),
        "PO-3": (before["PO-3"][0], "firing", before["PO-3"][2], None),
        "PO-5#1": (before["PO-5#1"][0], "acknowledged", before["PO-5#1"][2], "bob"),  # a line: the same
        "PO-5#2": (before["PO-5#2"][0], "resolved", before["PO-5#2"][2], None),
    }
    store = AlertStore(setup.store_url)
    try:
        for key in ("PO-1", "PO-5#1"):
            assert [h[0] for h in store.history(before[key][0])].count("firing") == 1  # no new episode
    finally:
        store.close()
    # Reported: one line each, and the metric.
    assert "BROKER RESET" in setup.log("worker")
    assert "BROKER RESET" in setup.log("connectors")
    wait_for(lambda: setup.metric(setup.web, "orderwatch_broker_resets_total") == 1, 20, "the worker's metric")
    wait_for(lambda: setup.metric(setup.metrics, "orderwatch_broker_resets_total") == 1, 20, "connectors' metric")
    # The rebuilt state is on the new broker too: a worker started again recovers all of it.
    setup.stop("worker")
    setup.start("worker")
    wait_for(lambda: (setup.status() or {}).get("entities") == 5, 90, "a restarted worker to recover 5 orders")
    assert setup.alerts() == after
