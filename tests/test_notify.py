"""Each delivery integration against a real local server, checked against the vendor's documented shape.

Chat platforms: the JSON body each one documents for its incoming webhook /
custom robot, mentions, and (DingTalk, Feishu) the signature, which the
local server recomputes from the shared secret the way the platform does.
Email goes through a real SMTP server (aiosmtpd). Failures come back as
DeliveryError carrying what the endpoint said.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.message import AlertItem, Notification
from alerts.notify import DeliveryError, SendContext
from alerts.store import AlertStore
from tests.alerts_helpers import HOUR, T0, Clock, Pipeline, config, event
from tests.notify_servers import HttpRecorder, HttpRecorderThread, Request, SmtpSink

LI_WEI = {"kind": "person", "id": "li.wei", "name": "李伟", "emails": ["li.wei@example.com"], "language": "zh",
          "timezone": "Asia/Shanghai", "chat": {"dingtalk": "13800000001", "wecom": "LiWei",
                                                "feishu": "ou_7d8a6e6df7621556ce0d21922b676706"}}
ANNA = {"kind": "person", "id": "anna", "name": "Anna Schmidt", "emails": ["anna@example.com"], "language": "en",
        "timezone": "Europe/Berlin", "chat": {"slack": "U024BE7LH", "teams": "anna.schmidt@example.com"}}


def notification(recipient: dict[str, Any] | None = LI_WEI, level: int = 0, n: int = 2, id: int = 7) -> Notification:
    alerts = [AlertItem(fingerprint=f"fp{i:014d}", rule="po-delivery-overdue", entity="purchase_order",
                        key=f"PO-2025-00{42 + i}", status="firing", state="firing", severity="warning",
                        title="采购到货逾期 / PO delivery overdue", summary=f"PO PO-2025-00{42 + i} from Acme is 9 days late",
                        owner="li.wei", labels={"family": "delay", "supplier": "Acme"},
                        starts_at="2025-03-03T01:00:00+00:00", level=level, owner_name="李伟") for i in range(n)]
    lang = (recipient or {}).get("language", "en")
    return Notification(receiver="r", group_key='root|{"owner": "li.wei"}', group_labels={"owner": "li.wei"},
                        recipient=recipient, language=lang, timezone=(recipient or {}).get("timezone", "UTC"),
                        level=level, alerts=alerts, created_at="2025-03-03T01:00:31+00:00",
                        external_url="http://ow.example.com:6066", id=id)


def receiver(text: str) -> Any:
    cfg = config("receivers:\n" + text)
    return next(iter(cfg.receivers.values()))


async def send(rcv: Any, n: Notification) -> None:
    async with aiohttp.ClientSession() as http:
        await rcv.send(n, SendContext(http, clock=Clock(T0 + 31)))  # sent when `notification()` was created


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def with_server(fn: Any, replies: dict[str, Any] | None = None) -> HttpRecorder:
    server = await HttpRecorder().start()
    server.replies.update(replies or {})
    try:
        await fn(server)
    finally:
        await server.stop()
    return server


# --- Slack ----------------------------------------------------------------------------


def test_slack_incoming_webhook_text_and_blocks() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/services/T0/B0/x"] = lambda r: (200, "ok")
        await send(receiver(f"  - {{name: s, type: slack, url: '{s.url}/services/T0/B0/x'}}"), notification(ANNA))

    (req,) = run(with_server(go)).requests
    body = req.json()
    assert req.headers["Content-Type"].startswith("application/json")
    assert body["text"] == "<@U024BE7LH> [FIRING:2] PO delivery overdue"
    header, *sections = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "[FIRING:2] PO delivery overdue"}}
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in sections)
    assert sections[0]["text"]["text"].startswith("<@U024BE7LH> *[FIRING] PO delivery overdue*")
    assert "owner: 李伟 | severity: warning | since: 3 Mar 2025 02:00 Central European Standard Time (just now)" in sections[0]["text"]["text"]
    assert "orderwatch alerts ack fp00000000000000 fp00000000000001" in sections[-1]["text"]["text"]


def _with_summary(n: Notification, summary: str) -> Notification:
    from dataclasses import replace

    return replace(n, alerts=[replace(a, summary=summary) for a in n.alerts])


def test_slack_shows_order_text_as_written_and_it_pings_nobody() -> None:
    summary = "Acme <!channel> says: qty < 5 & price > 10"
    n = _with_summary(notification(ANNA), summary)

    async def go(s: HttpRecorder) -> None:
        s.replies["/hook"] = lambda r: (200, "ok")
        await send(receiver(f"  - {{name: s, type: slack, url: '{s.url}/hook'}}"), n)

    body = run(with_server(go)).requests[0].json()
    section = body["blocks"][1]["text"]["text"]
    assert section.startswith("<@U024BE7LH> *")  # our mention stays a mention
    assert "Acme &lt;!channel&gt; says: qty &lt; 5 &amp; price &gt; 10" in section
    assert "<!channel>" not in section


def test_slack_error_answer_is_a_delivery_error() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/hook"] = lambda r: (400, "invalid_payload")
        with pytest.raises(DeliveryError, match="HTTP 400: invalid_payload"):
            await send(receiver(f"  - {{name: s, type: slack, url: '{s.url}/hook'}}"), notification(ANNA))

    run(with_server(go))


# --- Microsoft Teams -------------------------------------------------------------------------


def test_teams_adaptive_card_with_mention() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/workflows/x"] = lambda r: (202, "")
        await send(receiver(f"  - {{name: t, type: teams, url: '{s.url}/workflows/x'}}"), notification(ANNA))

    body = run(with_server(go)).requests[0].json()
    assert body["type"] == "message"
    (att,) = body["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert all(b["type"] == "TextBlock" and isinstance(b["text"], str) for b in card["body"])
    assert card["body"][0]["text"] == "[FIRING:2] PO delivery overdue"
    (mention,) = card["msteams"]["entities"]
    assert mention == {"type": "mention", "text": "<at>Anna Schmidt</at>",
                       "mentioned": {"id": "anna.schmidt@example.com", "name": "Anna Schmidt"}}
    assert any(b["text"] == "<at>Anna Schmidt</at>" for b in card["body"])  # the text must carry the tag


# --- DingTalk ----------------------------------------------------------------------------------


def dingtalk_check(secret: str) -> Any:
    """What DingTalk does: recompute the signature from timestamp and secret, refuse a mismatch."""

    def reply(r: Request) -> tuple[int, Any]:
        ts, sign = r.query.get("timestamp", ""), r.query.get("sign", "")
        expected = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(),
                                             hashlib.sha256).digest()).decode()
        if abs(int(ts) / 1000 - time.time()) > 3600 or sign != expected:
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    return reply


def test_dingtalk_signed_markdown_with_at_mobile() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/robot/send"] = dingtalk_check("SEC123secret")
        rcv = receiver(f"  - {{name: d, type: dingtalk, url: '{s.url}/robot/send?access_token=tok', secret: SEC123secret}}")
        await send(rcv, notification(LI_WEI, level=1))

    (req,) = run(with_server(go)).requests
    assert req.query["access_token"] == "tok" and req.query["timestamp"].isdigit()
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "[升级] [告警 2] 采购到货逾期"
    assert body["markdown"]["text"].startswith("@13800000001\n\n**[升级] [告警 2] 采购到货逾期**")
    assert "对象: 采购订单 PO-2025-0042 | 负责人: 李伟" in body["markdown"]["text"]
    assert body["at"] == {"atMobiles": ["13800000001"], "atUserIds": [], "isAtAll": False}


def test_dingtalk_wrong_secret_is_refused_and_reported() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/robot/send"] = dingtalk_check("the-real-secret")
        rcv = receiver(f"  - {{name: d, type: dingtalk, url: '{s.url}/robot/send?access_token=t', secret: wrong}}")
        with pytest.raises(DeliveryError, match="errcode 310000: sign not match") as info:
            await send(rcv, notification())
        assert "access_token" not in str(info.value)  # webhook tokens stay out of logs

    run(with_server(go))


# --- WeCom -----------------------------------------------------------------------------------------


def test_wecom_markdown_mentions_the_user_and_fits_4096_bytes() -> None:
    async def go(s: HttpRecorder) -> None:
        rcv = receiver(f"  - {{name: w, type: wecom, url: '{s.url}/cgi-bin/webhook/send?key=abc'}}")
        await send(rcv, notification(LI_WEI, n=60))

    (req,) = run(with_server(go)).requests
    assert req.query == {"key": "abc"}
    body = req.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("<@LiWei>\n**[告警 60] 采购到货逾期**")
    assert len(content.encode()) <= 4096


def test_wecom_error_code_is_a_delivery_error() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/send"] = lambda r: (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
        with pytest.raises(DeliveryError, match="errcode 93000: invalid webhook url"):
            await send(receiver(f"  - {{name: w, type: wecom, url: '{s.url}/send?key=k'}}"), notification())

    run(with_server(go))


# --- Feishu ------------------------------------------------------------------------------------------


def feishu_check(secret: str) -> Any:
    def reply(r: Request) -> tuple[int, Any]:
        body = r.json()
        ts = body.get("timestamp", "")
        expected = base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
        if not ts or abs(int(ts) - time.time()) > 3600 or body.get("sign") != expected:
            return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}
        return 200, {"code": 0, "msg": "success", "data": {}}

    return reply


def test_feishu_signed_post_with_at() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/open-apis/bot/v2/hook/xyz"] = feishu_check("fs-secret")
        rcv = receiver(f"  - {{name: f, type: feishu, url: '{s.url}/open-apis/bot/v2/hook/xyz', secret: fs-secret}}")
        await send(rcv, notification(LI_WEI))

    body = run(with_server(go)).requests[0].json()
    assert isinstance(body["timestamp"], str) and body["timestamp"].isdigit()
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == "[告警 2] 采购到货逾期"
    assert post["content"][0] == [{"tag": "at", "user_id": "ou_7d8a6e6df7621556ce0d21922b676706"}]
    assert all(isinstance(line, list) and all(el["tag"] in ("text", "at") for el in line) for line in post["content"])
    assert ["【告警】采购到货逾期"] == [el["text"] for el in post["content"][1]]


def test_feishu_bad_signature_is_refused_and_reported() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/hook"] = feishu_check("right")
        with pytest.raises(DeliveryError, match="code 19021: sign match fail"):
            await send(receiver(f"  - {{name: f, type: feishu, url: '{s.url}/hook', secret: wrong}}"), notification())

    run(with_server(go))


# --- generic webhook ------------------------------------------------------------------------------------


def test_webhook_alertmanager_shape_signed_with_hmac() -> None:
    async def go(s: HttpRecorder) -> None:
        rcv = receiver(f"  - {{name: hook, type: webhook, url: '{s.url}/in', secret: s3cret, "
                       "headers: {X-Team: buyers}}")
        await send(rcv, notification(LI_WEI))

    (req,) = run(with_server(go)).requests
    ts, sig = req.headers["X-Orderwatch-Timestamp"], req.headers["X-Orderwatch-Signature"]
    assert sig == "sha256=" + hmac.new(b"s3cret", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Team"] == "buyers" and req.headers["Idempotency-Key"] == "orderwatch-7"
    body = req.json()
    assert {"version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
            "externalURL", "alerts", "truncatedAlerts"} <= set(body)
    assert body["version"] == "4" and body["status"] == "firing"
    first = body["alerts"][0]
    assert first["labels"]["alertname"] == "po-delivery-overdue" and first["labels"]["owner"] == "li.wei"
    assert first["startsAt"] == "2025-03-03T01:00:00+00:00"
    assert first["generatorURL"] == "http://ow.example.com:6066/api/alerts/fp00000000000000"
    assert body["commonLabels"]["supplier"] == "Acme"
    assert body["orderwatch"]["recipient"]["id"] == "li.wei" and body["orderwatch"]["language"] == "zh"


# --- Alertmanager API (shape; tests/test_notify_alertmanager.py runs the real one) --------------------


def test_alertmanager_postable_alerts_shape() -> None:
    async def go(s: HttpRecorder) -> None:
        s.replies["/api/v2/alerts"] = lambda r: (200, "")
        await send(receiver(f"  - {{name: am, type: alertmanager, url: '{s.url}/', ends_after: 2h}}"),
                   notification(None))

    (req,) = run(with_server(go)).requests
    body = req.json()
    assert isinstance(body, list) and len(body) == 2
    assert set(body[0]) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert body[0]["startsAt"] == "2025-03-03T01:00:00Z" and body[0]["endsAt"] == "2025-03-03T03:00:31Z"
    assert body[0]["labels"]["alertname"] == "po-delivery-overdue" and body[0]["labels"]["source"] == "orderwatch"


def test_an_alert_delivered_to_alertmanager_after_hours_of_retries_arrives_firing(tmp_path: Path) -> None:
    from datetime import datetime

    with HttpRecorderThread() as server:
        state = {"down": True}
        server.replies["/api/v2/alerts"] = lambda r: (503, "maintenance") if state["down"] else (200, "")
        cfg = config(f"""
