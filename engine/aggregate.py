"""Derived entities folded from other entities' states: the contract and the fold.

Some exceptions are about a thing no single record describes: the stock of a
SKU in a warehouse (on hand + inbound purchase orders − open sales orders),
or everything a customer owes. A *view* says how a source entity state
contributes to such a derived entity, and how the contributions add up:

    source state ──contributions(state)──► Contribution(entity, key, source, rev, ts, values)
                                                   │  (keyed by `entity:key`)
    derived state ◄──fold(derived, contribution)───┘  → Evaluator.evaluate([derived], now)

Both functions are pure over JSON-able data, so the same code runs in-process
(backtest, `rules test`) and in Faust (a topic keyed by the derived entity key,
an agent folding into a table). Idempotence: a contribution carries the source
state's `seqs` as its version; a fold ignores one that is not newer than what it
holds for that source, so replays change nothing. When a source stops
contributing to a key (closed, deleted, or moved to another SKU/warehouse), the
record's diff says where it contributed before and a retraction (`values` None)
goes there; its version is kept as a tombstone (`state["gone"]`, the most
recent MAX_TOMBSTONES) so that a replayed older contribution cannot resurrect
the part. The source state itself is not changed: a tracked order stays small.

The views shipped: engine/stock.py (`stock`, keyed `sku@warehouse`) and
engine/accounts.py (`customer_account`, keyed by customer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from engine.state import Change, EntityState, diff, is_newer

MAX_TOMBSTONES = 64  # per derived entity; replays reach back minutes, not months


class View(Protocol):
    """How one derived entity is built."""

    entity: str
    sources: frozenset[str]
    depends_on_now: bool  # at_now() gives fields, so a fold's diff does not tell all that changed

    def contribute(self, state: EntityState) -> dict[str, dict[str, Any]]:
        """Derived key → this source's values, for a live source state."""

    def apply(self, state: EntityState, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        """The derived fields after one source's share went from `old` to `new` (None: absent).
        `state["parts"]` already holds the new share; a view may keep lookups in `state["index"]`.
        Return a new dict: the engine keeps references to earlier field dicts as snapshots."""

    def at_now(self, state: EntityState, now: float) -> dict[str, Any]:
        """Fields that depend on the evaluation instant ({} if none)."""

    def next_change(self, state: EntityState, now: float) -> float | None:
        """When at_now() next changes after `now`, or None."""


def live_parts(state: EntityState) -> list[dict[str, Any]]:
    return [p["v"] for p in state.get("parts", {}).values()]


_VIEWS: dict[str, View] = {}


def register(view: View) -> View:
    _VIEWS[view.entity] = view
    _views_fed_by.cache_clear()
    return view


def views() -> list[View]:
    _load_shipped()
    return list(_VIEWS.values())


def view_of(entity: str) -> View | None:
    _load_shipped()
    return _VIEWS.get(entity)


def _load_shipped() -> None:
    # The shipped views register themselves on import (cached after the first call).
    import engine.accounts
    import engine.stock  # noqa: F401


@cache
def _views_fed_by(entity: str) -> tuple[View, ...]:
    return tuple(v for v in views() if entity in v.sources)


def source_entities() -> frozenset[str]:
    """Entities whose changes feed some derived entity."""
    return frozenset(e for v in views() for e in v.sources)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One source's share of one derived entity (values None: it no longer contributes).

    `version` is the source state's `seqs` when it was computed: every applied record moves
    one source's cursor forward, so of two versions of one state the later one is the larger."""

    entity: str
    key: str
    source: str
    version: dict[str, Any]
    ts: str
    values: dict[str, Any] | None

    @property
    def entity_key(self) -> str:
        """The Kafka key of the repartition topic and of the derived state table."""
        return f"{self.entity}:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "key": self.key, "source": self.source, "version": self.version,
                "ts": self.ts, "values": self.values}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contribution:
        return cls(data["entity"], data["key"], data["source"], dict(data["version"]), data["ts"], data.get("values"))


