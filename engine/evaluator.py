"""Evaluate entity states against the compiled rules: the one place where alerts are decided.

The live pipeline and the offline tools (backtest, `rules test`) call the same
`Evaluator.evaluate`: given states and an instant, it updates each state's
`firing` (and `pending`, for rules with `for:`) and `due`, and returns the
firing/resolved transitions. Swapping rules (hot reload) means constructing a
new Evaluator; states carry over as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from engine import aggregate
from engine.clock import iso, to_datetime, to_epoch
from engine.compiler import GUARD, LINE_PROGRAM, EntityProgram, compile_rules, time_key
from engine.conditions import ChangeSpec
from engine.expr import fields_of
from engine.facts import build_fact, latest_change, next_flip
from engine.matcher import Matcher
from engine.rules import Rule
from engine.state import EntityState
from engine.templates import missing, placeholders, render, show
from orderwatch.alert import AlertEvent, values_at

# Re-exported for callers that used them from here.
__all__ = ["Evaluator", "Prepared", "render", "to_epoch"]


def _describe_change(entry: dict[str, Any], fields: tuple[str, ...] | None) -> str:
    changed = entry.get("changed") or {}
    names = [n for n in (fields or sorted(changed)) if n in changed and n != "lines"]
    parts = [f"{n} {show(changed[n][0])} → {show(changed[n][1])}" for n in names]
    if "lines" in changed and (fields is None or "lines" in fields):
        parts.append("lines")
    return ", ".join(parts)


def _changes_of(entry: dict[str, Any], fields: tuple[str, ...] | None) -> list[list[Any]]:
    """[[field, old, new], ...] of a change (["lines", None, None] when lines changed)."""
    changed = entry.get("changed") or {}
    names = [n for n in (fields or sorted(changed)) if n in changed and n != "lines"]
    out: list[list[Any]] = [[n, _plain(changed[n][0]), _plain(changed[n][1])] for n in names]
    if "lines" in changed and (fields is None or "lines" in fields):
        out.append(["lines", None, None])
    return out


def _plain(value: Any) -> Any:
    """A value as stored in an alert's facts (JSON): numbers and texts as they are, anything else as text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else show(value)


# Always kept with an alert's facts: what the resolved message tells (status) and how amounts print.
_ALWAYS = ("status", "currency")


_NAMES: dict[str, tuple[Rule, tuple[str, ...]]] = {}


def _named_values(rule: Rule, values: dict[str, Any]) -> dict[str, Any]:
    """The values the rule's texts name (in every language), for rendering them later."""
    cached = _NAMES.get(rule.id)
    if cached is None or cached[0] is not rule:
        names = set(_ALWAYS)
        for text in [rule.title, rule.summary, *(t for by_lang in rule.texts.values() for t in by_lang.values())]:
            names.update(placeholders(text))
        names -= {"overdue_days", "days_left"}  # counted again when rendered
        cached = _NAMES[rule.id] = (rule, tuple(sorted(names)))
    return {n: _plain(values[n]) for n in cached[1] if values.get(n) is not None}


@dataclass(slots=True)
class Prepared:
    """A state's fact at one instant, waiting to be matched (see Evaluator.prepare/complete)."""

    state: EntityState
    now: float
    program: EntityProgram | None  # None: deleted, or no rules for its entity
    fact: dict[str, Any] | None
    fields: dict[str, Any]  # the values the fact was built from (for the alert texts)
    history: tuple[Any, ...]
    due: float | None = None  # its next time flip (before `for:` deadlines, known after matching)
    # The earliest instant its next deadline can be, known before matching (see Simulation).
    hint: float | None = None
    later: float | None = None  # when instant-dependent derived fields change next
    matched: AbstractSet[str] = frozenset()  # the rules its fact satisfies, known after matching
    lines: Sequence[Prepared] = ()  # its lines, for per-line rules


