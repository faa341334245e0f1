"""durable_rules as the matching core, driven directly and from one thread.

Entity states are asserted as facts (facts, unlike events, are matched by
every rule whose condition they satisfy), the fired actions are drained
without durable_rules' timer threads, and the facts are retracted again: the
engine keeps state in Faust tables, so durable_rules never holds more than
one batch. One session id for everything (sessions cost memory and are
capped at 1,024); every fact gets a unique id (durable_rules rejects a fact
it has seen before).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import secrets
from typing import Any

import durable_rules_engine as dre
import orjson

_generation = itertools.count(1)


class MatcherError(RuntimeError):
    def __init__(self, message: str, rule_id: str | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id


class Matcher:
    """Match batches of facts against a set of durable_rules ruleset definitions."""

    def __init__(self, name: str, rulesets: tuple[dict[str, Any], ...]) -> None:
        gen = next(_generation)
        # durable_rules cannot replace a ruleset in place: a reload gets new names.
        self._names = itertools.count()
        self._handles: list[int] = []
        for defn in rulesets:
            self._handles.extend(self._create(f"{name}.{gen}", defn))
        self._ids = itertools.count()

    def _create(self, name: str, definitions: dict[str, Any]) -> list[int]:
        """Create rulesets for these rule definitions.

        durable_rules 2.0.28 now and then rejects a valid ruleset (error 102), depending on
        the process's memory layout: the same text, created again, or in two halves, goes
        through. Only a single rule it keeps rejecting is an error."""
        text = json.dumps(definitions, ensure_ascii=False)
        for _ in range(3):
            try:
                return [dre.create_ruleset(f"{name}.{next(self._names)}", text)]
            except dre.error as exc:
                error = exc
        if len(definitions) == 1:
            rule_id = next(iter(definitions))
            raise MatcherError(f"durable_rules rejects rule {rule_id!r}: {error}", rule_id)
        items = list(definitions.items())
        half = len(items) // 2
        return self._create(name, dict(items[:half])) + self._create(name, dict(items[half:]))

    def match(self, facts: list[dict[str, Any]]) -> list[set[str]]:
        """For each fact, the ids of the rules it satisfies."""
        if not facts:
            return []
        index: dict[str, int] = {}
        for i, fact in enumerate(facts):
            fid = f"f{next(self._ids)}"
            fact["id"] = fid
            fact["sid"] = "0"
            index[fid] = i
        out: list[set[str]] = [set() for _ in facts]
        payload = _payload(facts)
        # Retracting finds a fact by its id and session alone: the facts need not be read again.
        ids = '[{"id":"' + '","sid":"0"},{"id":"'.join(index) + '","sid":"0"}]'
        for handle in self._handles:
            code, state_handle = dre.assert_facts(handle, payload)
            if code == 2:
                raise MatcherError("durable_rules saw a fact id twice")
            try:
                self._drain(handle, state_handle, index, out)
            finally:
                dre.retract_facts(handle, ids)
        return out

    def close(self) -> None:
        """Free the rulesets in durable_rules (after a reload swapped them out)."""
        for handle in self._handles:
            dre.delete_ruleset(handle)
        self._handles = []

    @staticmethod
    def _drain(handle: int, state_handle: int, index: dict[str, int], out: list[set[str]]) -> None:
        started = dre.start_action_for_state(handle, state_handle)
        message = started[1] if started else None
        while message:
            rule_id, fid = _action_of(message)
            pos = index.get(fid)
            if pos is not None:
                out[pos].add(rule_id)
            message = dre.complete_and_start_action(handle, state_handle)


_ID_MARK = '"id":"'
# durable_rules 2.0.28 dies (SIGSEGV) when a fact it matched holds a number written with an
# exponent and no decimal point (`1e+16`, `1e-05`): how orjson and Python write floats of one
# significant digit from 1e16 up or below 1e-4. Those go out with a point (`1.0e+16`).
_MARK = f"\u0000orderwatch-number-{secrets.token_hex(8)}-"


# A number token with an exponent and no point, as orjson writes one (`:1e+16`, `,-1e-05]`). Text
# inside a string can look like it too: then the facts themselves are looked at.
_SUSPECT = re.compile(r"[:,\[]-?[0-9]+e")
# Its cheap forerunner: an exponent at all (a literal-led pattern is searched for, not tried at
# every character: a third of _SUSPECT's time on facts, which rarely hold one).
_EXPONENT = re.compile(r"e[-+]?[0-9]")


def _payload(facts: list[dict[str, Any]]) -> str:
    """The facts as durable_rules reads them (and survives)."""
    payload = _dumps(facts)
    if (_EXPONENT.search(payload) is None or _SUSPECT.search(payload) is None
            or not any(_exponent(fact) for fact in facts)):
        return payload
    numbers: list[str] = []
    payload = _dumps([_marked(fact, numbers) for fact in facts])
    for i, text in enumerate(numbers):
        payload = payload.replace(f'"{_MARK}{i}"', text, 1)
    return payload


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()  # 5x the json module, same JSON
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, default=str)


def _written_with_exponent(value: Any) -> bool:
    return type(value) is float and value != 0 and not 1e-4 <= abs(value) < 1e16 and math.isfinite(value)


def _exponent(fact: dict[str, Any]) -> bool:
    for value in fact.values():
        if _written_with_exponent(value):
            return True
        if type(value) is list and any(type(line) is dict and _exponent(line) for line in value):
            return True
    return False


def _marked(fact: dict[str, Any], numbers: list[str]) -> dict[str, Any]:
    """A copy of the fact with each float written with an exponent replaced by a mark."""
    out: dict[str, Any] = {}
    for name, value in fact.items():
        if _written_with_exponent(value):
            text = repr(value)
            numbers.append(text if "." in text else text.replace("e", ".0e", 1))
            value = f"{_MARK}{len(numbers) - 1}"
        elif type(value) is list:
            value = [_marked(line, numbers) if type(line) is dict else line for line in value]
        out[name] = value
    return out


def _action_of(message: str) -> tuple[str, str]:
    """(rule id, fact id) of an action message `{"<rule>":{"m":{…fact…,"id":"f7","sid":"0"}}}`.

    Decoding the whole fact back from JSON for every matched rule costs more than the match;
    the rule id leads the message and the fact id, added last, is the last `"id":"` in it
    (durable_rules echoes the facts as posted: compact, from orjson; quotes inside string
    values are escaped, so they cannot look like it)."""
    at = message.rfind(_ID_MARK)
    if message.startswith('{"') and at > 0:
        end = message.find('"', at + len(_ID_MARK))
        return message[2 : message.index('"', 2)], message[at + len(_ID_MARK) : end]
    ((rule_id, frame),) = json.loads(message).items()  # not the expected shape: decode it
    return rule_id, frame.get("m", frame).get("id", "")
