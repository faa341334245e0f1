"""Acceptance, end to end on the embedded default: a real broker, a real `orderwatch worker`
process, a real SMTP server, and the alert clock moved forward through a file.

An overdue PO whose buyer is in the owners directory → exactly one email to
the buyer; nobody acknowledges → the manager hears after the configured
time; acknowledging (CLI, or the HTTP API) → no further escalation.

The worker reads the alerts file from ORDERWATCH_ALERTS and its alert clock
from ORDERWATCH_ALERTS_CLOCK_OFFSET_FILE (wall time + the seconds in that
file), so the test jumps hours ahead without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from connectors.publisher import Publisher
from orderwatch.alert import fingerprint
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import ensure_topics
from tests.alerts_helpers import alerts_cli
from tests.conftest import WorkerProc, wait_for
from tests.notify_servers import SmtpSink

pytestmark = pytest.mark.integration

TOKEN = "e2e-token-0123456789"
RULE = "po-delivery-overdue"


def alerts_yaml(smtp_port: int) -> str:
    return f"""
owners:
  people:
    li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, team: purchasing}}
    zhang.min: {{name: 张敏, email: zhang.min@example.com, language: zh, team: purchasing}}
    wang.fang: {{name: 王芳, email: wang.fang@example.com, language: zh}}
  teams:
    purchasing: {{name: 采购部, manager: wang.fang, email: purchasing@example.com}}
api:
  tokens: [{{name: e2e, token: {TOKEN}}}]
receivers:
  - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {smtp_port}}}}}
route:
  receivers: [mail]
  to: [owner]
  group_by: [owner]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1d
  escalate:
    - {{after: 4h, to: [manager]}}
    - {{after: 1d, to: [team]}}