receivers: [{{name: am, type: alertmanager, url: '{server.url}', ends_after: 1h}}]
route: {{receivers: [am], group_wait: 0s, repeat_interval: 30m}}
delivery: {{retry_initial: 10m, retry_max: 10m}}
""")
        p = Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock())
        p.store.apply([event("PO-1")])
        p.step(0)
        for _ in range(11):
            p.step(600)
        state["down"] = False
        before = len(server.requests)
        p.step(600)  # two hours later: Alertmanager is back
        delivered = [r.json() for r in server.requests[before:]]
    assert delivered  # the first notification, then the reminders queued meanwhile
    for body in delivered:
        ends = datetime.fromisoformat(body[0]["endsAt"])
        assert ends > p.clock.dt  # each still firing when it arrives


# --- email (real SMTP) -------------------------------------------------------------------------------------


def test_email_in_the_recipients_language_through_a_real_smtp_server() -> None:
    with SmtpSink() as smtp:
        rcv = receiver(f"  - {{name: mail, type: email, from: orderwatch@example.com, "
                       f"smtp: {{host: 127.0.0.1, port: {smtp.port}}}}}")
        run(send(rcv, notification(LI_WEI)))
        run(send(rcv, notification(ANNA, id=8)))
        run(send(rcv, notification(LI_WEI)))
    zh, en, again = (m for _, m in smtp.messages)
    assert zh["Subject"] == "[告警 2] 采购到货逾期" and zh["To"] == "li.wei@example.com"
    assert zh["From"] == "orderwatch@example.com" and zh["Content-Language"] == "zh-CN"
    text = zh.get_content()
    assert "PO PO-2025-0042 from Acme is 9 days late" in text and "开始: 2025年3月3日 09:00 中国标准时间" in text
    assert "确认(停止提醒和升级): orderwatch alerts ack fp00000000000000 fp00000000000001" in text
    assert en["Subject"] == "[FIRING:2] PO delivery overdue" and "since: 3 Mar 2025 02:00 Central European Standard Time" in en.get_content()
    # The same outbox row always carries the same Message-ID (a resend after a crash is recognisable).
    assert zh["Message-ID"] == again["Message-ID"] != en["Message-ID"]
    assert zh["X-Orderwatch-Alerts"] == "fp00000000000000 fp00000000000001"


def test_a_plain_text_email_shows_html_special_characters_as_written() -> None:
    summary = "<b>Acme</b> & Söhne: qty < 5"
    with SmtpSink() as smtp:
        rcv = receiver(f"  - {{name: mail, type: email, from: orderwatch@example.com, "
                       f"smtp: {{host: 127.0.0.1, port: {smtp.port}}}}}")
        run(send(rcv, _with_summary(notification(ANNA), summary)))
    ((_, msg),) = smtp.messages
    assert msg.get_content_type() == "text/plain" and summary in msg.get_content()


def test_email_to_an_unreachable_server_is_a_delivery_error() -> None:
    from orderwatch.broker import free_port

    rcv = receiver(f"  - {{name: mail, type: email, from: o@example.com, smtp: {{host: 127.0.0.1, port: {free_port()}}}, "
                   "timeout: 2s}")
    with pytest.raises(DeliveryError, match="SMTP 127.0.0.1"):
        run(send(rcv, notification()))


def _mail_pipeline(tmp_path: Path, smtp: SmtpSink) -> Pipeline:
    cfg = config(f"""
