"""Routing scenarios: alerts in, who hears what and when out (simulated clock, real store, JSONL receiver).

Each test tells a story in the owners' terms: the buyer hears once, the
manager hears when nobody acknowledged, quiet hours hold the night's news,
silences and inhibition mute, a restart notifies nobody twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.deliver import Deliverer
from alerts.dispatch import Dispatcher
from alerts.store import AlertStore
from tests.alerts_helpers import BACKENDS, DAY, HOUR, T0, Clock, Pipeline, config, database, event

DIRECTORY = """
owners:
  people:
    li.wei: {name: 李伟, email: li.wei@example.com, language: zh, team: purchasing, timezone: Asia/Shanghai}
    anna: {name: Anna Schmidt, email: anna@example.com, language: en, team: purchasing, timezone: Europe/Berlin,
           quiet_hours: "22:00-07:00"}
    wang.fang: {name: 王芳, email: wang.fang@example.com, language: zh, timezone: Asia/Shanghai}
    nomail: {name: No Mail, team: purchasing}
  teams:
    purchasing: {name: 采购部, manager: wang.fang, email: purchasing@example.com, aliases: [采购]}
    operations: {name: Ops, manager: wang.fang, email: ops@example.com}
"""


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


def setup(tmp_path: Path, route: str, extra: str = "", clock: Clock | None = None, url: str | None = None) -> Pipeline:
    text = DIRECTORY + f"""
receivers:
  - {{name: log, type: jsonl, path: {tmp_path / 'sent.jsonl'}}}
  - {{name: mail, type: email, from: ow@example.com, smtp: {{host: 127.0.0.1, port: 1}}}}
  - {{name: quiet-log, type: jsonl, path: {tmp_path / 'sent.jsonl'}, send_resolved: false}}
route:
{route}
{extra}
"""
    cfg = config(text)
    return Pipeline(cfg, AlertStore(url or f"sqlite:///{tmp_path / 'alerts.sqlite'}"), clock or Clock())


def sent(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "sent.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def who(tmp_path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(recipient id, [(alert key, status)]) per notification, in order."""
    return [((n["recipient"] or {}).get("id", ""), [(a["key"], a["status"]) for a in n["alerts"]])
            for n in sent(tmp_path)]


BASIC = """
  receivers: [log]
  to: [owner]
  group_by: [owner]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1d
  escalate:
    - {after: 4h, to: [manager]}
    - {after: 1d, to: [team]}
"""


def test_the_owner_hears_once_after_group_wait_then_daily(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC)
    p.store.apply([event("PO-1"), event("PO-2")])
    p.step(10)
    assert sent(tmp_path) == []  # group_wait: more may come
    p.step(25)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing"), ("PO-2", "firing")])]
    note = sent(tmp_path)[0]
    assert note["language"] == "zh" and note["subject"] == "[告警 2] 采购到货逾期"
    assert "负责人: 李伟" in note["text"] and "开始: 2025年3月3日 09:00 中国标准时间" in note["text"]
    for _ in range(10):
        p.step(60)
    assert len(sent(tmp_path)) == 1  # no duplicates while nothing changes
    p.store.acknowledge([event("PO-1").fingerprint, event("PO-2").fingerprint], "li.wei", "on it", p.clock.dt)
    p.step(DAY)
    assert len(sent(tmp_path)) == 1  # acknowledged: no repeat, no escalation


def test_a_new_alert_in_a_notified_group_waits_for_group_interval(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC)
    p.store.apply([event("PO-1")])
    p.step(31)
    p.store.apply([event("PO-2", at=p.clock.now)])
    p.step(60)
    assert len(sent(tmp_path)) == 1
    p.step(5 * 60)
    assert who(tmp_path)[-1] == ("li.wei", [("PO-1", "firing"), ("PO-2", "firing")])


