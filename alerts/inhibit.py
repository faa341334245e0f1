"""Inhibition: an open source alert mutes target alerts that share the `equal` labels.

    inhibit_rules:
      - source_matchers: [rule="supplier-shutdown"]
        target_matchers: [family="delay"]
        equal: [supplier]

A supplier's shutdown alert, while open (firing or acknowledged), mutes that
supplier's late-delivery alerts. As in Alertmanager's inhibitor: an alert is
muted when it matches a rule's target side and some open alert matching the
source side has the same values of the `equal` labels (a missing label counts
as the empty string, so two alerts both without it are equal); an alert that
matches both sides of a rule is not muted by a source that also matches both
sides (two such alerts never silence each other), and never by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alerts import matchers as m
from alerts.yamlcheck import Problems, as_list, as_map, check_keys, get_str_list, pos_at
from orderwatch.yamlsrc import Pos


@dataclass(frozen=True)
class Labelled:
    fingerprint: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[m.Matcher, ...]
    target: tuple[m.Matcher, ...]
    equal: tuple[str, ...]

    def muting_source(self, target: Mapping[str, str], sources: Iterable[Labelled],
                      exclude_two_sided: bool) -> str | None:
        """The first of `sources` (alerts matching the source side) with the target's `equal` values;
        with `exclude_two_sided`, sources that also match the target side do not count."""
        want = [target.get(k, "") for k in self.equal]
        for source in sources:
            if [source.labels.get(k, "") for k in self.equal] != want:
                continue
            if exclude_two_sided and m.match_all(self.target, source.labels):
                continue
            return source.fingerprint
        return None


def inhibited(rules: Iterable[InhibitRule], open_alerts: Iterable[Labelled]) -> dict[str, str]:
    """Fingerprint of each muted alert → the fingerprint of an alert that mutes it."""
    alerts = list(open_alerts)
    out: dict[str, str] = {}
    for rule in rules:
        # Sources indexed by their `equal` values: one pass instead of sources × targets.
        sources: dict[tuple[str, ...], list[Labelled]] = {}
        for a in alerts:
            if m.match_all(rule.source, a.labels):
                sources.setdefault(tuple(a.labels.get(k, "") for k in rule.equal), []).append(a)
        if not sources:
            continue
        for a in alerts:
            if a.fingerprint in out or not m.match_all(rule.target, a.labels):
                continue
            candidates = sources.get(tuple(a.labels.get(k, "") for k in rule.equal), ())
            two_sided = m.match_all(rule.source, a.labels)
            # A one-sided target is not among the sources; a two-sided one is excluded with its peers.
            muting = rule.muting_source(a.labels, candidates, exclude_two_sided=two_sided)
            if muting is not None:
                out[a.fingerprint] = muting
    return out


def parse_inhibit_rules(node: Any, pos: Pos, problems: Problems) -> list[InhibitRule]:
    items = as_list(node, pos, "inhibit_rules", problems)
    rules: list[InhibitRule] = []
    for i, item in enumerate(items or []):
        doc = as_map(item, pos_at(items, i), "an inhibit rule", problems)
        if doc is None:
            continue
        check_keys(doc, {"source_matchers", "target_matchers", "equal", "source_match", "target_match",
                         "source_match_re", "target_match_re"}, problems, "an inhibit rule")
        parsed = {f"{side}_matchers": m.parse_map(doc, f"{side}_match", "=", problems)
                  + m.parse_map(doc, f"{side}_match_re", "=~", problems)
                  + m.parse_items(doc, f"{side}_matchers", problems) for side in ("source", "target")}
        equal = get_str_list(doc, "equal", problems)
        for j, name in enumerate(equal):
            if not m.valid_label_name(name):
                problems.add(pos_at(doc.get("equal"), j, doc.at("equal")), f"invalid label name {name!r} in equal list")
        rules.append(InhibitRule(tuple(parsed["source_matchers"]), tuple(parsed["target_matchers"]), tuple(equal)))
    return rules

