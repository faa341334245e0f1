"""Notifications that link each reader to the console, one person whatever the ERP calls them,
and the order page.

Alerts go through the store, the dispatcher and the outbox to a real SMTP server (aiosmtpd) and
chat endpoints on 127.0.0.1; the links in what arrives are verified with the console's secret and
opened on the worker's web server. An owner written by alias in one order and by id in another is
one person in the message, the API, the metric and `alerts list`. The order page is requested
over HTTP, also through a second worker that does not hold the order.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import faust
import pytest
from prometheus_client import REGISTRY

from alerts.api import attach as attach_api
from alerts.api import faust_pages_off, require_tokens
from alerts.sink import canonical_owners
from alerts.store import AlertStore
from console import links
from console.web import PREFIX
from console.web import attach as attach_console
from orderwatch.broker import free_port
from orderwatch.config import Settings
from tests.alerts_helpers import DAY, HOUR, T0, Clock, Pipeline, config, event
from tests.notify_servers import HttpRecorderThread, SmtpSink
from tests.test_alerts_api import Server
from tests.test_console import Browser, csrf_of

SECRET = "console-secret-for-link-tests-0123456789"
TOKEN = "erp-portal-token-0123456789"
EXTERNAL = "https://orders.example.com"
SIGNIN = re.compile(r"https://orders\.example\.com/console/signin\?t=[A-Za-z0-9_\-.%]+")


def alerts_yaml(smtp_port: int, robot: str, console: bool = True) -> str:
    return f"""
        language: en
        external_url: {EXTERNAL}
        {f"console: {{secret: {SECRET}, link_ttl: 3d, order_links: {{erp: 'https://erp.example.com/odoo/purchase/{{id}}'}}}}" if console else ""}
        api:
          tokens: [{{name: erp-portal, token: {TOKEN}}}]
        owners:
          people:
            li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, timezone: Asia/Shanghai,
                      aliases: [E1001, 李伟], chat: {{dingtalk: "13800000001", wecom: LiWei, slack: U01,
                      feishu: ou_1}}}}
            anna.schmidt: {{name: Anna Schmidt, email: anna@example.com, language: en, timezone: Europe/Berlin}}
            chen.jie: {{name: Chen Jie, email: chen.jie@example.com, language: en}}
        receivers:
          - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {smtp_port}}}}}
          - {{name: ding, type: dingtalk, url: "{robot}/ding"}}
          - {{name: wecom, type: wecom, url: "{robot}/wecom"}}
          - {{name: slack, type: slack, url: "{robot}/slack"}}
          - {{name: feishu, type: feishu, url: "{robot}/feishu"}}
          - {{name: teams, type: teams, url: "{robot}/teams"}}
        route:
          receivers: [mail, ding, wecom, slack, feishu, teams]
          to: [owner]
          group_by: [owner]
          group_wait: 0s
          group_interval: 1m
          repeat_interval: 1d
        """


PO1 = event("PO-1", owner="E1001", severity="warning", since=T0 - 2 * DAY)  # the ERP's employee number
PO2 = event("PO-2", owner="li.wei", severity="critical", since=T0 - HOUR)  # the login
PO3 = event("PO-3", owner="anna.schmidt", severity="warning", since=T0 - HOUR)


def signed_links(text: str) -> list[links.Link]:
    """Every sign-in link in a text, verified with the console's secret."""
    found = []
    for url in SIGNIN.findall(text):
        value = parse_qs(urlsplit(url).query)["t"][0]
        found.append(links.verify(value, secret=SECRET, now=T0))
    return found


@pytest.fixture
def sent(tmp_path: Path) -> Iterator[tuple[Pipeline, SmtpSink, Any]]:
    with SmtpSink() as smtp, HttpRecorderThread() as robot:
        robot.replies["/slack"] = lambda r: (200, "ok")
        robot.replies["/feishu"] = lambda r: (200, {"code": 0})
        cfg = config(alerts_yaml(smtp.port, robot.url))
        store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
        store.apply([PO1, PO2, PO3])  # stored as the ERP wrote them (as before owners were resolved)
        pipeline = Pipeline(cfg, store, Clock())
        pipeline.step(0)
        try:
            yield pipeline, smtp, robot
        finally:
            store.close()