def test_unacknowledged_alerts_escalate_to_the_manager_then_the_team(tmp_path: Path, store_url: str) -> None:
    p = setup(tmp_path, BASIC, url=store_url)
    fire = event("PO-1")
    p.store.apply([fire])
    p.step(31)
    p.step(4 * HOUR)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")]), ("wang.fang", [("PO-1", "firing")])]
    manager_note = sent(tmp_path)[1]
    assert manager_note["level"] == 1 and manager_note["subject"].startswith("[升级]")
    p.step(DAY)
    # A day on: the team (its mailbox) hears; owner and manager get their daily reminder.
    assert sorted(w for w, _ in who(tmp_path)[2:]) == ["li.wei", "purchasing", "wang.fang"]
    alert = p.store.get(fire.fingerprint)
    assert alert.escalation_level == 2
    escalations = [e for e in p.store.events(fire.fingerprint) if e.state == "escalated"]
    assert [(e.detail["level"], e.detail["to"]) for e in escalations] == [(1, ["person:wang.fang"]),
                                                                          (2, ["team:purchasing"])]
    notified = [(e.actor, e.detail["recipient"]) for e in p.store.events(fire.fingerprint) if e.state == "notified"]
    assert notified[:2] == [("log", "li.wei"), ("log", "wang.fang")]


def test_acknowledging_stops_escalation(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC)
    fire = event("PO-1")
    p.store.apply([fire])
    p.step(31)
    p.step(3 * HOUR)
    p.store.acknowledge([fire.fingerprint], "li.wei", "supplier ships Friday", p.clock.dt)
    p.step(2 * HOUR)
    p.step(2 * DAY)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")])]
    assert p.store.get(fire.fingerprint).escalation_level == 0


def test_the_rules_escalation_raises_severity_and_adds_to_the_routes_steps(tmp_path: Path) -> None:
    route = BASIC + """
  routes:
    - matchers: [severity="critical"]
      receivers: [log]
      to: [owner]
      group_wait: 0s
"""
    p = setup(tmp_path, route)
    steps = ({"after": "2h", "after_seconds": 7200.0, "severity": "critical", "notify": "person:wang.fang"},)
    fire = event("PO-1", escalate=steps)
    p.store.apply([fire])
    p.step(31)
    p.step(2 * HOUR)
    notes = sent(tmp_path)
    assert sorted((n["recipient"]["id"], n["group_key"].split("|")[0]) for n in notes) == [
        ("li.wei", "root"), ("li.wei", "root.0"), ("wang.fang", "root.0")]
    assert [n["alerts"][0]["severity"] for n in notes] == ["warning", "critical", "critical"]
    # The route's 4h step names the manager too: already told, nobody new to tell.
    p.step(3 * HOUR)
    assert len(sent(tmp_path)) == 3
    p.step(DAY)  # the route's 1d step: the team
    assert "purchasing" in [w for w, _ in who(tmp_path)[3:]]


def test_quiet_hours_hold_until_morning_but_not_critical(tmp_path: Path) -> None:
    # 22:30 in Berlin (21:30 UTC).
    p = setup(tmp_path, BASIC, clock=Clock(T0 + 20.5 * HOUR))
    p.store.apply([event("PO-1", owner="anna", at=p.clock.now)])
    p.store.apply([event("PO-9", owner="anna", at=p.clock.now, severity="critical", rule="stock-out")])
    p.step(31)
    assert who(tmp_path) == [("anna", [("PO-9", "firing")])]
    assert sent(tmp_path)[0]["language"] == "en"
    p.step(4 * HOUR)  # 02:30: still quiet; the manager (no quiet hours) hears about both
    assert [w for w, _ in who(tmp_path)] == ["anna", "wang.fang"]
    p.step(4.5 * HOUR)  # 07:00 in Berlin: the held alert goes out
    assert who(tmp_path)[-1] == ("anna", [("PO-1", "firing"), ("PO-9", "firing")])


