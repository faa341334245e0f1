"""Alertmanager's own test cases (tests/am_cases.py) run through orderwatch's public functions and CLI.

Each table names the Alertmanager test file and function it comes from. Matchers go through
`alerts.matchers`, alerts files through `alerts.config.load_alerts_config` (the worker's loader),
inhibition through `alerts.inhibit.inhibited` (the dispatcher's stage) and routing through
`Route.match` and `orderwatch alerts routes test`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import matchers as m
from alerts.config import AlertsConfig, load_alerts_config
from alerts.inhibit import Labelled, inhibited
from alerts.store import AlertStore
from orderwatch.yamlsrc import SourceError
from tests import am_cases as am
from tests.alerts_helpers import Clock, Pipeline, alerts_cli, event


def triples(found: list[m.Matcher]) -> list[tuple[str, str, str]]:
    return [(x.name, x.op, x.value) for x in found]


# --- matchers ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), am.UTF8_MATCHERS, ids=[repr(c[0]) for c in am.UTF8_MATCHERS])
def test_matcher_parse_TestMatchers(text: str, want: Any) -> None:
    """matcher/parse/parse_test.go TestMatchers, error messages (with their columns) included."""
    if isinstance(want, str):
        with pytest.raises(ValueError) as exc:
            m.parse_list(text)
        assert str(exc.value).endswith(": " + want), str(exc.value)
    else:
        assert triples(m.parse_list(text)) == want


@pytest.mark.parametrize(("text", "want"), am.UTF8_MATCHER, ids=[repr(c[0]) for c in am.UTF8_MATCHER])
def test_matcher_parse_TestMatcher(text: str, want: Any) -> None:
    """matcher/parse/parse_test.go TestMatcher: exactly one matcher."""
    if isinstance(want, str):
        with pytest.raises(ValueError) as exc:
            m.parse(text)
        assert str(exc.value).endswith(": " + want), str(exc.value)
    else:
        got = m.parse(text)
        assert (got.name, got.op, got.value) == want


@pytest.mark.parametrize("case", am.CLASSIC_MATCHERS, ids=[repr(c[0]) for c in am.CLASSIC_MATCHERS])
def test_labels_parse_TestMatchers(case: tuple[Any, ...]) -> None:
    """pkg/labels/parse_test.go TestMatchers; where the classic parser is more lenient than the UTF-8
    parser, orderwatch gives the UTF-8 parser's answer (the third item)."""
    text, want = case[0], case[-1]
    if want == am.ERROR or isinstance(want, str):
        with pytest.raises(ValueError) as exc:
            m.parse_list(text)
        if want != am.ERROR:
            assert str(exc.value).endswith(": " + want), str(exc.value)
    else:
        assert triples(m.parse_list(text)) == want


@pytest.mark.parametrize(("op", "pattern", "value", "want"), am.MATCHES)
def test_labels_matcher_TestMatcher(op: str, pattern: str, value: str, want: bool) -> None:
    """pkg/labels/matcher_test.go TestMatcher."""
    assert m.make("foo", op, pattern).matches({"foo": value}) is want


@pytest.mark.parametrize(("name", "op", "value", "want"), am.STRINGS)
def test_labels_matcher_TestMatcherString(name: str, op: str, value: str, want: str) -> None:
    """pkg/labels/matcher_test.go TestMatcherString; and what is printed reads back the same."""
    matcher = m.make(name, op, value)
    assert str(matcher) == want
    assert m.parse(str(matcher)) == matcher


@pytest.mark.parametrize(("pattern", "value", "want"), am.REGEX_PROBES)
def test_route_regexes_are_re2_as_in_amtool(tmp_path: Path, pattern: str, value: str | None,
                                             want: bool | str) -> None:
    """What amtool 0.25.0 answered for a route `x=~"<pattern>"` (RE2, anchored)."""
    escaped = pattern.replace("\\", "\\\\")
    doc = {"receivers": [{"name": "miss", "type": "console"}, {"name": "hit", "type": "console"}],
           "route": {"receiver": "miss", "routes": [{"matchers": [f'x=~"{escaped}"'], "receiver": "hit"}]}}
    if isinstance(want, str):
        with pytest.raises(SourceError) as exc:
            load(tmp_path, doc)
        assert want in str(exc.value.problems)
        return
    assert value is not None
    cfg = load(tmp_path, doc)
    assert cfg.route is not None
    assert [r.receivers[0] for r in cfg.route.match({"x": value})] == ["hit" if want else "miss"]


# --- inhibition ---------------------------------------------------------------------------------

def load(tmp_path: Path, doc: dict[str, Any]) -> AlertsConfig:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_alerts_config(path)


def inhibit_rules(tmp_path: Path, specs: list[dict[str, Any]]) -> Any:
    doc = {"receivers": [{"name": "c", "type": "console"}], "route": {"receiver": "c"}, "inhibit_rules": specs}
    return load(tmp_path, doc).inhibit_rules


def fp(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)  # Alertmanager fingerprints alerts by their label set


