"""Each entity's current state, merged from its change records.

A state is a JSON-able dict (it lives in a Faust table and its changelog):

    entity, key    identity
    p              the partition it belongs to (where its records arrive)
    fields         current values under canonical names
    seqs           last applied seq per source (replays are recognised and dropped)
    history        the most recent changes, newest last, with field-level diffs
    firing         rule id → epoch seconds when it started firing (a per-line rule's: `rule#LINE`)
    due            epoch seconds of the next instant a rule's truth can change, or None
    ts             source time of the last applied change
    deleted        the source deleted it (kept only until its alerts resolve)

Optional keys, present only when used (a tracked order should stay small):

    pending        rule id → epoch seconds since its condition holds, for rules with `for:`
    keeping        rule id → epoch seconds since its condition stopped holding while it still
                   fires, for rules with `keep_firing_for:`
    parts          (derived entities only) source entity key → {"ver", "v"}: live contributions
    gone           (derived entities only) source entity key → version of its retraction
    index          (derived entities only) lookups a view keeps (engine/accounts.py)

`history` holds changes only: the record that creates a state is a first
sighting, not a change (nor kept twice), unless its source said what changed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from orderwatch.record import ChangeRecord, Seq

HISTORY_LIMIT = 20


class Change(TypedDict):
    ts: str
    seq: Seq
    source: str
    op: str
    actor: str | None
    changed: dict[str, list[Any]]


class EntityState(TypedDict):
    entity: str
    key: str
    p: int
    fields: dict[str, Any]
    seqs: dict[str, Seq]
    history: list[Change]
    firing: dict[str, float]
    due: float | None
    ts: str
    deleted: bool
    pending: NotRequired[dict[str, float]]
    keeping: NotRequired[dict[str, float]]
    parts: NotRequired[dict[str, dict[str, Any]]]
    gone: NotRequired[dict[str, dict[str, Any]]]
    index: NotRequired[dict[str, Any]]


def new_state(record: ChangeRecord, partition: int, ts: str | None = None) -> EntityState:
    """An empty state for the record's entity (`ts`: the record's time as text, if known)."""
    return EntityState(
        entity=record.entity,
        key=record.key,
        p=partition,
        fields={},
        seqs={},
        history=[],
        firing={},
        due=None,
        ts=record.ts_text() if ts is None else ts,
        deleted=False,
    )


def is_newer(seq: Seq, last: Seq | None) -> bool:
    """Cursor order: integers numerically, strings lexically (ISO timestamps sort)."""
    if last is None:
        return True
    if isinstance(seq, int) and isinstance(last, int):
        return seq > last
    return str(seq) > str(last)


def _shared(value: Any) -> Any:
    """Field names and short texts (statuses, currencies, people, dates) repeat across millions of
    orders; sharing one string object per distinct text keeps a tracked order small."""
    return sys.intern(value) if type(value) is str and len(value) <= 64 else value


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    intern, text = sys.intern, str  # _shared, inlined: this runs for every field of every record
    # Names too: orjson shares them, but records the json module read (NaN, numbers beyond 64
    # bits; bench/rules.py reads all its records so) would keep copies of their own.
    return {intern(k): intern(v) if type(v) is text and len(v) <= 64 else v for k, v in fields.items()}


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Field-level changes from old to new, as {field: [old, new]} (None = absent)."""
    get = old.get
    out = {k: [get(k), v] for k, v in new.items() if get(k) != v}
    for k in old.keys() - new.keys():
        if old[k] is not None:
            out[k] = [old[k], None]
    return out


def fork(state: EntityState | None) -> EntityState | None:
    """A copy that `apply_record`, `aggregate.fold` and the Evaluator may change while `state`
    stays as it was (so a record that breaks a later stage leaves no trace): the containers they
    change in place are copied; fields and history entries, which they replace, are shared."""
    if state is None:
        return None
    copy = state.copy()
    copy["seqs"] = state["seqs"].copy()
    copy["history"] = state["history"].copy()
    copy["firing"] = state["firing"].copy()
    if "pending" in state:
        copy["pending"] = state["pending"].copy()
    if "keeping" in state:
        copy["keeping"] = state["keeping"].copy()
    if "parts" in state:  # derived states (engine/aggregate.py, engine/accounts.py)
        copy["parts"] = state["parts"].copy()
    if "gone" in state:
        copy["gone"] = state["gone"].copy()
    if "index" in state:
        copy["index"] = {k: v.copy() if isinstance(v, (dict, list)) else v for k, v in state["index"].items()}
    return copy


def apply_record(
    state: EntityState | None, record: ChangeRecord, partition: int, history_limit: int = HISTORY_LIMIT
) -> EntityState | None:
    """Merge one record into a state; None when the record is a replay (not newer)."""
    first = state is None
    ts = record.ts_text()  # one string for the state and its history entry
    if state is None:
        state = new_state(record, partition, ts)
    elif not is_newer(record.seq, state["seqs"].get(record.source)):
        return None
    state["seqs"][sys.intern(record.source)] = record.seq
    state["p"] = partition
    state["ts"] = ts
    if record.op == "delete":
        changed = {k: [v, None] for k, v in state["fields"].items()}
        state["deleted"] = True
    else:
        new_fields = compact(record.fields)
        if record.changed is not None:
            changed = {k: [v[0], v[1]] for k, v in record.changed.items()}
        elif first:
            state["fields"] = new_fields
            return state  # a first sighting: no change to record
        else:
            changed = diff(state["fields"], new_fields)
        state["fields"] = new_fields
        state["deleted"] = False
    state["history"].append(Change(ts=ts, seq=record.seq, source=_shared(record.source), op=record.op,
                                   actor=_shared(record.actor), changed=changed))
    if len(state["history"]) > history_limit:
        del state["history"][: len(state["history"]) - history_limit]
    return state