def test_a_silence_mutes_and_its_end_releases(tmp_path: Path, store_url: str) -> None:
    from alerts import matchers as m
    from alerts.silence import Silences

    p = setup(tmp_path, BASIC, url=store_url)
    fire = event("PO-1")
    p.store.apply([fire, event("PO-2", labels={"supplier": "Nordic Steel"})])
    silences = Silences(p.store)
    silence = silences.add([m.parse('supplier="Acme Bearings"')], p.clock.dt, p.clock.dt.replace(hour=5),
                           "wang.fang", "Acme closed for the holiday", p.clock.dt)
    assert p.store.get(fire.fingerprint).state == "silenced"
    p.step(31)
    assert who(tmp_path) == [("li.wei", [("PO-2", "firing")])]
    p.step(4 * HOUR)  # the silence ends at 05:00 UTC
    history = [(e.state, e.actor, e.comment) for e in p.store.events(fire.fingerprint)]
    assert ("silenced", "wang.fang", "Acme closed for the holiday") in history
    assert history[-1][0] == "notified" and ("unsilenced", "orderwatch", None) in history
    assert p.store.get(fire.fingerprint).state == "firing"
    assert ("li.wei", [("PO-1", "firing"), ("PO-2", "firing")]) in who(tmp_path)
    assert silences.get(silence.id).status(p.clock.dt) == "expired"


def test_a_silence_written_in_shanghai_time_starts_and_ends_on_time(tmp_path: Path, store_url: str) -> None:
    from zoneinfo import ZoneInfo

    from alerts import matchers as m
    from alerts.silence import Silences

    p = setup(tmp_path, BASIC, url=store_url)
    fire = event("PO-1", labels={"supplier": "东方轴承有限公司"})
    p.store.apply([fire])
    shanghai = ZoneInfo("Asia/Shanghai")  # T0 is 09:00 there; the plant closes 10:00-12:00
    silences = Silences(p.store)
    silence = silences.add([m.parse('supplier=~"东方.*"')], p.clock.dt.replace(hour=2).astimezone(shanghai),
                           p.clock.dt.replace(hour=4).astimezone(shanghai), "wang.fang", "东方 stocktaking",
                           p.clock.dt)
    assert silences.get(silence.id).starts_at == p.clock.dt.replace(hour=2)
    assert silences.get(silence.id).status(p.clock.dt) == "pending"
    p.step(31)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")])]
    p.step(HOUR)  # 10:00 in Shanghai
    assert p.store.get(fire.fingerprint).state == "silenced"
    p.step(2 * HOUR)  # 12:00 in Shanghai
    assert p.store.get(fire.fingerprint).state == "firing"
    assert silences.get(silence.id).status(p.clock.dt) == "expired"


def test_a_supplier_shutdown_inhibits_its_late_deliveries(tmp_path: Path) -> None:
    inhibit = """
inhibit_rules:
  - source_matchers: [rule="supplier-shutdown"]
    target_matchers: [family="delay"]
    equal: [supplier]
"""
    p = setup(tmp_path, BASIC, inhibit)
    shutdown = event("SUP-ACME", rule="supplier-shutdown", labels={"family": "supplier"})
    p.store.apply([shutdown, event("PO-1"), event("PO-2"), event("PO-3", labels={"supplier": "Nordic"})])
    p.step(31)
    assert who(tmp_path) == [("li.wei", [("PO-3", "firing"), ("SUP-ACME", "firing")])]
    p.store.apply([event("SUP-ACME", "resolved", rule="supplier-shutdown", at=p.clock.now, since=T0,
                         labels={"family": "supplier"})])
    p.step(5 * 60)
    assert who(tmp_path)[-1] == ("li.wei", [("PO-1", "firing"), ("PO-2", "firing"), ("PO-3", "firing"),
                                            ("SUP-ACME", "resolved")])


def test_unknown_owner_falls_back_to_the_departments_team(tmp_path: Path) -> None:
    route = BASIC.replace("to: [owner]", 'to: [owner]\n  fallback: ["team:{department}", "team:operations"]')
    p = setup(tmp_path, route)
    p.store.apply([event("PO-1", owner="temp.worker", labels={"department": "采购"}),
                   event("PO-2", owner=None)])
    p.step(31)
    assert sorted(who(tmp_path)) == [("operations", [("PO-2", "firing")]), ("purchasing", [("PO-1", "firing")])]
    p.step(4 * HOUR)
    # Escalation climbs from the team the alert fell back to: its manager.
    assert sorted(w for w, _ in who(tmp_path)[2:]) == ["wang.fang", "wang.fang"]