def muted(rules: Any, alerts: list[dict[str, str]]) -> list[dict[str, str]]:
    out = inhibited(rules, [Labelled(fp(a), a) for a in alerts])
    return [a for a in alerts if fp(a) in out]


@pytest.mark.parametrize(("target", "want"), am.INHIBIT_MATCHES_CASES)
def test_inhibit_TestInhibitRuleMatches(tmp_path: Path, target: dict[str, str], want: bool) -> None:
    rules = inhibit_rules(tmp_path, am.INHIBIT_RULES_MATCHES)
    assert (target in muted(rules, [*am.INHIBIT_SOURCES, target])) is want


@pytest.mark.parametrize(("target", "want"), am.INHIBIT_MATCHERS_CASES)
def test_inhibit_TestInhibitRuleMatchers(tmp_path: Path, target: dict[str, str], want: bool) -> None:
    rules = inhibit_rules(tmp_path, am.INHIBIT_RULES_MATCHERS)
    assert (target in muted(rules, [*am.INHIBIT_SOURCES, target])) is want


def test_inhibit_TestInhibit(tmp_path: Path) -> None:
    rules = inhibit_rules(tmp_path, [{"source_match": {"s": "1"}, "target_match": {"t": "1"}, "equal": ["e"]}])
    for _name, active, want in am.INHIBIT_TIMELINE:
        assert muted(rules, active) == want


@pytest.mark.parametrize("case", am.INHIBIT_HAS_EQUAL, ids=[c[0] for c in am.INHIBIT_HAS_EQUAL])
def test_inhibit_TestInhibitRuleHasEqual(tmp_path: Path, case: tuple[Any, ...]) -> None:
    """The source lookup itself (Alertmanager calls it with two-sided exclusion off here)."""
    _name, sources, equal, target, want = case
    rule = inhibit_rules(tmp_path, [{"source_matchers": [], "target_matchers": [], "equal": equal}])[0]
    found = rule.muting_source(target, [Labelled(fp(s), s) for s in sources], exclude_two_sided=False)
    assert (found is not None) is want


def test_two_alerts_matching_both_sides_do_not_inhibit_each_other(tmp_path: Path) -> None:
    """inhibit/inhibit.go Mutes; seen in a real Alertmanager 0.25 with this rule: both alerts stay active."""
    rules = inhibit_rules(tmp_path, [{"source_matchers": ['severity=~"warning|critical"'],
                                      "target_matchers": ['severity=~"warning|critical"'], "equal": ["cluster"]}])
    a = {"alertname": "A", "severity": "critical", "cluster": "x"}
    b = {"alertname": "B", "severity": "warning", "cluster": "x"}
    assert muted(rules, [a, b]) == []
    # A one-sided target is still muted by a two-sided source.
    c = {"alertname": "C", "severity": "warning", "cluster": "x", "extra": "1"}
    rules = inhibit_rules(tmp_path, [{"source_matchers": ['severity="critical"'],
                                      "target_matchers": ['severity=~"warning|critical"'], "equal": ["cluster"]}])
    assert muted(rules, [a, c]) == [c]


def test_the_dispatcher_notifies_both_of_two_alerts_that_match_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({
        "receivers": [{"name": "log", "type": "jsonl", "path": str(out)}],
        "route": {"receiver": "log", "group_by": ["key"], "group_wait": "0s"},
        "inhibit_rules": [{"source_matchers": ['severity=~"warning|critical"'],
                           "target_matchers": ['severity=~"warning|critical"'], "equal": ["supplier"]},
                          {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="info"'],
                           "equal": ["supplier"]}]}), encoding="utf-8")
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    pipeline = Pipeline(load_alerts_config(path), store, Clock())
    store.apply([event("PO-1", severity="critical"), event("PO-2", severity="warning"),
                 event("PO-3", severity="info")])
    pipeline.step(1)
    told = sorted(a["key"] for line in out.read_text(encoding="utf-8").splitlines() for a in json.loads(line)["alerts"])
    assert told == ["PO-1", "PO-2"]  # PO-3 (info) is muted by the critical PO-1
    store.close()


def test_equal_labels_missing_on_both_sides_are_equal(tmp_path: Path) -> None:
    rules = inhibit_rules(tmp_path, [{"source_matchers": ['s="1"'], "target_matchers": ['t="1"'],
                                      "equal": ["supplier"]}])
    assert muted(rules, [{"s": "1"}, {"t": "1"}]) == [{"t": "1"}]
    assert muted(rules, [{"s": "1", "supplier": ""}, {"t": "1"}]) == [{"t": "1"}]
    assert muted(rules, [{"s": "1", "supplier": "Acme"}, {"t": "1"}]) == []


# --- routing ------------------------------------------------------------------------------------

def receivers_of(node: dict[str, Any], acc: set[str]) -> set[str]:
    if "receiver" in node:
        acc.add(node["receiver"])
    for child in node.get("routes") or []:
        receivers_of(child, acc)
    return acc


