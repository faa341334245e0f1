"""Inhibition: an open source alert mutes target alerts that share the `equal` labels.

    inhibit_rules:
      - source_matchers: [rule="supplier-shutdown"]
        target_matchers: [family="delay"]
        equal: [supplier]

A supplier's shutdown alert, while open (firing or acknowledged), mutes that
supplier's late-delivery alerts; an alert never inhibits itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alerts import matchers as m
from alerts.yamlcheck import Problems, as_list, as_map, check_keys, get_str_list, pos_at
from orderwatch.yamlsrc import Pos


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[m.Matcher, ...]
    target: tuple[m.Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Labelled:
    fingerprint: str
    labels: Mapping[str, str]


def inhibited(rules: Iterable[InhibitRule], open_alerts: Iterable[Labelled]) -> dict[str, str]:
    """Fingerprint of each muted alert → the fingerprint of an alert that mutes it."""
    alerts = list(open_alerts)
    out: dict[str, str] = {}
    for rule in rules:
        # Index sources by their `equal` values: one pass instead of sources × targets.
        sources: dict[tuple[str, ...], list[str]] = {}
        for a in alerts:
            if m.match_all(rule.source, a.labels):
                sources.setdefault(tuple(a.labels.get(k, "") for k in rule.equal), []).append(a.fingerprint)
        if not sources:
            continue
        for a in alerts:
            if a.fingerprint in out or not m.match_all(rule.target, a.labels):
                continue
            muting = [fp for fp in sources.get(tuple(a.labels.get(k, "") for k in rule.equal), ())
                      if fp != a.fingerprint]
            if muting:
                out[a.fingerprint] = muting[0]
    return out


def parse_inhibit_rules(node: Any, pos: Pos, problems: Problems) -> list[InhibitRule]:
    items = as_list(node, pos, "inhibit_rules", problems)
    rules: list[InhibitRule] = []
    for i, item in enumerate(items or []):
        doc = as_map(item, pos_at(items, i), "an inhibit rule", problems)
        if doc is None:
            continue
        check_keys(doc, {"source_matchers", "target_matchers", "equal"}, problems, "an inhibit rule",
                   required=("source_matchers", "target_matchers"))
        parsed: dict[str, list[m.Matcher]] = {}
        for key in ("source_matchers", "target_matchers"):
            parsed[key] = []
            for j, text in enumerate(get_str_list(doc, key, problems)):
                try:
                    parsed[key].append(m.parse(text))
                except ValueError as exc:
                    problems.add(pos_at(doc.get(key), j, doc.at(key)), str(exc))
        rules.append(InhibitRule(tuple(parsed["source_matchers"]), tuple(parsed["target_matchers"]),
                                 tuple(get_str_list(doc, "equal", problems))))
    return rules

