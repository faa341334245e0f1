"""`orderwatch alerts list|show|ack|resolve|silence`, run as a person would: a real process on a real store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from alerts.store import AlertStore
from tests.alerts_helpers import HOUR, T0, alerts_cli, event


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*alerts_cli(), "alerts", *args], capture_output=True, text=True, timeout=60, env=env,
                          check=False)


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    s = AlertStore(url)
    s.apply([event("PO-1"), event("PO-2", owner="zhang.min", labels={"supplier": "Nordic Steel"}),
             event("PO-3"), event("PO-3", "resolved", at=T0 + HOUR)])
    s.close()
    return url


def test_every_verb_has_help() -> None:
    for verb in (["list"], ["show"], ["ack"], ["resolve"], ["silence", "add"], ["silence", "list"],
                 ["silence", "expire"]):
        out = cli(*verb, "--help")
        assert out.returncode == 0, out.stderr
        assert "--format" in out.stdout and "--store" in out.stdout
    assert cli("check", "--help").returncode == 0


def test_list_filters_and_json(store: str) -> None:
    out = cli("list", "--store", store, "--state", "firing", "--filter", 'supplier=~"Nordic.*"')
    assert out.returncode == 0, out.stderr
    assert "PO-2" in out.stdout and "PO-1" not in out.stdout and out.stdout.endswith("1 alert(s)\n")
    rows = [json.loads(line) for line in cli("list", "--store", store, "--format", "json").stdout.splitlines()]
    assert sorted((r["key"], r["state"]) for r in rows) == [("PO-1", "firing"), ("PO-2", "firing"),
                                                            ("PO-3", "resolved")]
    assert cli("list", "--store", store, "--filter", "bad matcher").returncode == 2


def test_ack_by_prefix_then_show_the_history(store: str) -> None:
    fp = event("PO-1").fingerprint
    out = cli("ack", fp[:6], "--store", store, "--by", "li.wei", "-m", "supplier ships Friday")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"acknowledged {fp}\n"
    again = cli("ack", fp, "--store", store, "--by", "li.wei")
    assert again.returncode == 1 and "unchanged" in again.stdout
    shown = json.loads(cli("show", fp[:8], "--store", store, "--format", "json").stdout)
    assert shown["state"] == "acknowledged" and shown["acked_by"] == "li.wei"
    assert [(h["event"], h["by"], h["comment"]) for h in shown["history"]] == [
        ("firing", "engine", None), ("acknowledged", "li.wei", "supplier ships Friday")]
    text = cli("show", fp, "--store", store).stdout
    assert "acknowledged  by li.wei  — supplier ships Friday" in text


def test_ack_and_resolve_by_order(store: str) -> None:
    out = cli("resolve", "--order", "purchase_order:PO-2", "--store", store, "--by", "wang.fang", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"changed": [event("PO-2").fingerprint], "unchanged": [], "not_found": []}
    assert AlertStore(store).get(event("PO-2").fingerprint).resolved_by == "wang.fang"
    missing = cli("ack", "ffff0000", "--store", store)
    assert missing.returncode == 1 and "not found ffff0000" in missing.stderr
    again = cli("ack", "--order", "purchase_order:PO-2", "--store", store)  # resolved already: nothing open
    assert again.returncode == 1 and "no open alert for purchase_order:PO-2" in again.stderr


def test_silence_add_list_expire(store: str) -> None:
    out = cli("silence", "add", 'supplier="Acme Bearings"', "--duration", "2h", "--store", store,
              "--by", "wang.fang", "-m", "Acme closed for the Spring Festival", "--format", "json")
    assert out.returncode == 0, out.stderr
    silence = json.loads(out.stdout)
    assert silence["matchers"] == [{"name": "supplier", "value": "Acme Bearings", "isRegex": False, "isEqual": True}]
    assert silence["createdBy"] == "wang.fang" and silence["status"]["state"] == "active"
    states = {a.key: a.state for a in AlertStore(store).list()}
    assert states == {"PO-1": "silenced", "PO-2": "firing", "PO-3": "resolved"}
    listed = cli("silence", "list", "--store", store, "--state", "active")
    assert silence["id"] in listed.stdout and "1 silence(s)" in listed.stdout
    assert cli("silence", "expire", silence["id"], "--store", store).returncode == 0
    assert AlertStore(store).get(event("PO-1").fingerprint).state == "firing"
    refused = cli("silence", "add", 'supplier=~".*"', "--store", store, "-m", "everything")
    assert refused.returncode == 2 and "also match alerts without those labels" in refused.stderr


def test_silence_add_takes_alertmanager_matcher_lists(store: str) -> None:
    out = cli("silence", "add", 'rule=po-delivery-overdue,supplier="Nordic Steel"', "--store", store,
              "-m", "stocktake", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [(x["name"], x["value"]) for x in json.loads(out.stdout)["matchers"]] == [
        ("rule", "po-delivery-overdue"), ("supplier", "Nordic Steel")]
    assert {a.key: a.state for a in AlertStore(store).list()}["PO-2"] == "silenced"
    braced = cli("silence", "add", r'{key="PO-1", owner=~"li\\.wei"}', "--store", store, "-m", "x", "--format", "json")
    assert braced.returncode == 0, braced.stderr
    assert [(x["name"], x["value"], x["isRegex"]) for x in json.loads(braced.stdout)["matchers"]] == [
        ("key", "PO-1", False), ("owner", r"li\.wei", True)]
    for bad, where in (("rule=x,,severity=warning", "7:8: unexpected ,: expected a matcher or close brace after comma"),
                       ("rule=x}", "0:7: }: expected opening brace"),
                       ('{rule="x"', "0:9: end of input: expected close brace"),
                       ('rule="x\\q"', '5:10: "x\\q": invalid input'),
                       ('rule=~"(?=x)"', "invalid perl operator")):
        refused = cli("silence", "add", bad, "--store", store, "-m", "x")
        assert refused.returncode == 2 and where in refused.stderr, (bad, refused.stderr)
    not_utf8 = subprocess.run([*alerts_cli(), "alerts", "silence", "add", b"rule=\xff", "--store", store, "-m", "x"],
                              capture_output=True, timeout=60, check=False)
    assert not_utf8.returncode == 2 and b"5:6: \\xff: invalid UTF-8" in not_utf8.stderr
    filtered = cli("list", "--store", store, "--filter", '{supplier="Nordic Steel",key=~"PO-.*"}')
    assert "PO-2" in filtered.stdout and filtered.stdout.endswith("1 alert(s)\n")


def test_routes_test_prints_receivers_and_group_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("""
owners:
  people:
    li.wei: {name: 李伟, email: li.wei@example.com, team: purchasing, receivers: [mail]}
  teams:
    purchasing: {name: 采购部}