def route_file(tmp_path: Path, route_yaml: str) -> Path:
    """An Alertmanager route (test literal, verbatim) in an alerts file: its receivers as consoles."""
    route = yaml.safe_load(route_yaml)
    names = sorted(receivers_of(route, set()) | {"default"})
    route.setdefault("receiver", "default")
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"receivers": [{"name": n, "type": "console"} for n in names],
                                    "route": route}, sort_keys=False), encoding="utf-8")
    return path


def opts(route: Any) -> dict[str, object]:
    return {"receiver": route.receivers[0], "group_by": set(route.group_by) - {"..."}, "all": "..." in route.group_by,
            "wait": route.group_wait, "interval": route.group_interval, "repeat": route.repeat_interval}


@pytest.mark.parametrize("test", sorted(am.ROUTE_TREES))
def test_route_match_table(tmp_path: Path, test: str) -> None:
    """dispatch/route_test.go TestRouteMatch / TestRouteMatchers / TestRouteMatchersAndMatch."""
    cfg = load_alerts_config(route_file(tmp_path, am.ROUTE_TREES[test]))
    assert cfg.route is not None
    for labels, want in am.ROUTE_TABLE:
        assert [opts(r) for r in cfg.route.match(labels)] == want, labels


@pytest.mark.parametrize("test", sorted(am.ROUTE_TREES))
def test_routes_test_command_agrees_with_the_table(tmp_path: Path, test: str) -> None:
    """`orderwatch alerts routes test --verify-receivers` for every case of the table."""
    path = route_file(tmp_path, am.ROUTE_TREES[test])
    for labels, want in am.ROUTE_TABLE:
        expected = ",".join(str(o["receiver"]) for o in want)
        out = subprocess.run([*alerts_cli(), "alerts", "routes", "test", "--alerts", str(path),
                              "--verify-receivers", expected, *[f"{k}={v}" for k, v in labels.items()]],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, (labels, out.stdout, out.stderr)
        assert out.stdout.splitlines()[0] == expected


@pytest.mark.parametrize("test", sorted(am.ROUTE_TREES))
def test_the_dispatcher_notifies_the_receivers_of_the_table(tmp_path: Path, test: str) -> None:
    """The same table through a real dispatcher pass (store, grouping, outbox, a JSONL receiver)."""
    route = yaml.safe_load(am.ROUTE_TREES[test])
    names = sorted(receivers_of(route, set()))
    out = tmp_path / "sent.jsonl"
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"receivers": [{"name": n, "type": "jsonl", "path": str(out)} for n in names],
                                    "route": route}, sort_keys=False), encoding="utf-8")
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    pipeline = Pipeline(load_alerts_config(path), store, Clock())
    store.apply([event(f"PO-{i}", owner=labels.get("owner"), labels={k: v for k, v in labels.items() if k != "owner"})
                 for i, (labels, _) in enumerate(am.ROUTE_TABLE)])
    pipeline.step(0)
    pipeline.step(121)  # the longest group_wait of the tree is 2m
    got: dict[str, list[str]] = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        n = json.loads(line)
        for a in n["alerts"]:
            got.setdefault(a["key"], []).append(n["receiver"])
    for i, (labels, want) in enumerate(am.ROUTE_TABLE):
        assert sorted(got.get(f"PO-{i}", [])) == sorted(str(o["receiver"]) for o in want), labels
    store.close()


def test_route_TestRouteWalk(tmp_path: Path) -> None:
    cfg = load_alerts_config(route_file(tmp_path, am.ROUTE_MATCH))
    assert cfg.route is not None
    assert [r.receivers[0] for r in cfg.route.walk()] == am.ROUTE_WALK


def test_route_TestInheritParentGroupByAll(tmp_path: Path) -> None:
    cfg = load_alerts_config(route_file(tmp_path, am.INHERIT_GROUP_BY_ALL))
    assert cfg.route is not None
    parent = cfg.route.routes[0]
    assert ["..." in r.group_by for r in (parent, *parent.routes)] == [True, True, False]


# --- the alerts file's validation ---------------------------------------------------------------

@pytest.mark.parametrize("case", am.CONFIG_CASES, ids=[c[0] for c in am.CONFIG_CASES])
def test_config_test_cases(tmp_path: Path, case: tuple[str, str, str | None, str | None]) -> None:
    """config/config_test.go: the same files are refused (with the line) or loaded."""
    _name, text, _am_error, ours = case
    doc = yaml.safe_load(text)
    for receiver in doc.get("receivers") or []:
        receiver["type"] = "console"
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    if ours is None:
        cfg = load_alerts_config(path)
        assert cfg.route is not None
        assert cfg.route.group_by == ("alertname", "cluster") and cfg.route.routes[0].group_by == ()
        return
    with pytest.raises(SourceError) as exc:
        load_alerts_config(path)
    found = [(pos, msg) for pos, msg in exc.value.problems if ours in msg]
    assert found, exc.value.problems
    assert found[0][0].file == str(path) and found[0][0].line >= 1