def newer(version: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether `version` is a later state than `than` (no cursor behind, at least one ahead)."""
    if version == than:
        return False
    return all(s in version and (version[s] == seq or is_newer(version[s], seq)) for s, seq in than.items())


def _before(state: EntityState) -> EntityState | None:
    """The state as it was before its last applied record, from that record's diff; None when
    the record created it (a first sighting leaves no history entry)."""
    if not state["history"]:
        return None
    fields = dict(state["fields"])
    for name, (old, _) in state["history"][-1]["changed"].items():
        if old is None:
            fields.pop(name, None)
        else:
            fields[name] = old
    return {**state, "fields": fields, "deleted": False}  # type: ignore[return-value]


def contributions(state: EntityState) -> list[Contribution]:
    """What a source state contributes after the record just applied to it, plus retractions
    of what it contributed before that record (found from the record's diff). Pure: call it
    after each `apply_record` that returned a state, before the next one."""
    mine = _views_fed_by(state["entity"])
    if not mine:
        return []
    now = [] if state["deleted"] else [(view, view.contribute(state)) for view in mine]
    before = _before(state)
    then = [] if before is None else [(view, view.contribute(before)) for view in mine]
    if not any(shares for _, shares in now) and not any(shares for _, shares in then):
        return []  # most orders: nothing to contribute, nothing to retract (checked per record)
    source = f"{state['entity']}:{state['key']}"
    version, ts = dict(state["seqs"]), state["ts"]
    out: dict[str, Contribution] = {}
    for view, shares in now:
        for key, values in shares.items():
            c = Contribution(view.entity, key, source, version, ts, values)
            out[c.entity_key] = c
    for view, shares in then:
        for key in shares:
            ek = f"{view.entity}:{key}"
            if ek not in out:
                out[ek] = Contribution(view.entity, key, source, version, ts, None)
    return [out[ek] for ek in sorted(out)]


def new_derived(entity: str, key: str, partition: int, ts: str) -> EntityState:
    return EntityState(entity=entity, key=key, p=partition, fields={}, seqs={}, history=[], firing={},
                       due=None, ts=ts, deleted=False, parts={}, gone={})


def fold(state: EntityState | None, c: Contribution, partition: int, history_limit: int = 20) -> EntityState | None:
    """Fold one contribution into a derived state; None when it changes nothing (replay, stale, same)."""
    view = view_of(c.entity)
    if view is None:
        raise ValueError(f"no view builds entity {c.entity!r}")
    first = state is None
    if state is None:
        if c.values is None:
            return None  # retracting from something never built
        state = new_derived(c.entity, c.key, partition, c.ts)
    parts = state.setdefault("parts", {})
    gone = state.setdefault("gone", {})
    held = parts.get(c.source)
    held_version = held["ver"] if held is not None else gone.get(c.source)
    if held_version is not None and not newer(c.version, held_version):
        return None  # a replay, or older than what is held
    if c.values is None:
        parts.pop(c.source, None)
        gone.pop(c.source, None)  # re-inserted last: dict order is the tombstone age
        gone[c.source] = c.version
        while len(gone) > MAX_TOMBSTONES:
            del gone[next(iter(gone))]
    else:
        gone.pop(c.source, None)
        parts[c.source] = {"ver": c.version, "v": c.values}
    old = held["v"] if held is not None else None
    if old == c.values:
        return None
    live = bool(parts)
    fields = view.apply(state, old, c.values) if live else {}
    if not live:
        state.pop("index", None)
    changed = diff(state["fields"], fields)
    state["fields"] = fields
    state["p"] = partition
    state["ts"] = c.ts
    state["deleted"] = not live
    if not first:  # the first share builds the state: not a change
        seq = max(c.version.values(), key=str) if c.version else 0
        state["history"].append(Change(ts=c.ts, seq=seq, source=c.source, op="upsert", actor=None, changed=changed))
    if len(state["history"]) > history_limit:
        del state["history"][: len(state["history"]) - history_limit]
    return state


def at_now(state: EntityState, now: float) -> dict[str, Any]:
    """Instant-dependent fields of a derived state ({} for ordinary entities)."""
    view = view_of(state["entity"])
    return view.at_now(state, now) if view is not None else {}


def next_change(state: EntityState, now: float) -> float | None:
    view = view_of(state["entity"])
    return view.next_change(state, now) if view is not None else None