def _relevant_fields(program: EntityProgram) -> frozenset[str] | None:
    """Fields whose change can change a rule's truth; None: any field (a `changed: any`)."""
    spec = program.spec
    names = set(spec.values | spec.times | spec.btimes)
    for change in spec.changes:
        if change.fields is None:
            return None
        names.update(change.fields)
    for computed in spec.computed:
        names.update(fields_of(computed.expr))
    if spec.uses_lines:
        names.add("lines")
    if "key" in names:
        names.discard("key")
    return frozenset(names)


LINE_SEP = "#"  # ORDER#LINE keys; rule#LINE in an order's firing (rule ids hold no '#')


def _number(line: EntityState) -> str:
    return line["key"].rpartition(LINE_SEP)[2]


def _line_state(order: EntityState, number: str, line: dict[str, Any], deleted: bool = False) -> EntityState:
    """One line of an order as a state of its own: the line's fields over the order's, plus
    `order` and `line` (for the texts); key ORDER#LINE."""
    fields = {k: v for k, v in order["fields"].items() if k != "lines"}
    fields.update((k, v) for k, v in line.items() if v is not None)
    fields.update(order=order["key"], line=number)
    return EntityState(entity=order["entity"], key=f"{order['key']}{LINE_SEP}{number}", p=order["p"],
                       fields=fields, seqs={}, history=order["history"], firing={}, due=None,
                       ts=order["ts"], deleted=deleted)


def _line_states(order: EntityState) -> list[EntityState]:
    """The lines of an order as states: numbered by `line_no`, else by position (from 1)."""
    lines = order["fields"].get("lines")
    out: list[EntityState] = []
    seen: set[str] = set()
    for i, line in enumerate(lines if isinstance(lines, list) else []):
        if not isinstance(line, dict):
            continue
        number = str(line.get("line_no") if line.get("line_no") not in (None, "") else i + 1)
        if number in seen:
            number = str(i + 1)
        seen.add(number)
        out.append(_line_state(order, number, line))
    return out


def _of_lines(state: EntityState) -> bool:
    """Whether a state holds alerts (firing or pending) of per-line rules."""
    firing, pending = state["firing"], state.get("pending")
    return bool(firing or pending) and any(LINE_SEP in r for r in (*firing, *(pending or ())))


def _split(state: EntityState) -> tuple[tuple[dict[str, float], dict[str, float]],
                                          dict[str, tuple[dict[str, float], dict[str, float]]]]:
    """An order's own firing and pending, and its lines' (by line number)."""
    own: tuple[dict[str, float], dict[str, float]] = ({}, {})
    lines: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for slot, entries in enumerate((state["firing"], state.get("pending") or {})):
        for name, since in entries.items():
            rule, sep, number = name.partition(LINE_SEP)
            target = lines.setdefault(number, ({}, {})) if sep else own
            target[slot][rule] = since
    return own, lines


