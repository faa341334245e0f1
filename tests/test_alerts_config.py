"""The alerts YAML: what a person writes, and the file:line message they get for a mistake.

Also the pure pieces the file configures: matchers, quiet hours, the routing
tree, owner resolution, inhibition, templates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts import matchers as m
from alerts.config import load_alerts_config
from alerts.inhibit import Labelled, inhibited
from alerts.quiet import parse_range
from alerts.recipients import AlertContext
from alerts.template import Renderer, localize
from orderwatch.yamlsrc import SourceError
from tests.alerts_helpers import config

REPO = Path(__file__).resolve().parents[1]

OWNERS = """
owners:
  people:
    li.wei: {name: 李伟, email: li.wei@example.com, language: zh, team: purchasing, aliases: [李伟, E1001]}
    wang.fang: {name: 王芳, email: wang.fang@example.com, language: zh}
    anna: {name: Anna, email: anna@example.com, manager: li.wei, team: purchasing}
  teams:
    purchasing: {name: 采购部, manager: wang.fang, email: purchasing@example.com, aliases: [采购]}
    operations: {name: Ops, manager: wang.fang, members: [anna]}
receivers:
  - {name: mail, type: email, from: ow@example.com, smtp: {host: 127.0.0.1}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SourceError) as info:
        config(text)
    return [f"{pos.line}:{pos.col}: {msg}" for pos, msg in info.value.problems]


def test_the_shipped_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERWATCH_API_TOKEN", "DINGTALK_TOKEN", "DINGTALK_SECRET"):
        monkeypatch.setenv(name, "0123456789abcdef-test")
    cfg = load_alerts_config(REPO / "examples" / "alerts" / "alerts.yaml")
    assert set(cfg.receivers) == {"mail", "purchasing-dingtalk", "audit"}
    assert cfg.directory.person("李伟").id == "li.wei"
    assert cfg.route is not None and cfg.route.escalate[0].to == ("manager",)
    assert cfg.tokens[0].name == "ops-console"
    ids = lambda labels: [r.id for r in cfg.route.match(labels)]
    assert ids({"rule": "po-delivery-overdue", "severity": "warning"}) == ["root.0", "root.2"]
    assert ids({"rule": "po-delivery-overdue", "severity": "critical"}) == ["root.0", "root.1"]
    assert cfg.route.routes[2].receivers == ("mail",) and cfg.route.routes[2].to == ("owner",)


def test_missing_environment_variable_is_reported_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET_X", raising=False)
    found = problems(OWNERS + """  - {name: ding, type: dingtalk, url: "https://x/robot?t=${NO_SUCH_SECRET_X}"}\n""")
    assert found == ["12:34: environment variable NO_SUCH_SECRET_X is not set"]


def test_every_mistake_is_reported_with_file_line_and_a_sentence() -> None:
    found = problems(OWNERS + """
route:
  receivers: [mial]
  to: [owner, person:nobody, boss]
  group_wait: soon
  escalate:
    - {after: 1d, to: [team]}
    - {after: 4h, to: [manager]}
  routes:
    - matchers: ['severity=="critical"']
      receivers: [mail]
      colour: red
inhibit_rules:
  - {source_matchers: ['rule=~"("'], target_matchers: [family="delay"]}
templates:
  zh: {subject: "{nope} {title}"}
""")
    text = "\n".join(found)
    assert "receiver 'mial' is not defined; known: mail" in text
    assert "to: person 'nobody' is not in the owners directory" in text
    assert "to: 'boss' is not a recipient" in text
    assert "group_wait: not a duration: 'soon'" in text
    assert "escalation steps must come in order of increasing 'after'" in text
    assert "unknown key 'colour' in route root.0" in text
    assert "bad regular expression '('" in text
    assert "templates.zh.subject: unknown placeholder(s) nope" in text
    # Each message starts with its position in the file.
    assert all(p.split(":")[0].isdigit() for p in found)
    assert any(p.startswith("14:") for p in found if "mial" in p)