owners:
  people:
    li.wei: {{name: 李伟, email: li.wei@example.com, team: purchasing}}
    anna: {{name: Anna, email: anna@example.com, team: purchasing}}
  teams: {{purchasing: {{name: 采购部}}}}
receivers:
  - {{name: mail, type: email, from: ow@example.com, smtp: {{host: 127.0.0.1, port: {smtp.port}}}, timeout: 5s}}
route: {{receivers: [mail], to: [team], group_wait: 0s}}
delivery: {{retry_initial: 10s}}
""")
    return Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock())


def test_an_smtp_server_busy_at_first_delivers_the_email_once(tmp_path: Path) -> None:
    busy = {"data": True}

    def refuse_data() -> str | None:
        first, busy["data"] = busy["data"], False
        return "451 4.3.0 try again later" if first else None

    with SmtpSink(refuse_data=refuse_data) as smtp:
        p = _mail_pipeline(tmp_path, smtp)
        p.store.apply([event("PO-1")])
        p.step(0)
        assert smtp.messages == []
        p.step(10)
        p.step(HOUR)
    assert [sorted(rcpts) for rcpts, _ in smtp.messages] == [["anna@example.com", "li.wei@example.com"]]


def test_one_refused_team_member_does_not_mail_the_others_again_on_every_retry(tmp_path: Path) -> None:
    busy = {"anna@example.com": True}

    def refuse_rcpt(address: str) -> str | None:
        if busy.get(address):
            busy[address] = False
            return "450 4.2.1 mailbox busy"
        return None

    with SmtpSink(refuse_rcpt=refuse_rcpt) as smtp:
        p = _mail_pipeline(tmp_path, smtp)
        p.store.apply([event("PO-1")])
        p.step(0)
        p.step(10)
        p.step(HOUR)
    assert len(smtp.to("li.wei@example.com")) == 1 and len(smtp.to("anna@example.com")) == 1


def test_an_email_accepted_before_a_failed_quit_is_not_sent_again(tmp_path: Path) -> None:
    with SmtpSink(quit_reply="421 4.4.2 closing connection") as smtp:
        p = _mail_pipeline(tmp_path, smtp)
        fire = event("PO-1")
        p.store.apply([fire])
        p.step(0)
        p.step(10)
        p.step(HOUR)
    assert len(smtp.messages) == 1
    assert p.store.get(fire.fingerprint).delivery == "sent"


def test_console_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    run(send(receiver("  - {name: c, type: console}"), notification(ANNA)))
    out = capsys.readouterr().out
    assert out.startswith("--- [FIRING:2] PO delivery overdue → Anna Schmidt [r]\n[FIRING] PO delivery overdue")


# --- retry with backoff, visible failure, nothing lost ------------------------------------------------------


def test_a_failing_endpoint_is_retried_with_backoff_and_shows_as_failing(tmp_path: Path) -> None:
    with HttpRecorderThread() as server:
        state = {"fail": True}
        server.replies["/hook"] = lambda r: (503, "busy") if state["fail"] else (200, "ok")
        cfg = config(f"""
