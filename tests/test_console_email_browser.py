"""From a real email to the console, in a real browser (Debian's chromium through Selenium).

The shipped rules see a purchase order edited after its approval (the engine's Evaluator over the
order's state), the alert goes through the worker's owner resolution, the store, the dispatcher and
the outbox to a local SMTP server (aiosmtpd). The buyer takes the signed link from that email,
opens it, sees the PO on "my exceptions", acknowledges it with a comment; `orderwatch alerts show`
lists the acknowledgement by them, and the escalation to their manager that was due never comes.
The order page shows the edit (field, old → new, who, when), the alert and the notification.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from alerts.api import attach as attach_api
from alerts.api import faust_pages_off, require_tokens
from alerts.sink import canonical_owners
from alerts.store import AlertStore
from console.web import PREFIX
from console.web import attach as attach_console
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.state import EntityState, apply_record
from orderwatch.broker import free_port
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from tests.alerts_helpers import DAY, HOUR, Clock, Pipeline, config
from tests.notify_servers import SmtpSink
from tests.test_alerts_api import Server
from tests.test_console_browser import no_horizontal_scroll, phone, shoot  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parent.parent
APPROVED = datetime(2025, 3, 3, 0, 0, tzinfo=UTC).timestamp()  # Monday 08:00 in Shanghai
SECRET = "console-secret-for-browser-tests-0123456789"
ALERTS = f"""
language: zh
timezone: Asia/Shanghai
external_url: http://127.0.0.1:{{port}}
console: {{secret: {SECRET}}}
owners:
  people:
    li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, timezone: Asia/Shanghai, manager: wang.fang,
              aliases: [E1001]}}
    wang.fang: {{name: 王芳, email: wang.fang@example.com, language: zh, timezone: Asia/Shanghai}}
    zhang.san: {{name: 张三, language: zh}}
receivers:
  - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {{smtp}}}}}}
route:
  receivers: [mail]
  to: [owner]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1d