class Evaluator:
    """Compiled rules for every entity, and the durable_rules matchers that run them."""

    def __init__(self, rules: list[Rule], name: str = "orderwatch", previous: Evaluator | None = None,
                 programs: dict[str, EntityProgram] | None = None) -> None:
        """`programs`: `compile_rules(rules)` if already done (a reload compiles on another thread)."""
        self.rules = rules
        every = compile_rules(rules) if programs is None else programs
        self.programs: dict[str, EntityProgram] = {e: p for e, p in every.items() if not e.endswith(LINE_PROGRAM)}
        # Per-line rules (`per: line`), by the entity whose lines they read.
        self.line_programs = {e.removesuffix(LINE_PROGRAM): p for e, p in every.items() if e.endswith(LINE_PROGRAM)}
        self._matchers: dict[str, Matcher] = {}
        self._patterns: dict[str, Matcher] = {}
        try:
            for e, p in every.items():
                self._matchers[e] = Matcher(f"{name}.{e}", p.rulesets)
                if p.spec.negated_patterns:
                    self._patterns[e] = Matcher(f"{name}.{e}.patterns", ({
                        n.prop: {"all": [{"m": {"$imt" if n.pattern.ignore_case else "$mt": {n.field: n.pattern.text}}}]}
                        for n in p.spec.negated_patterns
                    },))
        except BaseException:
            self.close()  # a rejected reload must not leave rulesets behind in durable_rules
            raise
        self._rules = {r.id: r for r in rules}
        self._text_sources: dict[str, tuple[Rule, tuple[str, ...], ChangeSpec | None]] = {}
        self._derived = {e for e in self.programs if aggregate.view_of(e) is not None}
        # Derived entities whose fields also depend on the instant (customer_account).
        self._derived_now = {e for e in self._derived if getattr(aggregate.view_of(e), "depends_on_now", True)}
        self._relevant = {e: _relevant_fields(p) for e, p in self.programs.items()}
        for e, p in self.line_programs.items():
            own, of_lines = self._relevant.get(e, frozenset()), _relevant_fields(p)
            self._relevant[e] = None if own is None or of_lines is None else own | of_lines | {"lines"}
        self._min_for = {e: min(r.for_seconds for r in p.rules if r.for_seconds > 0)
                         for e, p in every.items() if any(r.for_seconds > 0 for r in p.rules)}
        self._min_keep = {e: min(r.keep_firing_for for r in p.rules if r.keep_firing_for > 0)
                          for e, p in every.items() if any(r.keep_firing_for > 0 for r in p.rules)}
        # Rules removed by a reload: their firing alerts still resolve with their own texts.
        self._retired: dict[str, Rule] = {}
        if previous is not None:
            self._retired = {**previous._retired, **previous._rules}
            for rule_id in self._rules:
                self._retired.pop(rule_id, None)

    def close(self) -> None:
        """Free the durable_rules rulesets; call on the old evaluator once a reload swapped it out."""
        for matcher in [*self._matchers.values(), *self._patterns.values()]:
            matcher.close()

    def _texts_from(self, rule: Rule) -> tuple[tuple[str, ...], ChangeSpec | None]:
        """The fact properties behind {overdue_days}/{days_left}, and the change behind {changed_*}."""
        cached = self._text_sources.get(rule.id)
        if cached is None or cached[0] is not rule:
            changes = rule.changes()
            cached = (rule, tuple(time_key(f) for f in rule.time_fields()), changes[0].spec if changes else None)
            self._text_sources[rule.id] = cached
        return cached[1], cached[2]

    def rule(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id) or self._retired.get(rule_id)

    def held_as(self, rule_id: str, key: str) -> list[tuple[str, str]]:
        """Where an alert of `rule_id` on `key` is kept: (the key of the state, its name in that
        state's `firing`/`pending`). A per-line rule's alert `ORDER#LINE` is `rule#LINE` in its
        order's state; for a rule not loaded (removed from the files), both readings, the entity's first."""
        order, sep, number = key.rpartition(LINE_SEP)
        own, of_line = (key, rule_id), (order, rule_id + LINE_SEP + number)
        rule = self.rule(rule_id)
        if not sep or (rule is not None and rule.per != "line"):
            return [own]
        return [of_line] if rule is not None else [own, of_line]

    # --- evaluation -----------------------------------------------------------

    def evaluate(self, states: Iterable[EntityState], now: float) -> list[AlertEvent]:
        """Re-evaluate states at `now` (epoch seconds); mutate firing/pending/due; return transitions."""
        return self.complete([self.prepare(state, now, hints=False) for state in states])

    def evaluate_at(self, items: Iterable[tuple[EntityState, float]]) -> list[AlertEvent]:
        """Like evaluate, each state at its own instant (a backtest batches records of different times)."""
        return self.complete([self.prepare(state, now, hints=False) for state, now in items])

    def matters(self, state: EntityState, changed: Iterable[str] | None) -> bool:
        """Whether a change to these fields can change what the rules say about this state.

        `changed` is the diff of the record (or fold) just applied, None when unknown or
        when it created the state. Time needs no evaluation here: the state's deadline
        already covers it. A state with a `for:` timer pending is always evaluated."""
        entity = state["entity"]
        if entity not in self.programs and entity not in self.line_programs:
            return bool(state["firing"])
        if (changed is None or state["deleted"] or state.get("pending") or state.get("keeping")
                or entity in self._derived_now):
            return True
        relevant = self._relevant[entity]
        return relevant is None or not relevant.isdisjoint(changed)

    def prepare(self, state: EntityState, now: float, hints: bool = True) -> Prepared:
        """Build the fact of a state at `now` (a snapshot: the state may change before `complete`);
        with per-line rules for its entity, one for each of its lines too (`Prepared.lines`).
        `hints`: also work out `Prepared.hint` (what a simulation needs; evaluating does not)."""
        program = self.programs.get(state["entity"])
        if program is None or state["deleted"]:
            item = Prepared(state, now, None, None, {}, ())
        else:
            item = self._prepare(program, state, state["fields"], now, hints)
        if state["entity"] in self.line_programs and not state["deleted"]:
            item.lines = [self._prepare_line(line, now, hints) for line in _line_states(state)]
            if hints:
                known = [x for x in (item.hint, *(line.hint for line in item.lines)) if x is not None]
                item.hint = min(known) if known else None
        return item

    def _prepare_line(self, line: EntityState, now: float, hints: bool) -> Prepared:
        """A line's fact (its firing is filled in by `complete`)."""
        program = self.line_programs.get(line["entity"])
        if program is None or line["deleted"]:
            return Prepared(line, now, None, None, {}, ())
        return self._prepare(program, line, line["fields"], now, hints)

    def _prepare(self, program: EntityProgram, state: EntityState, fields: dict[str, Any], now: float,
                 hints: bool) -> Prepared:
        if program.entity in self._derived:
            fields = {**fields, **aggregate.at_now(state, now)}
        if "key" not in fields and "key" in program.spec.values:
            fields = {**fields, "key": state["key"]}
        # A snapshot only where changes are read (the state may change before `complete`).
        history = tuple(state["history"]) if program.spec.changes else ()
        fact = build_fact(program.spec, fields, history, now)
        later = aggregate.next_change(state, now) if program.entity in self._derived else None
        if not hints:  # `complete` works out the deadline once the fact is matched
            return Prepared(state, now, program, fact, fields, history, later=later)
        due = next_flip(program.spec, fact, now)  # every comparison: exact once matched (complete)
        if later is not None and (due is None or later < due):
            due = later
        hint = due
        wait = self._min_for.get(program.entity)
        if wait is not None:  # a `for:` deadline comes at the earliest `wait` after it starts to hold
            pending = state.get("pending")
            earliest = (min(now, *pending.values()) if pending else now) + wait
            hint = earliest if hint is None else min(hint, earliest)
        keep = self._min_keep.get(program.entity)
        if keep is not None and state["firing"]:  # a keep_firing_for deadline: `keep` after it stops holding
            keeping = state.get("keeping")
            earliest = (min(now, *keeping.values()) if keeping else now) + keep
            hint = earliest if hint is None else min(hint, earliest)
        return Prepared(state, now, program, fact, fields, history, due, hint, later)

    def complete(self, prepared: list[Prepared]) -> list[AlertEvent]:
        """Match prepared facts (one durable_rules call per entity), then apply the transitions in
        order, so that a state prepared several times goes through each instant in turn."""
        by_entity: dict[str, list[Prepared]] = {}
        programs: dict[str, EntityProgram] = {}
        for item in (x for top in prepared for x in (top, *top.lines)):
            if item.program is not None:
                by_entity.setdefault(item.program.entity, []).append(item)
                programs[item.program.entity] = item.program
        for entity, group in by_entity.items():
            facts = [item.fact for item in group]
            if programs[entity].spec.negated_patterns:
                self._match_patterns(programs[entity], facts)  # type: ignore[arg-type]
            spec = programs[entity].spec
            for item, rules in zip(group, self._matchers[entity].match(facts)):  # type: ignore[arg-type]
                guards = {r for r in rules if r.startswith(GUARD)} if rules else rules
                item.matched = rules - guards if guards else rules
                # Time comparisons of rules that cannot hold now need not wake the entity up.
                flip = next_flip(spec, item.fact, item.now, guards)  # type: ignore[arg-type]
                if item.later is not None and (flip is None or item.later < flip):
                    flip = item.later
                item.due = flip
        events: list[AlertEvent] = []
        for item in prepared:
            state = item.state
            if not item.lines and not _of_lines(state):
                events.extend(self._apply(item))
                continue
            # The order's own alerts, then each line's; the lines' are kept in the order's state
            # as `rule#LINE`, read here (not when prepared: a state may be prepared twice in a batch).
            (firing, pending), of_lines = _split(state)
            state["firing"], state["pending"] = firing, pending
            events.extend(self._apply(item))
            firing, pending = state["firing"], state.get("pending") or {}
            dues = [state["due"]]
            lines = list(item.lines)
            for number, (f, p) in of_lines.items():
                if not any(_number(line.state) == number for line in lines):
                    gone = _line_state(state, number, {}, deleted=True)  # the line, or its rule, is gone
                    lines.append(Prepared(gone, item.now, None, None, {}, ()))
                    gone["firing"], gone["pending"] = f, p
            for line in lines:
                number = _number(line.state)
                if number in of_lines and line.program is not None:
                    line.state["firing"], line.state["pending"] = of_lines[number]
                events.extend(self._apply(line))
                firing.update({r + LINE_SEP + number: t for r, t in line.state["firing"].items()})
                pending.update({r + LINE_SEP + number: t for r, t in (line.state.get("pending") or {}).items()})
                dues.append(line.state["due"])
            state["firing"] = firing
            if pending:
                state["pending"] = pending
            else:
                state.pop("pending", None)
            known = [d for d in dues if d is not None]
            state["due"] = min(known) if known else None
        return events

    def _apply(self, item: Prepared) -> list[AlertEvent]:
        """Set a prepared state's deadline and apply its transitions."""
        state, now = item.state, item.now
        if item.program is None:
            state["due"] = None
            state.pop("pending", None)
            return self._transitions(state, set(), {}, {}, (), now)
        state["due"] = item.due
        return self._transitions(state, item.matched, item.fact, item.fields, item.history, now)

    def _match_patterns(self, program: EntityProgram, facts: list[dict[str, Any]]) -> None:
        """Negated contains/matches: durable_rules' own regex engine decides, in a first pass."""
        patterns = program.spec.negated_patterns
        probes = [{n.field: fact[n.field] for n in patterns if n.field in fact} for fact in facts]
        for fact, hits in zip(facts, self._patterns[program.entity].match(probes)):
            for n in patterns:
                if n.field in fact:
                    fact[n.prop] = n.prop in hits

    def _transitions(self, state: EntityState, matched: AbstractSet[str], fact: dict[str, Any] | None,
                     fields: dict[str, Any], history: tuple[Any, ...], now: float) -> list[AlertEvent]:
        firing = state["firing"]
        if not matched and not firing and "pending" not in state:
            return []  # the common case: nothing holds, nothing held
        out: list[AlertEvent] = []
        pending = state.get("pending") or {}
        keeping = state.get("keeping") or {}
        for rule_id in sorted(matched - firing.keys()):
            rule = self._rules[rule_id]
            since = now
            if rule.for_seconds > 0:
                since = pending.setdefault(rule_id, now)
                if now - since < rule.for_seconds:
                    ready = since + rule.for_seconds
                    state["due"] = ready if state["due"] is None else min(state["due"], ready)
                    continue
                del pending[rule_id]
            firing[rule_id] = since
            out.append(self._event(rule, state, "firing", now, since, fact or {}, fields, history))
        for rule_id in sorted(firing.keys() - matched):
            kept = self._rules.get(rule_id)
            if kept is not None and kept.keep_firing_for > 0 and not state["deleted"]:
                # Prometheus' keep_firing_for: still firing (no message either way) until it has
                # not held for that long; holding again within it changes nothing.
                stopped = keeping.setdefault(rule_id, now)
                if now - stopped < kept.keep_firing_for:
                    until = stopped + kept.keep_firing_for
                    state["due"] = until if state["due"] is None else min(state["due"], until)
                    continue
            keeping.pop(rule_id, None)
            since = firing.pop(rule_id)
            out.append(self._resolved(rule_id, state, now, since, fact or {}, fields, history))
        for rule_id in [r for r in keeping if r in matched or r not in firing]:
            del keeping[rule_id]  # holds again (or resolved): the next stop counts afresh
        for rule_id in [r for r in pending if r not in matched]:
            del pending[rule_id]  # stopped holding before `for:` elapsed: nothing was ever announced
        if pending:
            state["pending"] = pending
        else:
            state.pop("pending", None)
        if keeping:
            state["keeping"] = keeping
        else:
            state.pop("keeping", None)
        return out

    def _resolved(self, rule_id: str, state: EntityState, now: float, since: float,
                  fact: dict[str, Any], fields: dict[str, Any], history: tuple[Any, ...]) -> AlertEvent:
        rule = self.rule(rule_id)
        if rule is not None:
            return self._event(rule, state, "resolved", now, since, fact, fields, history)
        # Fired under rules this process never loaded (removed before a restart).
        return AlertEvent(rule=rule_id, entity=state["entity"], key=state["key"], state="resolved",
                          at=to_datetime(now), since=to_datetime(since), severity="info", title=rule_id,
                          summary=f"rule {rule_id} no longer exists")

    def _event(self, rule: Rule, state: EntityState, kind: str, now: float, since: float,
               fact: dict[str, Any], fields: dict[str, Any], history: tuple[Any, ...]) -> AlertEvent:
        values: dict[str, Any] = dict(fields or state["fields"])
        values.update(key=state["key"], entity=state["entity"], rule=rule.id, now=iso(now))
        deadlines, change = self._texts_from(rule)
        deadline = next((fact[d] for d in deadlines if d in fact), None)
        facts: dict[str, Any] = {"texts": {kind_: rule.texts.get(kind_) or {"": text}
                                           for kind_, text in (("title", rule.title), ("summary", rule.summary))}}
        if deadline is not None:
            facts["deadline"] = deadline
            values.update(values_at(facts, now))
        if change is not None:
            entry = latest_change(history or state["history"], change)
            if entry is not None:
                values.update(changed_fields=_describe_change(entry, change.fields),
                              changed_by=entry.get("actor") or "unknown", changed_at=entry["ts"])
                facts["changed"] = _changes_of(entry, change.fields)
        facts["values"] = _named_values(rule, values)
        owner = values.get(rule.owner) if rule.owner else None
        title = render(rule.title, values, currency=True)
        summary = render(rule.summary, values, currency=True)
        if kind != "firing" and missing(rule.summary, values):
            # The values the summary spoke of are gone (that is often why it resolved).
            summary = f"resolved: {title}"
        return AlertEvent(
            rule=rule.id,
            entity=state["entity"],
            key=state["key"],
            state="firing" if kind == "firing" else "resolved",
            at=to_datetime(now),
            since=to_datetime(since),
            severity=rule.severity,
            title=title,
            summary=summary,
            owner=None if owner is None else str(owner),
            labels={k: render(v, values) for k, v in rule.labels.items()},
            escalate=tuple(step.to_dict() for step in rule.escalate),
            facts=facts,
        )