owners:
  people: {{li.wei: {{name: 李伟, email: li.wei@example.com}}}}
receivers:
  - {{name: hook, type: webhook, url: '{server.url}/hook'}}
route: {{receivers: [hook], to: [owner], group_wait: 0s}}
delivery: {{retry_initial: 10s, retry_max: 40s, failing_after: 3}}
""")
        p = Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock())
        fire = event("PO-1")
        p.store.apply([fire])
        p.step(0)
        attempts = [len(server.requests)]
        for dt in (5, 6, 20, 40, 40):  # retries due at +10s, +20s, +40s, +40s (capped)
            p.step(dt)
            attempts.append(len(server.requests))
        assert attempts == [1, 1, 2, 3, 4, 5]
        alert = p.store.get(fire.fingerprint)
        assert alert.delivery == "failing" and "HTTP 503: busy" in (alert.delivery_error or "")
        failed = [e for e in p.store.events(fire.fingerprint) if e.state == "notify_failed"]
        assert len(failed) == 1 and failed[0].detail["attempts"] == 3
        state["fail"] = False
        p.step(40)
        assert p.store.get(fire.fingerprint).delivery == "sent"
        assert [e.state for e in p.store.events(fire.fingerprint)][-1] == "notified"
        p.step(HOUR)
        assert len(server.requests) == 6  # delivered once, not again


def test_a_rate_limited_webhook_is_retried_after_its_retry_after_once(tmp_path: Path) -> None:
    from aiohttp import web

    with HttpRecorderThread() as server:
        answers = iter([(429, web.Response(text="slow down", headers={"Retry-After": "120"}))])
        server.replies["/hook"] = lambda r: next(answers, (200, "ok"))
        cfg = config(f"""