receivers:
  - {name: mail, type: console}
  - {name: ops-chat, type: console}
route:
  to: [owner]
  group_by: [supplier]
  routes:
    - matchers: ['{severity="critical",family=~"delay|stock"}']
      receivers: [ops-chat]
      continue: true
    - matchers: ['owner_team="purchasing"']
      group_by: [owner, rule]
""", encoding="utf-8")
    out = cli("routes", "test", "--alerts", str(path), "severity=critical", "family=delay", "owner=li.wei",
              "supplier=Acme", "rule=po-delivery-overdue", "--tree")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "ops-chat,mail"
    assert lines[1] == '  route root.0: receivers ops-chat  recipients person:li.wei  group root.0|{"supplier": "Acme"}'
    assert lines[2] == ('  route root.1: receivers mail  recipients person:li.wei  '
                        'group root.1|{"owner": "li.wei", "rule": "po-delivery-overdue"}')
    assert "* root.0 {" not in out.stdout and "*   root.0" in out.stdout and "*   root.1" in out.stdout
    data = json.loads(cli("routes", "test", "--alerts", str(path), "owner=zhang.san", "--format", "json").stdout)
    assert data["receivers"] == [] and data["labels"]["owner_known"] == "false"  # nobody to reach
    wrong = cli("routes", "test", "--alerts", str(path), "owner=li.wei", "--verify-receivers", "ops-chat")
    assert wrong.returncode == 1 and "did not match" in wrong.stderr
    assert cli("routes", "test", "--alerts", str(path), "owner=li.wei", "--verify-receivers", "mail").returncode == 0
    assert cli("routes", "test", "--alerts", str(path), 'owner=~"li.*"').returncode == 2


def test_check_shows_where_a_matcher_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("receivers:\n  - {name: m, type: console}\nroute:\n  receivers: [m]\n  group_by: [a, a, '']\n"
                   "  routes:\n    - matchers:\n        - 'severity=\"critical\"'\n        - 'rule=x}'\n"
                   "      receivers: [m]\n", encoding="utf-8")
    out = cli("check", str(bad))
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"{bad}:5:17: duplicated label 'a' in group_by",
        f"{bad}:5:20: invalid label name '' in group_by list",
        f"{bad}:9:11: matchers: bad matchers 'rule=x}}': 0:7: }}: expected opening brace",
    ]


def test_check_an_alerts_file(tmp_path: Path) -> None:
    good = Path(__file__).resolve().parents[1] / "deploy" / "orderwatch" / "alerts.yaml"
    out = cli("check", str(good))
    assert out.returncode == 0 and "OK: 0 people, 0 teams, 2 receivers, 1 routes" in out.stdout
    bad = tmp_path / "alerts.yaml"
    bad.write_text("receivers:\n  - {name: m, type: email}\nroute: {receivers: [mial]}\n", encoding="utf-8")
    out = cli("check", str(bad))
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"{bad}:2:5: receiver m needs 'from'",
        f"{bad}:2:5: receiver m needs 'smtp: {{host: ..., port: ...}}'",
        f"{bad}:3:9: receiver 'mial' is not defined; known: m",
    ]