def test_every_message_links_its_reader_to_the_alerts_page_with_a_personal_signed_link(sent: Any) -> None:
    _, smtp, robot = sent
    # E1001 and li.wei are one person: one grouped email, both orders, in Chinese.
    (mail,) = smtp.to("li.wei@example.com")
    body = mail.get_content()
    assert "PO-1" in body and "PO-2" in body
    assert "orderwatch alerts ack" not in body and "/api/alerts" not in body
    assert "在控制台确认、备注或暂停提醒" in body
    found = signed_links(body)
    fp1, fp2 = PO1.fingerprint, PO2.fingerprint
    assert {(x.person, x.target) for x in found} == {
        ("li.wei", f"/console/alerts/{fp1}?do=ack"), ("li.wei", f"/console/alerts/{fp2}?do=ack"),
        ("li.wei", "/console/")}
    assert all(x.expires == T0 + 3 * DAY for x in found)  # console.link_ttl from when it was sent
    assert "采购订单 PO-1:" in body  # each link says what it opens, in the reader's language

    (en,) = smtp.to("anna@example.com")
    en_body = en.get_content()
    assert "Acknowledge, comment or snooze on the console" in en_body and "orderwatch alerts" not in en_body
    assert [(x.person, x.target) for x in signed_links(en_body)] == \
        [("anna.schmidt", f"/console/alerts/{PO3.fingerprint}?do=ack")]

    by_path: dict[str, list[Any]] = {}
    for req in robot.requests:
        by_path.setdefault(req.path, []).append(req.json())
    # DingTalk and WeCom markdown: [label](link); Slack: <link|label>; Feishu: an `a` element;
    # Teams: markdown in the card and an Action.OpenUrl button. Each link is the reader's own.
    for path, text_of in (("/ding", lambda d: d["markdown"]["text"]), ("/wecom", lambda d: d["markdown"]["content"])):
        text = next(text_of(d) for d in by_path[path] if "PO-1" in text_of(d))
        assert re.search(r"\[采购订单 PO-1: [^]]+\]\(https://orders\.example\.com/console/signin\?t=", text), text
        assert {x.person for x in signed_links(text)} == {"li.wei"} and "orderwatch alerts ack" not in text
    slack = next(d for d in by_path["/slack"] if "PO-1" in str(d))
    section = slack["blocks"][-1]["text"]["text"]
    assert re.search(r"<https://orders\.example\.com/console/signin\?t=[^|>]+\|采购订单 PO-1: ", section), section
    assert {x.person for x in signed_links(section)} == {"li.wei"}
    feishu = next(d for d in by_path["/feishu"] if "PO-1" in str(d))
    anchors = [el for line in feishu["content"]["post"]["zh_cn"]["content"] for el in line if el["tag"] == "a"]
    assert [a["text"].split(":")[0] for a in anchors] == ["采购订单 PO-1", "采购订单 PO-2", "我的异常"]
    assert {links.verify(parse_qs(urlsplit(a["href"]).query)["t"][0], secret=SECRET, now=T0).person
            for a in anchors} == {"li.wei"}
    teams = next(d for d in by_path["/teams"] if "PO-1" in str(d))["attachments"][0]["content"]
    assert [a["type"] for a in teams["actions"]] == ["Action.OpenUrl"] * 3
    assert all(SIGNIN.fullmatch(a["url"]) for a in teams["actions"])
    assert "orderwatch alerts ack" not in str(by_path)