receivers: [{{name: hook, type: webhook, url: '{server.url}/hook'}}]
route: {{receivers: [hook], group_wait: 0s}}
delivery: {{retry_initial: 10s, retry_max: 10m}}
""")
        p = Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock())
        fire = event("PO-1")
        p.store.apply([fire])
        p.step(0)
        p.step(10)
        p.step(60)
        assert len(server.requests) == 1  # the endpoint asked for two minutes
        p.step(50)
        p.step(HOUR)
        assert len(server.requests) == 2
        assert p.store.get(fire.fingerprint).delivery == "sent"


@contextmanager
def down_endpoint(tmp_path: Path, retry_max: str) -> Iterator[tuple[Pipeline, HttpRecorder, dict[str, bool]]]:
    """li.wei's alerts to a webhook that answers 500 while state["down"], every 4h as a reminder."""
    with HttpRecorderThread() as server:
        state = {"down": True}
        server.replies["/hook"] = lambda r: (500, "down") if state["down"] else (200, "ok")
        cfg = config(f"""
owners:
  people: {{li.wei: {{name: 李伟, email: li.wei@example.com}}}}
receivers: [{{name: hook, type: webhook, url: '{server.url}/hook'}}]
route: {{receivers: [hook], to: [owner], group_wait: 0s, repeat_interval: 4h}}
delivery: {{retry_initial: 10m, retry_max: {retry_max}}}
""")
        yield Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock(T0)), server, state


