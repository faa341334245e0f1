"""A real Prometheus (Debian's `prometheus`) scrapes a real worker's /metrics.

The worker runs with an alerts file, so the alert layer's metrics have
samples (an alert open, a notification sent); Prometheus, started on a free
port with a generated config, must then know every sample name the worker
serves. Without the binary the test is skipped with the install command,
except with CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orderwatch.broker import free_port
from tests.conftest import API_TOKEN, WorkerProc, wait_for
from tests.test_alerts_e2e import po, publish

pytestmark = pytest.mark.integration
INSTALL = "apt-get install -y --no-install-recommends prometheus"


def _binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        message = f"Prometheus not installed; install it: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the CI script must install it)")
        pytest.skip(message)
    return found


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def served_sample_names(metrics_url: str) -> set[str]:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_prometheus_scrapes_the_worker(broker: Any, app_id: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _binary()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(f"""
owners:
  people: {{li.wei: {{name: 李伟, email: li.wei@example.com}}}}
receivers: [{{name: audit, type: jsonl, path: {tmp_path / 'sent.jsonl'}}}]
route: {{receivers: [audit], to: [owner], group_wait: 0s}}
delivery: {{interval: 0.5s}}
api: {{tokens: [{{name: tests, token: {API_TOKEN}, scopes: [read]}}]}}
""", encoding="utf-8")
    monkeypatch.setenv("ORDERWATCH_ALERTS", str(alerts))
    monkeypatch.setenv("ORDERWATCH_CONSOLE", "false")
    worker = WorkerProc(broker.url, app_id, tmp_path, f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: orderwatch
    static_configs: [{{targets: ["127.0.0.1:{worker.port}"]}}]
""")
    with open(tmp_path / "prometheus.log", "wb") as log:  # the child keeps its own copy of the descriptor
        prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(expr: str) -> list[dict[str, Any]]:
        try:
            return get(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"]
        except OSError:
            return []

    try:
        worker.wait_ready()
        publish(broker.bootstrap, app_id, [po("PO-P", "li.wei")])
        wait_for(lambda: (tmp_path / "sent.jsonl").exists(), 60, f"a notification; worker log:\n{worker.log()}")
        up = wait_for(lambda: query('up{job="orderwatch"} == 1'), 60,
                      f"Prometheus to scrape the worker:\n{(tmp_path / 'prometheus.log').read_text()}")
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{worker.port}"
        sent = wait_for(lambda: query('orderwatch_notifications_sent_total{receiver="audit"} > 0'), 30,
                        "the sent notification in Prometheus")
        assert sent[0]["metric"]["type"] == "jsonl"
        open_alerts = wait_for(lambda: query("orderwatch_alerts_open"), 30, "open alerts in Prometheus")
        assert open_alerts[0]["metric"]["owner"] == "li.wei" and open_alerts[0]["metric"]["family"] == "delay"
        assert query("orderwatch_records_in_total")
        # Business gauges from the worker's order states (alerts/business.py).
        overdue = wait_for(lambda: query('orderwatch_orders_overdue{entity="purchase_order"} >= 1'), 30,
                           "the overdue PO in the business gauges")
        assert overdue[0]["value"][1] == "1"
        # Everything the worker serves is what Prometheus ingested (one more scrape to be sure).
        served = served_sample_names(f"{worker.url}/metrics")
        time.sleep(2)
        known = set(get(f"{api}/label/__name__/values")["data"])
        assert served - known == set()
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        worker.stop()
