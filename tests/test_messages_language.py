"""Messages in the owner's language, rendered when they are sent.

The shipped rules fire on real records (the engine's Evaluator), the alerts go
through the store, the dispatcher and the outbox, and arrive on a local SMTP
server (aiosmtpd) and a DingTalk robot endpoint on 127.0.0.1: a zh reader gets
Chinese with 年月日 dates and ¥ amounts, an en reader English with `1 Mar 2025`
and €; a reminder three days later says three more days; the resolved message
says the goods arrived. Then every shipped rule, in both languages, from the
demo's data: no placeholder and no raw ISO time is left.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.message import AlertItem
from alerts.store import AlertStore
from alerts.texts import alert_texts
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.simulate import Simulation, sort_records
from engine.state import EntityState, apply_record
from orderwatch.alert import AlertEvent
from orderwatch.demo import demo_records
from orderwatch.record import ChangeRecord
from tests.alerts_helpers import DAY, Clock, Pipeline, config
from tests.conftest import ORDERWATCH
from tests.notify_servers import HttpRecorder, HttpRecorderThread, SmtpSink

REPO = Path(__file__).resolve().parent.parent
START = datetime(2025, 3, 10, 1, 0, tzinfo=UTC).timestamp()  # Monday 09:00 in Shanghai, 02:00 in Berlin
WORDS = re.compile(r"[A-Za-z]{2,}")
CJK = re.compile(r"[\u3400-\u9fff]")
ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
HUADONG = "华东五金 Huadong Hardware"  # a name the data gives: it stays as written, in any language


def alerts_yaml(smtp_port: int, robot: str) -> str:
    return f"""
        language: en
        owners:
          people:
            li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, timezone: Asia/Shanghai,
                      chat: {{dingtalk: "13800000001"}}}}
            anna.schmidt: {{name: Anna Schmidt, email: anna@example.com, language: en, timezone: Europe/Berlin}}
        receivers:
          - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {smtp_port}}}}}
          - {{name: ding, type: dingtalk, url: "{robot}/robot/send?access_token=t0k"}}
        route:
          receivers: [mail, ding]
          to: [owner]
          group_by: [owner]
          group_wait: 0s
          group_interval: 1m
          repeat_interval: 1d
        """


def po(key: str, seq: int, at: float, **fields: Any) -> ChangeRecord:
    return ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": key, "seq": seq,
                                   "ts": datetime.fromtimestamp(at, UTC).isoformat(), "fields": fields})


class Orders:
    """The engine with the shipped rules, the alert store and the pipeline on one movable clock."""

    def __init__(self, tmp_path: Path, smtp: SmtpSink, robot: HttpRecorder) -> None:
        self.clock = Clock(START)
        self.evaluator = Evaluator(load_rules([REPO / "rules"]), name=f"lang{id(self)}")
        self.store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
        self.pipeline = Pipeline(config(alerts_yaml(smtp.port, robot.url)), self.store, self.clock)
        self.states: dict[str, EntityState] = {}

    def record(self, rec: ChangeRecord) -> None:
        state = apply_record(self.states.get(rec.key), rec, 0)
        assert state is not None
        self.states[rec.key] = state
        self.store.apply(self.evaluator.evaluate([state], self.clock()))

    def close(self) -> None:
        self.evaluator.close()
        self.store.close()


@pytest.fixture
def orders(tmp_path: Path) -> Any:
    with SmtpSink() as smtp, HttpRecorderThread() as robot:
        o = Orders(tmp_path, smtp, robot)
        try:
            yield o, smtp, robot
        finally:
            o.close()


def late_po(key: str, buyer: str, supplier: str, amount: float, currency: str, seq: int = 1,
            status: str = "open") -> dict[str, Any]:
    # Expected on 1 March (nine days ago), over the 50,000 approval limit and not approved.
    return {"status": status, "expected_date": "2025-03-01", "supplier": supplier, "buyer": buyer,
            "qty": 1000, "amount": amount, "currency": currency, "approval_status": "pending"}


def without(text: str, *names: str) -> str:
    """The text without what the data and the machine give: names, fingerprints, links, the ack command."""
    for name in names:
        text = text.replace(name, "")
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"orderwatch alerts ack( [0-9a-f]{16})+", "", text)
    return text


def test_each_reader_gets_their_language_dates_amounts_and_days_counted_when_sent(orders: Any) -> None:
    o, smtp, robot = orders
    o.record(po("PO-A", 1, START, **late_po("PO-A", "li.wei", HUADONG, 86000, "CNY")))
    o.record(po("PO-B", 1, START, **late_po("PO-B", "anna.schmidt", "Nordic Steel AB", 57000, "EUR")))
    o.pipeline.step(0)

    (zh,) = smtp.to("li.wei@example.com")
    (en,) = smtp.to("anna@example.com")
    zh_subject, zh_body = zh["Subject"], zh.get_content()
    # Chinese only: the subject has no Latin word at all; the body none but the data's names.
    assert zh_subject == "[告警 2] 超额采购未审批 / 采购到货逾期"
    assert not WORDS.search(without(zh_body, "PO-A", HUADONG)), zh_body
    assert "采购单 PO-A(华东五金 Huadong Hardware)已逾期 9 天,预计到货 2025年3月1日" in zh_body
    assert "金额 ¥86,000.00,超过 50,000 的审批限额" in zh_body
    assert "对象: 采购订单 PO-A | 负责人: 李伟 | 级别: 严重" in zh_body
    assert "开始: 2025年3月10日 09:00 中国标准时间" in zh_body  # the reader's time zone
    assert not ISO.search(zh_body)
    # English only, dates day-month-year, euros.
    assert en["Subject"] == "[FIRING:2] PO delivery overdue / PO over limit without approval"
    assert not CJK.search(en.get_content())
    en_body = en.get_content()
    assert "PO PO-B from Nordic Steel AB is 9 days late (expected 1 Mar 2025)" in en_body
    assert "PO PO-B to Nordic Steel AB is €57,000.00, over the 50,000 limit, and not approved" in en_body
    assert "purchase order PO-B | owner: Anna Schmidt | severity: critical | since: 10 Mar 2025 02:00" in en_body
    assert not ISO.search(en_body)

    # DingTalk's custom robot: its markdown message shape, the reader @-mentioned, in their language.
    posts = {req.json()["markdown"]["title"]: req.json() for req in robot.requests}
    assert all(req.path == "/robot/send" and req.query["access_token"] == "t0k" for req in robot.requests)
    ding_zh = posts[zh_subject]
    assert set(ding_zh) == {"msgtype", "markdown", "at"} and ding_zh["msgtype"] == "markdown"
    assert set(ding_zh["markdown"]) == {"title", "text"}
    assert ding_zh["at"] == {"atMobiles": ["13800000001"], "atUserIds": [], "isAtAll": False}
    text = ding_zh["markdown"]["text"]
    assert text.startswith("@13800000001\n\n**[告警 2] 超额采购未审批 / 采购到货逾期**")
    assert not WORDS.search(without(text, "PO-A", HUADONG)), text
    assert "2025年3月1日" in text and "¥86,000.00" in text and not ISO.search(text)
    ding_en = posts[en["Subject"]]
    assert ding_en["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": False}
    assert "€57,000.00" in ding_en["markdown"]["text"] and not CJK.search(ding_en["markdown"]["text"])

    # Nobody acts: the daily reminder, sent three days later, says how late it is now.
    o.pipeline.step(3 * DAY)
    first, reminder = smtp.to("li.wei@example.com")
    assert "已逾期 9 天" in first.get_content()
    assert "已逾期 12 天" in reminder.get_content() and "已逾期 9 天" not in reminder.get_content()
    assert "(3天前)" in reminder.get_content()
    assert "is 12 days late (expected 1 Mar 2025)" in smtp.to("anna@example.com")[-1].get_content()

    # The goods arrive: the resolved message says what happened, in each reader's language.
    o.record(po("PO-A", 2, o.clock(), **late_po("PO-A", "li.wei", HUADONG, 86000, "CNY", status="received")))
    o.record(po("PO-B", 2, o.clock(), **late_po("PO-B", "anna.schmidt", "Nordic Steel AB", 57000, "EUR",
                                                 status="received")))
    o.pipeline.step(60)
    resolved_zh = smtp.to("li.wei@example.com")[-1].get_content()
    resolved_en = smtp.to("anna@example.com")[-1].get_content()
    assert "【已恢复】采购到货逾期" in resolved_zh and "结果: 已到货,逾期 12 天" in resolved_zh
    assert "结束: 2025年3月13日 09:00 中国标准时间" in resolved_zh
    assert not WORDS.search(without(resolved_zh, "PO-A", HUADONG)), resolved_zh
    assert "[RESOLVED] PO delivery overdue" in resolved_en and "Outcome: received, 12 days late" in resolved_en
    assert not CJK.search(resolved_en)


def test_a_team_without_a_language_takes_the_files_not_its_first_members() -> None:
    cfg = config("""
        language: zh
        owners:
          people:
            anna: {name: Anna, email: anna@example.com, language: en, team: buyers}
          teams:
            buyers: {name: Buyers, email: buyers@example.com}
            sales: {name: Sales, email: sales@example.com, language: en}
        """)
    d = cfg.directory
    assert d.team_recipient(d.teams["buyers"]).language == "zh"
    assert d.team_recipient(d.teams["sales"]).language == "en"


# --- every shipped rule, both languages, from the demo's data --------------------------------------

def _item(event: AlertEvent) -> AlertItem:
    return AlertItem(fingerprint=event.fingerprint, rule=event.rule, entity=event.entity, key=event.key,
                     status=event.state, state=event.state, severity=event.severity, title=event.title,
                     summary=event.summary, owner=event.owner, labels=dict(event.labels),
                     starts_at=event.since.isoformat(),
                     ends_at=event.at.isoformat() if event.state == "resolved" else None, facts=event.facts)


def test_every_shipped_rule_reads_well_in_both_languages_from_the_demo_data(tmp_path: Path) -> None:
    rules = load_rules([REPO / "rules"])
    records = sort_records(demo_records(tmp_path))
    evaluator = Evaluator(rules, name="lang-demo")
    try:
        sim = Simulation(evaluator)
        sim.feed(records)
        now = max(r.ts.timestamp() for r in records) + 60
        sim.advance(now)
        events = sim.take_events() + sim.firing()
    finally:
        evaluator.close()
    assert events
    fired = {e.rule for e in events}
    # The values each entity's alerts carry, to render the rules the demo does not fire.
    values: dict[str, dict[str, Any]] = {}
    for e in events:
        values.setdefault(e.entity, {}).update(e.facts.get("values") or {})
    items = [_item(e) for e in events]
    for rule in rules:
        if rule.id in fired:
            continue
        sample = next(e for e in events if e.entity == rule.entity)
        facts = {**sample.facts, "texts": {k: rule.texts[k] for k in rule.texts},
                 "values": {**values[rule.entity], "changed_by": "zhou.kai"},
                 "changed": [["unit_price", 3.2, 2.9]]}
        items.append(AlertItem(**{**_item(sample).__dict__, "rule": rule.id, "facts": facts}))
    assert {i.rule for i in items} == {r.id for r in rules}
    for rule in rules:
        assert set(rule.texts.get("title", {})) == {"zh", "en"}, f"{rule.id}: title in zh and en"
        assert set(rule.texts.get("summary", {})) == {"zh", "en"}, f"{rule.id}: summary in zh and en"
    for item in items:
        for language, zone in (("zh", "Asia/Shanghai"), ("en", "Europe/Berlin")):
            t = alert_texts(item, language, zone, now)
            for text in (t.title, t.summary):
                assert text, f"{item.rule} {item.key} in {language}: empty"
                assert not re.search(r"\{\w+\}", text), f"{item.rule} in {language}: {text}"
                assert not ISO.search(text), f"{item.rule} in {language}: {text}"
                assert not re.search(r"\d{2}:\d{2}:\d{2}", text), f"{item.rule} in {language}: {text}"
            if language == "en":
                assert not CJK.search(without(t.summary, *_names(item))), f"{item.rule}: {t.summary}"
            else:
                assert CJK.search(t.summary), f"{item.rule}: {t.summary}"


def _names(item: AlertItem) -> list[str]:
    """Names from the data (suppliers, customers: often written in Chinese and English)."""
    values = (item.facts.get("values") or {})
    return [str(v) for k, v in values.items() if k in ("supplier", "customer", "counterparty", "key")] + [item.key]


# --- rules check: texts by language ------------------------------------------------------------

def rules_check(path: Path, title: str, zh: str, en: str) -> tuple[int, list[str]]:
    """`orderwatch rules check` on one rule with these title and summaries; (exit code, lines)."""
    path.write_text(
        "- id: late\n  entity: purchase_order\n  when: {expected_date: {before: now - 1d}}\n"
        f"  title: {title}\n  summary:\n    zh: \"{zh}\"\n    en: \"{en}\"\n", encoding="utf-8")
    res = subprocess.run(ORDERWATCH + ["rules", "check", str(path)], capture_output=True, text=True, check=False)
    return res.returncode, [line.replace(f"{path.parent}/", "") for line in (res.stdout + res.stderr).splitlines()]


def test_rules_check_reads_texts_by_language_and_reports_each_at_its_line(tmp_path: Path) -> None:
    code, lines = rules_check(tmp_path / "good.yaml", "PO late", "采购单 {key} 已逾期 {overdue_days} 天",
                              "PO {key} is {overdue_days} days late")
    assert code == 0 and lines == ["1 rule(s) OK"], lines
    code, lines = rules_check(tmp_path / "bad.yaml", "{zh: 逾期, en: ''}", "采购单 {key}({supplier_name})",
                              "PO {key} is {overdue_days} days late")
    assert code == 1
    assert "bad.yaml:4:19: title in en must be a text, got ''" in lines, lines
    assert any(line.startswith("bad.yaml:6:5: summary in zh: template names unknown field 'supplier_name'; known: ")
               for line in lines), lines


def test_overrides_per_language_and_a_missing_translation_falls_back_to_the_other_language() -> None:
    from alerts.message import Notification
    from alerts.template import Renderer

    cfg = config("""
        templates:
          zh: {subject: "【{status}】{title}({count} 条)"}
        """)
    facts = {"texts": {"title": {"zh": "采购到货逾期", "en": "PO delivery overdue"},
                       "summary": {"zh": "采购单 {key} 已逾期 {overdue_days} 天,金额 {amount}"}},
             "values": {"key": "PO-9", "amount": 5700, "currency": "EUR"}, "deadline": START - 3 * DAY}
    item = AlertItem(fingerprint="f" * 16, rule="po-delivery-overdue", entity="purchase_order", key="PO-9",
                     status="firing", state="firing", severity="warning", title="", summary="", owner=None,
                     labels={}, starts_at=datetime.fromtimestamp(START, UTC).isoformat(), facts=facts)

    def note(language: str) -> Notification:
        return Notification(receiver="mail", group_key="g", group_labels={}, recipient=None, language=language,
                            timezone="UTC", level=0, alerts=[item], created_at="")

    renderer = Renderer(cfg.templates, Clock(START))
    assert renderer.subject(note("zh")) == "【告警】采购到货逾期(1 条)"  # the override
    assert renderer.subject(note("en")) == "[FIRING:1] PO delivery overdue"  # en keeps the built-in one
    assert "对象: 采购订单 PO-9 | 负责人: 无负责人" in renderer.body(note("zh"))  # the rest of zh is built in
    # No English summary: the English reader gets the Chinese one, never an empty line or a placeholder.
    en = renderer.body(note("en"))
    assert en.startswith("[FIRING] PO delivery overdue\n采购单 PO-9 已逾期 3 天,金额 €5,700.00\n"), en


def test_an_alert_resolved_without_texts_of_its_own_keeps_those_it_fired_with(tmp_path: Path) -> None:
    # A rule removed by a reload resolves its alerts without texts (the engine no longer has the rule):
    # the resolved message is still told with the texts and values the alert fired with.
    evaluator = Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="lang-removed")
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    try:
        state = apply_record(None, po("PO-R", 1, START, **late_po("PO-R", "li.wei", HUADONG, 100, "CNY")), 0)
        assert state is not None
        (fired,) = [e for e in evaluator.evaluate([state], START) if e.rule == "po-delivery-overdue"]
        store.apply([fired])
        gone = AlertEvent(rule=fired.rule, entity=fired.entity, key=fired.key, state="resolved",
                          at=datetime.fromtimestamp(START + DAY, UTC), since=fired.since, severity="info",
                          title=fired.rule, summary=f"rule {fired.rule} no longer exists")
        store.apply([gone])
        (stored,) = store.list(key="PO-R")
        item = AlertItem(fingerprint=stored.fingerprint, rule=stored.rule, entity=stored.entity, key=stored.key,
                         status="resolved", state=stored.state, severity=stored.severity, title=stored.title,
                         summary=stored.summary, owner=stored.owner, labels=stored.labels,
                         starts_at=stored.starts_at.isoformat(), ends_at=stored.resolved_at.isoformat()
                         if stored.resolved_at else None, facts=stored.facts)
        t = alert_texts(item, "zh", "Asia/Shanghai", START + 2 * DAY)
        assert (t.title, t.outcome) == ("采购到货逾期", "已恢复,逾期 10 天")
        assert t.summary.startswith("采购单 PO-R(华东五金 Huadong Hardware)已逾期 10 天")
    finally:
        evaluator.close()
        store.close()