def test_owner_directory_cross_references_are_checked() -> None:
    text = "\n".join(problems("""
owners:
  people:
    a: {name: A, team: nosuchteam, manager: ghost, email: not-an-address, language: fr, timezone: Mars/Base}
  teams:
    t: {name: T, manager: ghost2, members: [a, zed]}
"""))
    assert "a: team 'nosuchteam' is not in teams" in text
    assert "a: manager 'ghost' is not in people" in text
    assert "email of a is not an address" in text
    assert "language is one of zh, en" in text
    assert "unknown time zone 'Mars/Base'" in text
    assert "team t: manager 'ghost2' is not in people" in text
    assert "team t: member 'zed' is not in people" in text


def test_a_misspelled_default_time_zone_is_reported_on_its_own_line() -> None:
    # Even without people (nobody inherits it yet) and once, not once per person or team.
    assert problems("timezone: Asia/Shanghia\n") == \
        ["1:1: unknown time zone 'Asia/Shanghia' (use an IANA name like Asia/Shanghai)"]
    found = problems("timezone: Asia/Shanghia\n" + OWNERS)
    assert [p for p in found if "time zone" in p] == \
        ["1:1: unknown time zone 'Asia/Shanghia' (use an IANA name like Asia/Shanghai)"]


def test_a_zero_interval_is_reported_where_it_is_written_not_on_every_child_route() -> None:
    found = problems(OWNERS + """
route:
  receivers: [mail]
  repeat_interval: 0s
  routes:
    - matchers: [family="delay"]
    - matchers: [family="stock"]
""")
    assert found == ["15:3: repeat_interval must be more than 0"]


def test_receiver_types_validate_their_own_keys() -> None:
    text = "\n".join(problems("""
receivers:
  - {name: a, type: pager}
  - {name: b, type: slack}
  - {name: c, type: webhook, url: "ftp://x"}
  - {name: d, type: email, from: x@y.z, smtp: {host: h, tls: maybe}}
  - {name: e, type: feishu, url: "https://open.feishu.cn/x", secrett: s}
"""))
    assert "type 'pager' is not one of alertmanager, console, dingtalk, email, feishu, jsonl, slack, teams, " \
           "webhook, wecom" in text
    assert "receiver b needs 'url'" in text
    assert "url must be an http:// or https:// URL" in text
    assert "tls is one of none, starttls, ssl" in text
    assert "unknown key 'secrett' in receiver e (feishu)" in text


def test_matchers_follow_alertmanager() -> None:
    labels = {"severity": "critical", "supplier": "Acme Bearings"}
    assert m.parse('severity="critical"').matches(labels)
    assert m.parse("severity!=warning").matches(labels)
    assert m.parse('supplier=~"Acme.*"').matches(labels)
    assert not m.parse('supplier=~"Acme"').matches(labels)  # anchored
    assert m.parse('supplier!~"Nordic.*"').matches(labels)
    assert m.parse('family=""').matches(labels)  # a missing label is the empty string
    assert m.parse('summary="say \\"hi\\""').value == 'say "hi"'
    assert m.from_dict(m.parse('a!~"x"').to_dict()) == m.parse('a!~"x"')
    with pytest.raises(ValueError, match="expected an operator"):
        m.parse("severity")


def test_quiet_hours_in_the_persons_time_zone() -> None:
    from zoneinfo import ZoneInfo

    from alerts.quiet import QuietHours

    night = QuietHours((parse_range("22:00-08:00"), parse_range("sat,sun 00:00-24:00")), ZoneInfo("Asia/Shanghai"))
    at = lambda s: datetime.fromisoformat(s).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert night.active(at("2025-03-04T23:30"))
    assert night.active(at("2025-03-05T07:59"))
    assert not night.active(at("2025-03-05T08:00"))
    assert night.active(at("2025-03-08T12:00"))  # Saturday
    assert not night.active(at("2025-03-07T12:00"))  # Friday noon
    assert night.ends(at("2025-03-05T06:00")) == at("2025-03-05T08:00").astimezone(UTC)
    # A night range starting on Friday covers Saturday morning only through "fri".
    friday = QuietHours((parse_range("fri 22:00-06:00"),), ZoneInfo("UTC"))
    assert friday.active(datetime(2025, 3, 8, 5, 0, tzinfo=UTC))
    assert not friday.active(datetime(2025, 3, 9, 5, 0, tzinfo=UTC))
    with pytest.raises(ValueError):
        parse_range("25:00-08:00")


