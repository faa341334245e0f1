"""`orderwatch demo`: the first command of the README, and its clean exit (Ctrl-C: tests/test_shutdown.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from alerts.config import load_alerts_config
from console import links
from orderwatch.broker import free_port
from tests.conftest import ORDERWATCH, stop_process, tansu_pids, wait_for

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("orderwatch_") and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def test_demo_prints_overdue_alerts_serves_metrics_and_exits_when_idle(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        ORDERWATCH + ["demo", "--exit-when-idle", "--web-port", str(port), "--datadir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    samples: list[dict[str, float]] = []
    brokers: set[int] = set()
    try:
        while proc.poll() is None:
            brokers |= tansu_pids(parent=proc.pid)
            try:
                samples.append(scrape(port))
            except OSError:
                pass
            time.sleep(0.2)
        output = proc.stdout.read() if proc.stdout else ""
    finally:
        stop_process(proc)
    assert proc.returncode == 0, output
    # Each line in its owner's language (li.wei reads Chinese), dates as people write them.
    assert "[FIRING  ] warning  po-delivery-overdue  purchase_order PO-2025-0042  owner=li.wei (李伟)" in output
    assert "已逾期 12 天" in output and "T00:00:00" not in output
    # The branch sheet (GBK, Chinese headers) is read too, and its row with the date 下周三 is dead-lettered.
    # Its dates are relative to today, like the ERP's: SZ-PO-0101 is 9 days late, not hundreds.
    assert "SZ-PO-0101  owner=wang.fang (王芳)  采购单 SZ-PO-0101(宁波紧固件有限公司)已逾期 9 天" in output
    assert "dead-lettered payloads:   1" in output
    assert "open alerts:              19" in output
    # A newcomer's way into the console: a personal sign-in link, valid with this run's secret.
    found = re.search(rf"console \(signed in as wang\.fang, purchasing manager\): "
                      rf"(http://127\.0\.0\.1:{port}/console/signin\?t=\S+)", output)
    assert found, output
    secret = load_alerts_config(tmp_path / "demo" / "alerts.yaml").console.secret
    link = links.verify(urllib.parse.unquote(found.group(1).split("t=", 1)[1]), secret=secret, now=time.time())
    assert (link.person, link.target) == ("wang.fang", "/console/")
    # The demo's API token, printed, is the one its API takes; its last lines say how to see the alerts.
    token = re.search(r"API: curl -H 'Authorization: Bearer (\S+)' http://127\.0\.0\.1:\d+/api/alerts", output)
    assert token and [t.token for t in load_alerts_config(tmp_path / "demo" / "alerts.yaml").tokens] == \
        [token.group(1)]
    command = re.search(r"see them: +(orderwatch alerts list --datadir \S+)", output)
    assert command, output
    listed = subprocess.run(ORDERWATCH + command.group(1).split()[1:], capture_output=True, text=True, timeout=60,
                            check=False)
    assert listed.returncode == 0 and "19 alert(s)" in listed.stdout and "李伟" in listed.stdout, listed.stderr
    records = [s.get("orderwatch_records_in_total", 0.0) for s in samples]
    assert records and records[-1] == 27.0, records
    assert records[0] < records[-1], "the counters moved while the demo ran"
    assert brokers, "the demo ran its own broker"
    assert not brokers & tansu_pids(), "the broker stopped with the demo"


def test_a_killed_worker_leaves_no_broker_behind(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ORDERWATCH + ["worker", "--datadir", str(tmp_path), "--web-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert "embedded broker on 127.0.0.1:" in proc.stdout.readline()
        mine = wait_for(lambda: tansu_pids(parent=proc.pid), 10, "the embedded broker")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        stop_process(proc)
    wait_for(lambda: not (mine & tansu_pids()), 10, "the orphaned broker to die with its parent")
