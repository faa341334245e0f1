"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) receives orderwatch's alerts.

The test starts the binary on a free 127.0.0.1 port with a throw-away
config, routes an overdue PO to it through the whole alert layer (store →
dispatcher → outbox → POST /api/v2/alerts) and reads it back from
Alertmanager's API; the resolution then ends it there. Without the binary
the test is skipped with the install command, except with CI=true, where it
fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from orderwatch.broker import free_port
from tests.alerts_helpers import Clock, Pipeline, config, event

INSTALL = "apt-get install -y --no-install-recommends prometheus-alertmanager"


def _binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        message = f"Alertmanager not installed; install it: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the CI script must install it)")
        pytest.skip(message)
    return found


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = _binary()
    port = free_port()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text("route:\n  receiver: nowhere\n  group_wait: 1h\nreceivers:\n  - name: nowhere\n")
    with open(tmp_path / "alertmanager.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "alertmanager.log").read_text())
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

def test_a_real_alertmanager_receives_and_resolves_orderwatch_alerts(alertmanager: str, tmp_path: Path) -> None:
    cfg = config(f"""
external_url: http://orderwatch.example.com:6066
receivers:
  - {{name: am, type: alertmanager, url: '{alertmanager}'}}
route:
  receivers: [am]
  group_wait: 0s
  group_interval: 10s
  repeat_interval: 30m
""")
    # Alertmanager compares times with its own clock: this pipeline runs on wall time.
    clock = Clock(time.time())
    p = Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), clock)
    fire = event("PO-2025-0042", at=clock.now, labels={"supplier": "华东五金 Huadong Hardware"})
    p.store.apply([fire])
    p.step(0)
    assert p.store.get(fire.fingerprint).delivery == "sent"

    (alert,) = get(alertmanager + "/api/v2/alerts")
    assert alert["labels"] == {
        "alertname": "po-delivery-overdue", "entity": "purchase_order", "key": "PO-2025-0042",
        "severity": "warning", "owner": "li.wei", "family": "delay", "supplier": "华东五金 Huadong Hardware",
        "source": "orderwatch",
    }
    assert alert["annotations"]["summary"] == "PO PO-2025-0042 is 9 days late"
    assert alert["annotations"]["fingerprint"] == fire.fingerprint
    assert alert["generatorURL"] == f"http://orderwatch.example.com:6066/api/alerts/{fire.fingerprint}"
    assert alert["status"]["state"] == "active"
    assert alert["receivers"] == [{"name": "nowhere"}]

    clock.now = time.time()
    p.store.apply([event("PO-2025-0042", "resolved", at=clock.now, since=fire.since.timestamp(),
                         labels={"supplier": "华东五金 Huadong Hardware"})])
    p.step(11)  # group_interval
    deadline = time.monotonic() + 10
    while get(alertmanager + "/api/v2/alerts?active=true") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert get(alertmanager + "/api/v2/alerts?active=true") == []