def test_reminders_do_not_pile_up_behind_an_endpoint_that_is_down(tmp_path: Path) -> None:
    with down_endpoint(tmp_path, "1h") as (p, server, state):
        p.store.apply([event("PO-1")])
        p.step(0)
        for _ in range(24):  # down for a day
            p.step(HOUR)
        state["down"] = False
        before = len(server.requests)
        p.step(HOUR)
        assert len(server.requests) - before == 1  # one message, not one per missed reminder
        p.step(4 * HOUR)  # the reminders go on as usual
        assert len(server.requests) - before == 2


def test_a_message_waiting_behind_a_down_endpoint_is_not_sent_once_everything_in_it_is_acknowledged(
        tmp_path: Path) -> None:
    with down_endpoint(tmp_path, "10m") as (p, server, state):
        p.store.apply([event("PO-1")])
        p.step(0)
        p.step(HOUR)
        failed = len(server.requests)
        assert failed >= 2  # tried, and tried again
        p.store.acknowledge([event("PO-1").fingerprint], "li.wei", "supplier called", p.clock.dt)
        state["down"] = False
        p.step(HOUR)
        assert len(server.requests) == failed  # nothing about what li.wei already took care of
        history = [e.state for e in p.store.events(event("PO-1").fingerprint)]
        assert history[-1] == "notify_cancelled"
        p.store.apply([event("PO-2", at=T0 + 2 * HOUR)])  # a new problem in the same group still goes out
        p.step(HOUR)
        assert len(server.requests) == failed + 1
        assert [a["labels"]["key"] for a in server.requests[-1].json()["alerts"]] == ["PO-2"]


def test_after_give_up_the_notification_is_kept_as_dead(tmp_path: Path) -> None:
    with HttpRecorderThread() as server:
        server.replies["/hook"] = lambda r: (500, "down")
        cfg = config(f"""
receivers: [{{name: hook, type: webhook, url: '{server.url}/hook'}}]
route: {{receivers: [hook], group_wait: 0s}}
delivery: {{retry_initial: 1m, retry_max: 1m, give_up_after: 5m}}
""")
        p = Pipeline(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"), Clock(T0))
        p.store.apply([event("PO-1")])
        for _ in range(8):
            p.step(60)
        n = len(server.requests)
        p.step(HOUR)
        assert len(server.requests) == n  # given up: no more attempts
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from alerts.schema import OutboxRow
        with Session(p.store.engine) as s:
            row = s.scalars(select(OutboxRow)).one()
        assert (row.status, row.last_error) == ("dead", "POST " + server.url + "/hook: HTTP 500: down")
        assert p.store.get(event("PO-1").fingerprint).delivery == "failing"
