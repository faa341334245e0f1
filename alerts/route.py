"""The routing tree: label matchers down to receivers and recipients, as in Alertmanager.

A route matches an alert's labels; its children are tried in order and the
first that matches takes the alert unless it says `continue: true`. Settings
(receivers, to, fallback, grouping and timing, escalation) are inherited from
the parent unless a route sets them.

Recipients (`to`, `fallback`, escalation `to`) are written as
`owner`, `manager` (the owner's manager), `team` (the owner's team),
`person:<id>` or `team:<id>`; `{label}` inserts a label's value, e.g.
`team:{department}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from alerts import matchers as m
from alerts.yamlcheck import (
    Problems,
    as_list,
    as_map,
    check_keys,
    get_bool,
    get_duration,
    get_str_list,
    pos_at,
)
from orderwatch.yamlsrc import Map, Pos

_KEYS = {"matchers", "match", "match_re", "receiver", "receivers", "to", "fallback", "group_by", "group_wait",
         "group_interval", "repeat_interval", "escalate", "continue", "routes", "mute_time_intervals",
         "active_time_intervals"}
_SPEC = re.compile(r"^(owner|manager|team|(person|team):(\S+))$")
_LABEL = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Step:
    """Escalation: not acknowledged `after` seconds since it started firing → also notify `to`."""

    after: float
    to: tuple[str, ...]


@dataclass
class Route:
    id: str
    matchers: tuple[m.Matcher, ...] = ()
    receivers: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    escalate: tuple[Step, ...] = ()
    cont: bool = False
    routes: list[Route] = field(default_factory=list)
    # Names of time intervals (alerts.timeinterval); as in Alertmanager, not inherited by children.
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take an alert with these labels (depth first, Alertmanager's order)."""
        if not m.match_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hit = child.match(labels)
            if hit:
                found.extend(hit)
                if not child.cont:
                    break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if "..." in self.group_by:
            return dict(labels)
        return {k: labels.get(k, "") for k in self.group_by}

    def walk(self) -> list[Route]:
        return [self] + [r for child in self.routes for r in child.walk()]


def expand(spec: str, labels: Mapping[str, str]) -> str:
    """Put label values into a recipient spec (`team:{department}` → `team:采购`)."""
    return _LABEL.sub(lambda g: labels.get(g.group(1), ""), spec)


def _specs(node: Map, key: str, problems: Problems, people: set[str], teams: set[str]) -> tuple[str, ...]:
    specs = get_str_list(node, key, problems)
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            problems.add(node.at(key), f"{key}: {spec!r} is not a recipient; write owner, manager, team, "
                         "person:<id> or team:<id> ({label} inserts a label)")
            continue
        kind, ident = match.group(2), match.group(3)
        if kind and "{" not in ident:
            known = people if kind == "person" else teams
            if ident not in known:
                problems.add(node.at(key), f"{key}: {kind} {ident!r} is not in the owners directory; known: "
                             f"{', '.join(sorted(known)) or '(none)'}")
    return tuple(specs)


def _steps(node: Map, problems: Problems, people: set[str], teams: set[str]) -> tuple[Step, ...] | None:
    if "escalate" not in node:
        return None
    items = as_list(node["escalate"], node.at("escalate"), "escalate", problems)
    steps: list[Step] = []
    for i, item in enumerate(items or []):
        step = as_map(item, pos_at(items, i), "an escalation step", problems)
        if step is None:
            continue
        check_keys(step, {"after", "to"}, problems, "an escalation step", required=("after", "to"))
        after = get_duration(step, "after", problems, None)
        to = _specs(step, "to", problems, people, teams)
        if after is not None and to:
            if steps and after <= steps[-1].after:
                problems.add(step.at("after"), "escalation steps must come in order of increasing 'after'")
            steps.append(Step(after, to))
    return tuple(steps)


def _group_by(doc: Map, problems: Problems) -> tuple[str, ...]:
    """`group_by` as Alertmanager's loader checks it: label names, each once, or `...` alone."""
    names = get_str_list(doc, "group_by", problems)
    for i, name in enumerate(names):
        where = pos_at(doc.get("group_by"), i, doc.at("group_by"))
        if name != "..." and not m.valid_label_name(name):
            problems.add(where, f"invalid label name {name!r} in group_by list")
        elif name in names[:i]:
            problems.add(where, f"duplicated label {name!r} in group_by")
    if "..." in names and len(names) > 1:
        problems.add(doc.at("group_by"), "cannot have wildcard group_by (`...`) and other labels at the same time")
    return tuple(names)