def test_the_resolution_goes_to_whoever_heard_of_the_alert(tmp_path: Path, store_url: str) -> None:
    p = setup(tmp_path, BASIC, url=store_url)
    p.store.apply([event("PO-1")])
    p.step(31)
    p.step(4 * HOUR)
    p.store.apply([event("PO-1", "resolved", at=p.clock.now, since=T0)])
    p.step(5 * 60)
    tail = sorted(who(tmp_path)[2:])
    assert tail == [("li.wei", [("PO-1", "resolved")]), ("wang.fang", [("PO-1", "resolved")])]
    assert "[已恢复 1]" in sent(tmp_path)[-1]["subject"]
    p.step(DAY)
    assert len(sent(tmp_path)) == 4
    assert p.store.list(state="resolved")[0].to_dict()["state"] == "resolved"


def test_send_resolved_false_tells_nothing_and_owes_nothing(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC.replace("[log]", "[quiet-log]"))
    p.store.apply([event("PO-1")])
    p.step(31)
    p.store.apply([event("PO-1", "resolved", at=p.clock.now, since=T0)])
    p.step(5 * 60)
    p.step(DAY)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")])]
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alerts.schema import AlertRow
    with Session(p.store.engine) as s:
        assert s.scalar(select(AlertRow.dispatch_pending)) is False


def test_a_person_without_an_email_address_is_skipped_not_fatal(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC.replace("receivers: [log]", "receivers: [log, mail]"))
    p.store.apply([event("PO-1", owner="nomail")])
    p.dispatcher.run_once()
    p.step(31)
    # JSONL reached them; email could not address them and queued nothing.
    assert who(tmp_path) == [("nomail", [("PO-1", "firing")])]
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from alerts.schema import OutboxRow
    with Session(p.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 1


def test_replayed_events_after_a_crash_notify_nobody_twice(tmp_path: Path, store_url: str) -> None:
    """Acceptance 2: the same alert events delivered twice (crash and restart) → one notification."""
    p = setup(tmp_path, BASIC, url=store_url)
    events = [event("PO-1"), event("PO-2")]
    p.store.apply(events)
    p.step(31)
    assert len(sent(tmp_path)) == 1
    # The worker dies; a new one starts with fresh in-memory state and the topic is replayed.
    p2 = Pipeline(p.config, AlertStore(p.store.url), p.clock)
    assert p2.store.apply(events) == []
    for _ in range(5):
        p2.step(60)
    assert len(sent(tmp_path)) == 1


def test_a_notification_queued_before_a_crash_is_sent_after_the_restart(tmp_path: Path) -> None:
    p = setup(tmp_path, BASIC)
    p.store.apply([event("PO-1")])
    p.clock.advance(31)
    assert p.dispatcher.run_once().queued == 1  # queued; the process dies before the outbox sweep
    store = AlertStore(p.store.url)
    assert Dispatcher(p.config, store, p.clock).run_once().queued == 0  # the nflog remembers it
    import asyncio

    asyncio.run(_sweep(Deliverer(p.config, store, p.clock)))
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")])]
    assert store.get(event("PO-1").fingerprint).delivery == "sent"


async def _sweep(d: Deliverer) -> None:
    try:
        await d.run_once()
    finally:
        await d.close()


@pytest.mark.parametrize("group_by", ["[owner]", "['...']"])
def test_group_by_decides_what_shares_a_message(tmp_path: Path, group_by: str) -> None:
    p = setup(tmp_path, BASIC.replace("group_by: [owner]", f"group_by: {group_by}"))
    p.store.apply([event("PO-1"), event("PO-2")])
    p.step(31)
    expected = 1 if group_by == "[owner]" else 2
    assert len(sent(tmp_path)) == expected