delivery: {{interval: 0.5s}}
"""


def po(key: str, buyer: str) -> ChangeRecord:
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "op": "upsert",
        "ts": datetime.now(UTC).isoformat(), "seq": 1,
        "fields": {"status": "open", "expected_date": (date.today() - timedelta(days=9)).isoformat(),
                   "supplier": "Acme Bearings", "buyer": buyer},
    })


def publish(bootstrap: str, app_id: str, records: list[ChangeRecord]) -> None:
    async def go() -> None:
        settings = Settings(app_id=app_id, topic_prefix=app_id)
        await ensure_topics(bootstrap, settings)
        pub = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
        await pub.start()
        try:
            await pub.publish(records)
        finally:
            await pub.stop()

    asyncio.run(go())


class Scene:
    """One worker with the alerts file, an SMTP server, and the clock file."""

    def __init__(self, broker: Any, app_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 smtp: SmtpSink) -> None:
        self.smtp = smtp
        self.clock_file = tmp_path / "clock-offset"
        self.clock_file.write_text("0")
        alerts = tmp_path / "alerts.yaml"
        alerts.write_text(alerts_yaml(smtp.port), encoding="utf-8")
        monkeypatch.setenv("ORDERWATCH_ALERTS", str(alerts))
        monkeypatch.setenv("ORDERWATCH_ALERTS_CLOCK_OFFSET_FILE", str(self.clock_file))
        monkeypatch.setenv("ORDERWATCH_CONSOLE", "false")
        self.store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
        self.worker = WorkerProc(broker.url, app_id, tmp_path, self.store, tick=1.0, token=TOKEN)
        self.bootstrap, self.app_id = broker.bootstrap, app_id

    def advance(self, hours: float) -> None:
        self.clock_file.write_text(str(hours * 3600))

    def mails(self, address: str) -> list[Any]:
        return self.smtp.to(address)

    def keys(self, msg: Any) -> list[str]:
        return sorted(k for k in ("PO-A", "PO-B") if k in msg.get_content())

    def wait_mails(self, address: str, count: int, timeout: float = 60) -> list[Any]:
        return wait_for(lambda: len(self.mails(address)) >= count and self.mails(address), timeout,
                        f"{count} email(s) to {address}; worker log:\n{self.worker.log()}")


@pytest.fixture
def scene(broker: Any, app_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with SmtpSink() as smtp:
        s = Scene(broker, app_id, tmp_path, monkeypatch, smtp)
        try:
            yield s
        finally:
            s.worker.stop()


def _start(scene: Scene) -> None:
    scene.worker.wait_ready()
    publish(scene.bootstrap, scene.app_id, [po("PO-A", "li.wei"), po("PO-B", "zhang.min")])
    (mail,) = scene.wait_mails("li.wei@example.com", 1)
    assert mail["Subject"] == "[告警 1] 采购到货逾期"
    assert "采购单 PO-A(Acme Bearings)已逾期 9 天" in mail.get_content()
    scene.wait_mails("zhang.min@example.com", 1)
    # Unacknowledged four hours on: the manager hears about both (one message per owner group).
    scene.advance(4 + 5 / 60)
    to_manager = scene.wait_mails("wang.fang@example.com", 2)
    assert sorted(k for m in to_manager for k in scene.keys(m)) == ["PO-A", "PO-B"]
    assert all(m["Subject"].startswith("[升级] ") for m in to_manager)
    assert len(scene.mails("li.wei@example.com")) == 1


def _after_ack(scene: Scene) -> None:
    # A day on: PO-B (not acknowledged) reaches the team; PO-A, acknowledged, reaches nobody.
    scene.advance(25 + 5 / 60)
    (team,) = scene.wait_mails("purchasing@example.com", 1)
    assert scene.keys(team) == ["PO-B"]
    scene.wait_mails("zhang.min@example.com", 2)  # the daily reminder of the unacknowledged one
    time.sleep(3)  # several more dispatch passes on the advanced clock
    assert len(scene.mails("li.wei@example.com")) == 1, "the buyer got exactly one email"
    assert len(scene.mails("wang.fang@example.com")) == 2
    assert [scene.keys(m) for m in scene.mails("zhang.min@example.com")] == [["PO-B"], ["PO-B"]]
    store = AlertStore(scene.store)
    events = [(e.state, e.actor) for e in store.events(fingerprint(RULE, "purchase_order", "PO-A"))]
    assert [e for e in events if e[0] == "escalated"] == [("escalated", "orderwatch")]
    assert events[-1][0] == "acknowledged"


def test_email_to_the_buyer_escalation_to_the_manager_and_cli_ack_stops_it(scene: Scene) -> None:
    _start(scene)
    fp = fingerprint(RULE, "purchase_order", "PO-A")
    out = subprocess.run([*alerts_cli(), "alerts", "ack", fp, "--store", scene.store, "--by", "li.wei",
                          "-m", "Acme ships Friday"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    _after_ack(scene)
    alert = AlertStore(scene.store).get(fp)
    assert (alert.state, alert.acked_by, alert.ack_comment) == ("acknowledged", "li.wei", "Acme ships Friday")


def _http(method: str, url: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_ack_stops_escalation_and_the_order_timeline_shows_who_did_what(scene: Scene) -> None:
    _start(scene)
    base = scene.worker.url
    fp = fingerprint(RULE, "purchase_order", "PO-A")
    assert _http("POST", f"{base}/api/alerts/{fp}/ack", {"comment": "x"}, token=None)[0] == 401
    assert _http("GET", f"{base}/api/alerts", token="not-the-token-at-all")[0] == 401
    status, alert = _http("POST", f"{base}/api/alerts/{fp}/ack", {"comment": "Acme ships Friday", "by": "li.wei"})
    assert status == 200 and alert["state"] == "acknowledged"
    _after_ack(scene)
    assert _http("GET", f"{base}/api/orders/purchase_order/PO-A", token=None)[0] == 401
    status, timeline = wait_for(lambda: (r := _http("GET", f"{base}/api/orders/purchase_order/PO-A"))[0] == 200 and r,
                                30, "the order timeline")
    assert timeline["fields"]["buyer"] == "li.wei"
    (po_alert,) = timeline["alerts"]
    history = [(h["event"], h["by"]) for h in po_alert["history"]]
    assert history[0] == ("firing", "engine")
    assert ("notified", "mail") in history and ("escalated", "orderwatch") in history
    assert history[-1] == ("acknowledged", "li.wei (via e2e)")
    assert all(h["at"] for h in po_alert["history"])


def test_two_workers_in_one_group_send_one_email(broker: Any, app_id: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Only one worker (Faust's leader) dispatches; the store's notification log backs that up."""
    with SmtpSink() as smtp:
        scene = Scene(broker, app_id, tmp_path, monkeypatch, smtp)
        second = WorkerProc(broker.url, app_id, tmp_path, scene.store, tick=1.0, token=TOKEN)
        try:
            scene.worker.wait_ready()
            second.wait_ready()
            publish(scene.bootstrap, app_id, [po("PO-C", "li.wei")])
            scene.wait_mails("li.wei@example.com", 1)
            time.sleep(4)  # several passes of both workers
            assert len(scene.mails("li.wei@example.com")) == 1
        finally:
            second.stop()
            scene.worker.stop()