def _interval_names(doc: Map, key: str, problems: Problems, known: set[str], root: bool) -> tuple[str, ...]:
    names = get_str_list(doc, key, problems)
    if names and root:
        problems.add(doc.at(key), f"the root route must not have any {key.replace('_', ' ')}")
    for i, name in enumerate(names):
        if name not in known:
            problems.add(pos_at(doc.get(key), i, doc.at(key)), f"undefined time interval {name!r} used in route; "
                         f"known: {', '.join(sorted(known)) or '(none: define them under time_intervals)'}")
    return tuple(names)


def parse_route(node: Any, pos: Pos, problems: Problems, receivers: set[str], people: set[str],
                teams: set[str], parent: Route | None = None, rid: str = "root",
                intervals: set[str] | None = None) -> Route:
    """Read one route and its children; `parent` supplies inherited settings."""
    base = replace(parent, id=rid, matchers=(), cont=False, routes=[], mute_time_intervals=(),
                   active_time_intervals=()) if parent else Route(rid)
    doc = as_map(node, pos, f"route {rid}", problems)
    if doc is None:
        return base
    check_keys(doc, _KEYS, problems, f"route {rid}")
    matchers = m.parse_map(doc, "match", "=", problems) + m.parse_map(doc, "match_re", "=~", problems) \
        + m.parse_items(doc, "matchers", problems)
    if parent is None and matchers:
        where = next(doc.at(k) for k in ("matchers", "match", "match_re") if k in doc)
        problems.add(where, "the root route takes every alert: it has no matchers")
    names = tuple(get_str_list(doc, "receivers", problems)) + tuple(get_str_list(doc, "receiver", problems))
    for name in names:
        if name not in receivers:
            problems.add(doc.at("receivers" if "receivers" in doc else "receiver"),
                         f"receiver {name!r} is not defined; known: {', '.join(sorted(receivers)) or '(none)'}")
    route = replace(
        base, matchers=tuple(matchers),
        receivers=names or base.receivers,
        to=_specs(doc, "to", problems, people, teams) if "to" in doc else base.to,
        fallback=_specs(doc, "fallback", problems, people, teams) if "fallback" in doc else base.fallback,
        group_by=_group_by(doc, problems) if "group_by" in doc else base.group_by,
        group_wait=get_duration(doc, "group_wait", problems, base.group_wait) or 0.0,
        group_interval=get_duration(doc, "group_interval", problems, base.group_interval) or 0.0,
        repeat_interval=get_duration(doc, "repeat_interval", problems, base.repeat_interval) or 0.0,
        cont=get_bool(doc, "continue", problems, False),
        mute_time_intervals=_interval_names(doc, "mute_time_intervals", problems, intervals or set(), parent is None),
        active_time_intervals=_interval_names(doc, "active_time_intervals", problems, intervals or set(),
                                              parent is None),
    )
    steps = _steps(doc, problems, people, teams)
    if steps is not None:
        route.escalate = steps
    if parent is None and "continue" in doc:
        problems.add(doc.at("continue"), "the root route cannot 'continue'")
    # Only where it is written: children inheriting the value would repeat the problem on other lines.
    if route.group_interval <= 0 and "group_interval" in doc:
        problems.add(doc.at("group_interval"), "group_interval must be more than 0")
    if route.repeat_interval <= 0 and "repeat_interval" in doc:
        problems.add(doc.at("repeat_interval"), "repeat_interval must be more than 0")
    children: list[Any] | None = as_list(doc["routes"], doc.at("routes"), "routes", problems) if "routes" in doc else []
    for i, child in enumerate(children or []):
        route.routes.append(parse_route(child, pos_at(children, i), problems, receivers, people, teams,
                                        route, f"{rid}.{i}", intervals))
    if not route.receivers and not route.routes and not route.to:
        problems.add(doc.pos, f"route {rid} names no receivers and no recipients ('to') to reach")
    return route
