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
from typing import Any

import durable_rules_engine as dre

_generation = itertools.count(1)


class MatcherError(RuntimeError):
    pass


class Matcher:
    """Match batches of facts against a set of durable_rules ruleset definitions."""

    def __init__(self, name: str, rulesets: tuple[dict[str, Any], ...]) -> None:
        gen = next(_generation)
        # durable_rules cannot replace a ruleset in place: a reload gets new names.
        self._handles = [
            dre.create_ruleset(f"{name}.{gen}.{i}", json.dumps(defn, ensure_ascii=False))
            for i, defn in enumerate(rulesets)
        ]
        self._ids = itertools.count()

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
        payload = json.dumps(facts, ensure_ascii=False, default=str)
        for handle in self._handles:
            code, state_handle = dre.assert_facts(handle, payload)
            if code == 2:
                raise MatcherError("durable_rules saw a fact id twice")
            try:
                self._drain(handle, state_handle, index, out)
            finally:
                dre.retract_facts(handle, payload)
        return out

    @staticmethod
    def _drain(handle: int, state_handle: int, index: dict[str, int], out: list[set[str]]) -> None:
        started = dre.start_action_for_state(handle, state_handle)
        message = started[1] if started else None
        while message:
            for rule_id, frame in json.loads(message).items():
                fact = frame.get("m", frame)
                pos = index.get(fact.get("id", ""))
                if pos is not None:
                    out[pos].add(rule_id)
            message = dre.complete_and_start_action(handle, state_handle)