def test_without_a_console_secret_messages_keep_the_command(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpRecorderThread() as robot:
        robot.replies["/slack"] = lambda r: (200, "ok")
        robot.replies["/feishu"] = lambda r: (200, {"code": 0})
        store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
        store.apply([PO3])
        Pipeline(config(alerts_yaml(smtp.port, robot.url, console=False)), store, Clock()).step(0)
        body = smtp.to("anna@example.com")[0].get_content()
        store.close()
    assert f"orderwatch alerts ack {PO3.fingerprint}" in body and "/console/signin" not in body


def test_one_person_whatever_the_erp_calls_them(sent: Any, tmp_path: Path) -> None:
    pipeline, _, _ = sent
    # The metric names the person by their id, for the alert written by alias too.
    sample = REGISTRY.get_sample_value
    assert sample("orderwatch_alerts_open", {"family": "delay", "severity": "warning", "owner": "li.wei",
                                             "state": "firing"}) == 1.0
    assert sample("orderwatch_alerts_open", {"family": "delay", "severity": "critical", "owner": "li.wei",
                                             "state": "firing"}) == 1.0
    assert sample("orderwatch_alerts_open", {"family": "delay", "severity": "warning", "owner": "E1001",
                                             "state": "firing"}) is None

    # The worker's sink stores the person's id and keeps what the ERP wrote in the facts.
    (stored,) = canonical_owners(pipeline.config, [event("PO-7", owner="li.wei@example.com")])
    assert stored.owner == "li.wei" and stored.facts["owner_given"] == "li.wei@example.com"
    (unknown,) = canonical_owners(pipeline.config, [event("PO-8", owner="E9999")])
    assert unknown.owner == "E9999" and "owner_given" not in unknown.facts
    pipeline.store.apply([event("PO-8", owner="E9999", since=T0 - 3 * DAY)])

    # The API: both alerts are li.wei's, asked by any of their names.
    app = faust.App(f"links-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    faust_pages_off(app)
    api = attach_api(app, pipeline.store, Settings(), config=pipeline.config, clock=pipeline.clock)
    require_tokens(app, api, open_paths=())
    server = Server(app)
    try:
        status, doc = server.call("GET", "/api/alerts?owner=E1001", token=TOKEN)
        by_label = server.call("GET", "/api/alerts?filter=owner%3D%22li.wei%22", token=TOKEN)[1]
    finally:
        server.close()
    assert status == 200
    assert sorted((a["key"], a["owner"], a["ownerName"], a["labels"]["owner"]) for a in doc) == \
        [("PO-1", "li.wei", "李伟", "li.wei"), ("PO-2", "li.wei", "李伟", "li.wei")]
    assert sorted(a["key"] for a in by_label) == ["PO-1", "PO-2"]  # a matcher on owner: the person too

    # `alerts list`: the person's name, most severe first then oldest, aligned columns, local times.
    alerts_file = tmp_path / "alerts.yaml"
    text = textwrap.dedent(alerts_yaml(1, "http://127.0.0.1:1"))
    alerts_file.write_text(text.replace("language: en", "language: zh\ntimezone: Asia/Shanghai", 1))
    url = str(pipeline.store.engine.url)
    shown = subprocess.run([sys.executable, "-m", "orderwatch", "alerts", "list", "--store", url,
                            "--alerts", str(alerts_file)], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if "PO-" in line]
    assert [re.search(r"PO-\d", r).group(0) for r in rows] == ["PO-2", "PO-8", "PO-1", "PO-3"]  # type: ignore[union-attr]
    assert "李伟" in rows[0] and "李伟" in rows[2] and "E1001" not in shown.stdout
    assert "E9999(未知)" in rows[1] and "Anna Schmidt" in rows[3]
    header = shown.stdout.splitlines()[0]
    assert header.split() == ["id", "severity", "state", "since", "order", "owner", "summary"]
    assert header.index("severity") == shown.stdout.splitlines()[2].index(rows[0].split()[1])  # aligned
    assert "2025-03-03 08:00 CST" in rows[0] and "采购订单 PO-2" in rows[0]  # the file's time zone and language
    as_json = subprocess.run([sys.executable, "-m", "orderwatch", "alerts", "list", "--store", url, "--format",
                              "json"], capture_output=True, text=True, timeout=60, check=False)
    assert as_json.returncode == 0 and as_json.stdout.count("\n") == 4 and '"fingerprint"' in as_json.stdout


# --- the order page -------------------------------------------------------------------------

ORDER_YAML = f"""
console: {{secret: {SECRET}, order_links: {{erp: "https://erp.example.com/odoo/purchase/{{id}}",
                                           erpnext: "https://erp.example.com/app/purchase-order/{{key}}"}}}}
api:
  tokens: [{{name: erp-portal, token: {TOKEN}}}]
owners:
  people:
    li.wei: {{name: 李伟, language: zh, timezone: Asia/Shanghai, aliases: [E1001]}}
    chen.jie: {{name: Chen Jie, language: en}}
    zhang.san: {{name: 张三, language: zh}}
receivers:
  - {{name: log, type: jsonl, path: sent.jsonl}}
route:
  receivers: [log]
  to: [owner]
"""

CHANGED_AT = datetime(2025, 3, 2, 6, 30, tzinfo=UTC)
STATE = {
    "entity": "purchase_order", "key": "PO-1", "p": 0, "seqs": {"erp": 12}, "firing": {}, "due": None,
    "ts": CHANGED_AT.isoformat(), "deleted": False,
    "fields": {"id": 4711, "status": "approved", "supplier": "华东五金", "amount": 96000, "currency": "CNY",
               "expected_date": "2025-03-20", "buyer": "E1001",
               "lines": [{"sku": "BRG-6204", "qty": 1200, "unit_price": 80}]},
    "history": [{"ts": CHANGED_AT.isoformat(), "seq": 12, "source": "erp", "op": "upsert", "actor": "zhang.san",
                 "changed": {"amount": [86000, 96000], "expected_date": ["2025-03-10", "2025-03-20"]}}],
}
CHANGE_ALERT = event("PO-1", owner="li.wei", rule="po-changed-after-approval", severity="critical",
                     since=CHANGED_AT.timestamp(), labels={"family": "unapproved_change"})


@dataclass
class Worker:
    server: Server
    base: str


def _worker(store: AlertStore, cfg: Any, clock: Clock, locate: Any) -> Worker:
    app = faust.App(f"orders-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    faust_pages_off(app)
    api = attach_api(app, store, Settings(), config=cfg, clock=clock)
    console = attach_console(app, store, cfg, api, clock, locate=locate)
    require_tokens(app, api, open_paths=("/healthz",), guarded_by={PREFIX: console.guard})
    server = Server(app)
    return Worker(server, f"http://127.0.0.1:{server.port}")


@pytest.fixture
def two_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Worker, Worker, AlertStore, Clock]]:
    """Worker A holds PO-1's state; worker B does not and knows A holds it."""
    monkeypatch.chdir(tmp_path)
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    store.apply([CHANGE_ALERT])
    cfg = config(ORDER_YAML)
    clock = Clock(T0)
    Pipeline(cfg, store, clock).step(0)  # notified (the jsonl receiver): on the timeline
    a = _worker(store, cfg, clock, lambda ek: (STATE, None) if ek == "purchase_order:PO-1" else (None, None))
    holder = a.base
    b = _worker(store, cfg, clock, lambda ek: (None, holder) if ek == "purchase_order:PO-1" else (None, None))
    try:
        yield a, b, store, clock
    finally:
        a.server.close()
        b.server.close()
        store.close()


def test_the_order_page_shows_fields_lines_and_the_timeline_from_any_worker(two_workers: Any) -> None:
    a, b, _, clock = two_workers
    # Signed in on worker B, which does not hold the order: B asks A with the same session.
    browser = Browser(b.base)
    assert browser.get(links.signed_url(b.base, "li.wei", "/console/", clock.now + HOUR, secret=SECRET)).status == 302
    doc = browser.get("/console/orders/purchase_order/PO-1?format=json", html=False).json()
    assert doc["held"] is True and doc["erp_url"] == "https://erp.example.com/odoo/purchase/4711"
    fields = {f["name"]: f["value"] for f in doc["fields"]}
    assert fields["amount"] == "¥96,000.00" and fields["expected_date"] == "2025年3月20日"
    assert [c["label"] for c in doc["lines"]["columns"]] == ["数量", "物料", "单价"]
    assert doc["lines"]["rows"] == [["1,200", "BRG-6204", "¥80.00"]]
    events = [(e["event"], e["by"]) for e in doc["timeline"]]
    assert events == [("changed", "张三"), ("firing", "engine"), ("notified", "log")], events
    change = doc["timeline"][0]
    assert change["at_local"] == "2025年3月2日 14:30 中国标准时间"
    assert [(c["label"], c["old"], c["new"]) for c in change["changes"]] == \
        [("金额", "¥86,000.00", "¥96,000.00"), ("预计到货日", "2025年3月10日", "2025年3月20日")]
    assert doc["timeline"][2]["to"] == "李伟"

    page = browser.get("/console/orders/purchase_order/PO-1")
    assert page.status == 200
    assert "金额" in page.text and "¥86,000.00</span> → <span class=\"new\">¥96,000.00" in page.text
    assert "张三" in page.text and "在 ERP 中打开" in page.text

    # Somebody the order's alerts are not routed to sees nothing of it; a token sees it all.
    other = Browser(a.base)
    other.get(links.signed_url(a.base, "zhang.san", "/console/", clock.now + HOUR, secret=SECRET))
    assert other.get("/console/orders/purchase_order/PO-1?format=json", html=False).status == 404
    assert Browser(a.base).get("/console/orders/purchase_order/PO-1?format=json", html=False,
                               token=TOKEN).json()["key"] == "PO-1"


def test_reassigning_an_alert_to_another_person_is_recorded_and_sticks(two_workers: Any) -> None:
    a, _, store, clock = two_workers
    browser = Browser(a.base)
    fp = CHANGE_ALERT.fingerprint
    browser.get(links.signed_url(a.base, "li.wei", f"/console/alerts/{fp}?do=ack", clock.now + HOUR,
                                 secret=SECRET))
    page = browser.get(f"/console/alerts/{fp}?do=ack")
    assert page.status == 200 and "autofocus" in page.text and "点击“确认”" in page.text
    assert store.get(fp).state == "firing"  # opening the link changes nothing
    reply = browser.post(f"/console/alerts/{fp}/reassign", {"csrf": csrf_of(page.text), "to": "chen.jie",
                                                            "comment": "你负责这个供应商", "back": f"/console/alerts/{fp}"})
    assert reply.status == 303, reply.text
    assert store.get(fp).owner == "chen.jie"
    entry = store.events(fp)[-1]
    assert (entry.state, entry.actor, entry.comment, entry.detail) == \
        ("reassigned", "li.wei", "你负责这个供应商", {"from": "li.wei", "to": "chen.jie"})
    # The engine's next update of the order (the ERP still says li.wei) does not take it back.
    store.apply([event("PO-1", owner="li.wei", rule="po-changed-after-approval", severity="critical",
                       since=CHANGED_AT.timestamp(), at=T0 + HOUR, labels={"family": "unapproved_change"})])
    assert store.get(fp).owner == "chen.jie"
    # li.wei gave it away: it is Chen Jie's now (li.wei's console no longer lists it).
    assert browser.get(f"/console/alerts/{fp}?format=json", html=False).status == 404
    chen = Browser(a.base)
    chen.get(links.signed_url(a.base, "chen.jie", "/console/", clock.now + HOUR, secret=SECRET))
    assert [x["fingerprint"] for x in chen.get("/console/?format=json", html=False).json()["alerts"]] == [fp]
    timeline = chen.get("/console/orders/purchase_order/PO-1?format=json", html=False).json()["timeline"]
    assert ("reassigned", "李伟", "李伟", "Chen Jie") in \
        [(e["event"], e["by"], e.get("from_owner"), e.get("to_owner")) for e in timeline]
    bad = chen.post(f"/console/alerts/{fp}/reassign", {"csrf": csrf_of(chen.get(f"/console/alerts/{fp}").text),
                                                       "to": "nobody"}, html=False)
    assert bad.status == 400 and "not in the owners directory" in bad.json()["error"]


def test_a_team_mailbox_gets_the_pages_address_and_each_person_signs_in_with_their_own_link(tmp_path: Path) -> None:
    with SmtpSink() as smtp:
        cfg = config(f"""
            external_url: {EXTERNAL}
            console: {{secret: {SECRET}}}
            owners:
              people:
                li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, team: purchasing}}
              teams:
                purchasing: {{name: 采购部, email: purchasing@example.com, language: zh}}
            receivers:
              - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {smtp.port}}}}}
            route:
              receivers: [mail]
              to: [team:purchasing]
              group_wait: 0s
            """)
        store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
        store.apply([PO1])
        Pipeline(cfg, store, Clock()).step(0)
        store.close()
        (mail,) = smtp.to("purchasing@example.com")
    body = mail.get_content()
    # A mailbox many people read carries no personal credential: the page, where each signs in.
    assert f"{EXTERNAL}/console/alerts/{PO1.fingerprint}?do=ack" in body
    assert "/console/signin" not in body and "orderwatch alerts ack" not in body