def test_routing_tree_first_match_continue_and_inheritance() -> None:
    cfg = config(OWNERS + """
route:
  receivers: [mail]
  to: [owner]
  group_by: [owner]
  repeat_interval: 1d
  routes:
    - matchers: [family="stock"]
      group_wait: 5s
      continue: true
    - matchers: ['severity="critical"']
      to: [manager]
    - matchers: ['severity=~"warn.*"']
      repeat_interval: 2h
""")
    route = cfg.route
    assert route is not None
    ids = lambda labels: [r.id for r in route.match(labels)]
    assert ids({"family": "stock", "severity": "critical"}) == ["root.0", "root.1"]
    assert ids({"severity": "critical"}) == ["root.1"]
    assert ids({"severity": "info"}) == ["root"]
    warn = route.match({"severity": "warning"})[0]
    assert (warn.repeat_interval, warn.group_by, warn.to, warn.group_wait) == (7200, ("owner",), ("owner",), 30)


def test_recipients_climb_from_the_owner_or_the_fallback_team() -> None:
    cfg = config(OWNERS)
    d = cfg.directory
    ctx = AlertContext(d, "E1001", {"department": "采购"})  # an alias of li.wei
    assert [r.ref for r in ctx.resolve(["owner", "manager", "team"])] == \
        ["person:li.wei", "person:wang.fang", "team:purchasing"]
    assert ctx.resolve(["team"])[0].emails == ("purchasing@example.com",)
    anna = AlertContext(d, "anna", {})
    assert [r.ref for r in anna.resolve(["manager"])] == ["person:li.wei"]  # her own manager first
    unknown = AlertContext(d, "somebody.new", {"department": "采购"})
    assert unknown.resolve(["owner"]) == []
    assert [r.ref for r in unknown.first(["team:{department}", "team:operations"])] == ["team:purchasing"]
    assert [r.ref for r in unknown.resolve(["manager"])] == ["person:wang.fang"]
    ops = d.team_recipient(d.teams["operations"])
    assert ops.emails == ("anna@example.com",)  # no team mailbox: the members


def test_inhibition_mutes_targets_sharing_the_equal_labels() -> None:
    cfg = config("""
inhibit_rules:
  - source_matchers: [rule="supplier-shutdown"]
    target_matchers: [family="delay"]
    equal: [supplier]
""")
    alerts = [
        Labelled("shut", {"rule": "supplier-shutdown", "supplier": "Acme", "family": "supplier"}),
        Labelled("late1", {"rule": "po-delivery-overdue", "supplier": "Acme", "family": "delay"}),
        Labelled("late2", {"rule": "po-delivery-overdue", "supplier": "Nordic", "family": "delay"}),
    ]
    assert inhibited(cfg.inhibit_rules, alerts) == {"late1": "shut"}


def test_templates_pick_the_language_half_of_bilingual_titles() -> None:
    assert localize("采购到货逾期 / PO delivery overdue", "zh") == "采购到货逾期"
    assert localize("采购到货逾期 / PO delivery overdue", "en") == "PO delivery overdue"
    assert localize("Stock / Lager", "zh") == "Stock / Lager"
    cfg = config("""
templates:
  en: {subject: "orderwatch: {count} × {title}"}
""")
    assert cfg.templates["en"].subject == "orderwatch: {count} × {title}"
    assert Renderer(cfg.templates).templates["zh"].subject.startswith("{escalated}")


def test_api_tokens_have_read_and_write_scopes_and_a_token_without_scopes_keeps_both() -> None:
    cfg = config("""
api:
  tokens:
    - {name: wall-screen, token: read-only-token-0123, scopes: [read]}
    - {name: erp-portal, token: erp-portal-token-0123, scopes: [read, write]}
    - {name: old-script, token: old-script-token-0123}
""")
    scopes = {t.name: (t.allows("read"), t.allows("write")) for t in cfg.tokens}
    assert scopes == {"wall-screen": (True, False), "erp-portal": (True, True), "old-script": (True, True)}
    assert problems("""
api:
  tokens:
    - {name: a, token: aaaaaaaaaaaaaaaa, scopes: [read, admin]}
    - {name: b, token: bbbbbbbbbbbbbbbb, scopes: []}
    - {name: c, token: cccccccccccccccc, scopes: write}
""") == ["4:42: unknown scope 'admin'; scopes: read, write",
         "5:42: scopes is a list of one or both of read, write (e.g. [read])",
         "6:42: scopes is a list of one or both of read, write (e.g. [read])"]