"""
PO = {"status": "open", "approval_status": "approved", "approved_at": "2025-03-03T00:00:00Z",
      "approved_by": "wang.fang", "qty": 1000, "unit_price": 86, "amount": 86000, "currency": "CNY",
      "supplier": "华东五金", "buyer": "E1001", "expected_date": "2025-03-20"}


def record(seq: int, at: float, actor: str, **fields: Any) -> ChangeRecord:
    return ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": "PO-7", "seq": seq,
                                   "ts": datetime.fromtimestamp(at, UTC).isoformat(), "actor": actor,
                                   "fields": {**PO, **fields}})


class Erp:
    """The engine's view of the orders (shipped rules), the alert store, the pipeline and the web server."""

    def __init__(self, tmp_path: Path, smtp: SmtpSink) -> None:
        self.clock = Clock(APPROVED)
        self.evaluator = Evaluator(load_rules([REPO / "rules"]), name=f"browser{id(self)}")
        self.store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
        self.store = AlertStore(self.store_url)
        port = free_port()
        text = textwrap.dedent(ALERTS).replace("{port}", str(port)).replace("{smtp}", str(smtp.port))
        self.alerts_file = tmp_path / "alerts.yaml"
        self.alerts_file.write_text(text)
        self.config = config(text)
        self.pipeline = Pipeline(self.config, self.store, self.clock)
        self.states: dict[str, EntityState] = {}
        app = faust.App(f"browser-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
        faust_pages_off(app)
        api = attach_api(app, self.store, Settings(), config=self.config, clock=self.clock)
        console = attach_console(app, self.store, self.config, api, self.clock,
                                 locate=lambda ek: (self.states.get(ek.partition(":")[2]), None))
        require_tokens(app, api, open_paths=("/healthz",), guarded_by={PREFIX: console.guard})
        self.server = Server(app, port)
        self.server_base = f"http://127.0.0.1:{port}"

    def change(self, rec: ChangeRecord) -> None:
        state = apply_record(self.states.get(rec.key), rec, 0)
        assert state is not None
        self.states[rec.key] = state
        self.evaluate()

    def evaluate(self) -> None:
        events = self.evaluator.evaluate(list(self.states.values()), self.clock())
        self.store.apply(canonical_owners(self.config, events))  # as the worker's sink stores them

    def close(self) -> None:
        self.server.close()
        self.evaluator.close()
        self.store.close()


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[tuple[Erp, SmtpSink]]:
    with SmtpSink() as smtp:
        e = Erp(tmp_path, smtp)
        try:
            yield e, smtp
        finally:
            e.close()


def test_from_the_email_link_to_an_acknowledgement_that_stops_the_escalation(erp: Any, phone: Any,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    e, smtp = erp
    e.change(record(1, APPROVED, "wang.fang"))
    e.clock.advance(6 * HOUR)
    e.change(record(2, e.clock(), "zhang.san", amount=96000, unit_price=96))  # edited after approval
    e.clock.advance(DAY + HOUR)  # the one-day grace passes without re-approval
    e.evaluate()
    e.pipeline.step(0)
    (mail,) = smtp.to("li.wei@example.com")
    assert "PO-7" in mail.get_content() and "orderwatch alerts ack" not in mail.get_content()
    (alert,) = e.store.list(rule="po-changed-after-approval", entity="purchase_order", key="PO-7")
    assert alert.owner == "li.wei"  # the ERP wrote E1001

    # The link in the email, opened in the browser: the alert's page, acknowledging ready.
    body = mail.get_content()
    # One link per alert, each line saying what it opens: this one is the change after approval.
    link = re.search(r"采购订单 PO-7: 采购单审批后被修改: (http://127\.0\.0\.1:\d+/console/signin\?t=\S+)", body)
    assert link, body
    wait = WebDriverWait(phone, 20)
    phone.get(link.group(1))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.ready")))
    assert phone.current_url.endswith(f"/console/alerts/{alert.fingerprint}?do=ack")
    assert "采购单审批后被修改" in phone.find_element(By.TAG_NAME, "h1").text
    assert e.store.get(alert.fingerprint).state == "firing"  # opening the link changed nothing

    # My exceptions: the PO's alert is there; acknowledge it with a comment.
    phone.find_element(By.LINK_TEXT, "← 返回我的异常").click()
    wait.until(ec.presence_of_element_located((By.ID, f"a-{alert.fingerprint}")))
    card = phone.find_element(By.ID, f"a-{alert.fingerprint}")
    assert "PO-7" in card.text and "李伟" in card.text
    card.find_element(By.TAG_NAME, "summary").click()
    card.find_element(By.NAME, "comment").send_keys("已找张三核实,金额按新报价")
    card.find_element(By.CSS_SELECTOR, "button[value=ack]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.done")))

    shown = subprocess.run([sys.executable, "-m", "orderwatch", "alerts", "show", alert.fingerprint,
                            "--store", e.store_url, "--alerts", str(e.alerts_file)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"acknowledged\s+by 李伟 \(li\.wei\)\s+— 已找张三核实,金额按新报价", shown.stdout), shown.stdout

    # The order page: the edit (field, old → new, who, when), the alert, the notification.
    phone.get(f"{e.server_base}/console/orders/purchase_order/PO-7")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.timeline")))
    timeline = phone.find_element(By.CSS_SELECTOR, "ol.timeline")
    edit = timeline.find_element(By.CSS_SELECTOR, "li.ev-changed")
    assert "2025年3月3日 14:00" in edit.text and "张三" in edit.text
    assert "金额: ¥86,000.00 → ¥96,000.00" in edit.text and "单价: ¥86.00 → ¥96.00" in edit.text
    fired = [li.text for li in timeline.find_elements(By.CSS_SELECTOR, "li.ev-firing")]
    assert any("采购单审批后被修改" in text and "2025年3月4日 15:00" in text for text in fired), fired
    told = [li.text for li in timeline.find_elements(By.CSS_SELECTOR, "li.ev-notified")]
    assert any("采购单审批后被修改" in text and "→ 李伟 (mail)" in text for text in told), told
    acked = timeline.find_element(By.CSS_SELECTOR, "li.ev-acknowledged")
    assert "李伟" in acked.text and "已找张三核实" in acked.text
    fields = phone.find_element(By.CSS_SELECTOR, "dl.fields").text
    assert "¥96,000.00" in fields and "华东五金" in fields
    assert no_horizontal_scroll(phone), "the order page scrolls sideways at 375px"
    assert shoot(phone, "console-order-zh.png", tmp_path).stat().st_size > 10_000
    # The same page in English: the same edit, written for an English reader.
    phone.find_element(By.CSS_SELECTOR, "a.lang").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "ol.timeline"), "changed"))
    edit = phone.find_element(By.CSS_SELECTOR, "ol.timeline li.ev-changed").text
    assert "amount: CN¥86,000.00 → CN¥96,000.00" in edit and "张三" in edit, edit
    assert no_horizontal_scroll(phone), "the English order page scrolls sideways at 375px"
    assert shoot(phone, "console-order-en.png", tmp_path).stat().st_size > 10_000

    # The rule escalates to the manager after two days unacknowledged: it was acknowledged, so no.
    e.clock.advance(3 * DAY)
    e.evaluate()
    e.pipeline.step(0)
    assert [h.state for h in e.store.events(alert.fingerprint)].count("escalated") == 0
    assert smtp.to("wang.fang@example.com") == []
    later = smtp.to("li.wei@example.com")[1:]  # reminders of the order's other alerts, not of this one
    assert all(alert.fingerprint not in m["X-Orderwatch-Alerts"] for m in later)
