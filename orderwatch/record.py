"""The canonical change record: the one shape that crosses every boundary.

Connectors emit it, the engine consumes it, the dead-letter topic explains why
a payload could not become one. On the wire a Kafka message carries either one
record (a JSON object) or a batch of records (a JSON array) whose entity keys
all hash to the partition the message was sent to.

Reading is total: whatever bytes arrive give records and/or dead letters with
a reason a person understands, never an exception. The limits below keep every
later stage (state merge, rule facts, the orjson-encoded changelog, alerts and
dead letters) safe for any record that passes; the README lists them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

ENTITIES = ("purchase_order", "sales_order", "inventory", "invoice", "payment", "approval")
OPS = ("upsert", "delete")
Op = Literal["upsert", "delete"]
Seq = int | str

# --- Limits (README: "The change record") --------------------------------------------------
# Each gives a dead letter (a 400 at the webhook) whose reason names it.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one Kafka message: the producers' max_request_size
MAX_RECORDS = 10_000  # records in one message (the connectors send at most 500)
MAX_RECORD_BYTES = 1024 * 1024  # one record, as JSON
# Objects and arrays nested in one record, the record itself being level 1. A state nests a
# field value 5 levels deeper (history → change → [old, new]); orjson writes at most 254.
MAX_DEPTH = 32
# Integer cursors: the range orjson, and so Faust's table changelog, reads back exactly. A
# larger one would come back from the changelog as a rounded float: send it as a string.
SEQ_MIN, SEQ_MAX = -(2**63), 2**64 - 1
# A dead letter keeps its payload as JSON up to this size (and MAX_DEPTH + 2 levels);
# beyond it, the start of its JSON text.
DEAD_PAYLOAD_BYTES = 64 * 1024
DEAD_REASON_CHARS = 1000


_ENTITY_NAMES: set[str] = set()  # names seen valid (a few; checked once each)


class InvalidRecord(ValueError):
    """A payload that is not a valid change record; `field` names the culprit."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def parse_ts(value: Any, field_name: str = "ts") -> datetime:
    """Parse an ISO 8601 timestamp; naive values are rejected (an offset is required)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z itself
        except ValueError:
            raise InvalidRecord(field_name, f"not an ISO 8601 timestamp: {value!r}") from None
    else:
        raise InvalidRecord(field_name, f"expected an ISO 8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        raise InvalidRecord(field_name, f"timestamp needs a UTC offset: {value!r}")
    return parsed


@dataclass(slots=True)
class ChangeRecord:
    """One change to one business entity, as seen at its source (not to be changed once made;
    not frozen, because a frozen dataclass is built five times slower, once per record read)."""

    source: str
    entity: str
    key: str
    op: Op
    ts: datetime
    seq: Seq
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    changed: Mapping[str, tuple[Any, Any]] | None = None
    actor: str | None = None
    # `ts` as ISO text when the record was read from text already so written (see ts_text). Not
    # on the wire: orjson leaves out fields named with a leading underscore.
    _ts_text: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def ts_text(self) -> str:
        """`ts` as `datetime.isoformat` writes it (the text read, when it was written so)."""
        return self._ts_text or self.ts.isoformat()

    @property
    def entity_key(self) -> str:
        """The Kafka message key and state-table key: `entity:key`."""
        return f"{self.entity}:{self.key}"

    @classmethod
    def from_dict(cls, data: Any) -> ChangeRecord:
        """Validate a decoded JSON object; raise InvalidRecord naming the bad field."""
        if not isinstance(data, dict):
            raise InvalidRecord("record", f"expected a JSON object, got {type(data).__name__}")
        for name in ("source", "entity", "key"):
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidRecord(name, "required, a non-empty string")
        entity = data["entity"]
        if entity not in _ENTITY_NAMES:
            if not entity.replace("_", "").isalnum():
                raise InvalidRecord("entity", f"not an entity name: {entity!r}")
            if len(_ENTITY_NAMES) < 1000:
                _ENTITY_NAMES.add(entity)
        op = data.get("op", "upsert")
        if op not in OPS:
            raise InvalidRecord("op", f"must be one of {', '.join(OPS)}, got {op!r}")
        if "ts" not in data:
            raise InvalidRecord("ts", "required, an ISO 8601 timestamp with offset")
        ts = parse_ts(data["ts"])
        seq = data.get("seq")
        problem = seq_problem(seq)
        if problem is not None:
            raise InvalidRecord("seq", problem)
        fields = data.get("fields", {})
        if not isinstance(fields, dict):
            raise InvalidRecord("fields", "must be an object of field values")
        changed = data.get("changed")
        if changed is not None:
            if not isinstance(changed, dict) or not all(
                isinstance(v, (list, tuple)) and len(v) == 2 for v in changed.values()
            ):
                raise InvalidRecord("changed", "must map each field to [old, new]")
            changed = {k: (v[0], v[1]) for k, v in changed.items()}
        actor = data.get("actor")
        if actor is not None and not isinstance(actor, str):
            raise InvalidRecord("actor", "must be a string")
        # Positional: a call with keywords costs a third more, once per record read.
        record = cls(data["source"], entity, data["key"], op, ts, data["seq"], fields, changed, actor)
        if _as_isoformat_writes(data["ts"], ts):
            record._ts_text = data["ts"]  # formatting it again costs a record's reading twice
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md §1."""
        out: dict[str, Any] = {
            "source": self.source,
            "entity": self.entity,
            "key": self.key,
            "op": self.op,
            "ts": self.ts.isoformat(),
            "seq": self.seq,
            "fields": dict(self.fields),
        }
        if self.changed is not None:
            out["changed"] = {k: [v[0], v[1]] for k, v in self.changed.items()}
        if self.actor is not None:
            out["actor"] = self.actor
        return out


def _as_isoformat_writes(text: Any, parsed: datetime) -> bool:
    """Whether `text`, read as `parsed`, is what `parsed.isoformat()` writes: the shape
    YYYY-MM-DDTHH:MM:SS[.ffffff]±HH:MM, six fraction digits only when not zero, no -00:00."""
    if type(text) is not str:
        return False
    size = len(text)
    if size == 25:
        tz = 19
    elif size == 32 and text[19] == "." and parsed.microsecond:
        tz = 26
    else:
        return False
    return (text[4] == "-" and text[7] == "-" and text[10] == "T" and text[13] == ":" and text[16] == ":"
            and text[tz] in "+-" and text[tz + 3] == ":" and text[tz:] != "-00:00")


def seq_problem(seq: Any) -> str | None:
    """Why `seq` cannot be a cursor, or None."""
    if type(seq) is int and SEQ_MIN <= seq <= SEQ_MAX:
        return None  # the usual cursor, checked first: this runs for every record read
    if isinstance(seq, bool) or not isinstance(seq, (int, str, float)) or seq == "":
        return "required, an integer or a non-empty string cursor"
    if isinstance(seq, float):
        # JSON readers give a float for an integer beyond 64 bits: say so rather than "not an integer".
        if math.isfinite(seq) and seq.is_integer() and abs(seq) >= 2**63:
            return f"an integer cursor must fit in 64 bits (at most {SEQ_MAX}); send a larger one as a string"
        return "required, an integer or a non-empty string cursor"
    if isinstance(seq, int) and not SEQ_MIN <= seq <= SEQ_MAX:
        return f"an integer cursor must fit in 64 bits (at most {SEQ_MAX}); send a larger one as a string"
    return None


def _wire_default(value: Any) -> Any:
    """What orjson does not write itself: read-only mappings as objects, the rest as text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def encode_batch(records: list[ChangeRecord]) -> bytes:
    """Serialise records for one Kafka message (a JSON array).

    orjson writes the dataclasses itself (ts as isoformat writes it), with no Python per
    record: building a dict per record first cost twice the encoding. Absent optional
    fields (`changed`, `actor`) go out as null, which `from_dict` reads as absent."""
    try:
        return orjson.dumps(records, default=_wire_default)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the json module takes it
        docs = [r.to_dict() for r in records]
        return json.dumps(docs, ensure_ascii=False, default=str).encode()


def encode_record(record: ChangeRecord) -> bytes | None:
    """One record as a JSON object, as `encode_batch` writes it inside its array; None when
    it cannot be written at all (e.g. values nested past the encoders' depth limits)."""
    try:
        return orjson.dumps(record, default=_wire_default)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(record.to_dict(), ensure_ascii=False, default=str).encode()
        except (ValueError, TypeError, RecursionError):
            return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that could not become a change record, and why."""

    reason: str
    field: str | None
    payload: Any
    source: str
    # dataclasses.field in full: this class has an attribute named `field`.
    at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    where: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The dead letter as JSON-able data that any JSON encoder writes (see `safe_payload`)."""
        return {
            "reason": _safe_text(str(self.reason), DEAD_REASON_CHARS),
            "field": None if self.field is None else _safe_text(str(self.field), DEAD_REASON_CHARS),
            "payload": safe_payload(self.payload),
            "source": _safe_text(str(self.source), DEAD_REASON_CHARS),
            "at": self.at.isoformat(),
            "where": _pruned(dict(self.where), 4, [1000]),
        }


class Unreadable(ValueError):
    """Bytes that cannot be read as JSON within the limits; str() is the reason."""


def read_json(value: bytes | str, *, strict: bool = False) -> tuple[Any, bool]:
    """Parse one message (or webhook body) within MAX_MESSAGE_BYTES; raise Unreadable.

    Returns (data, exact): exact when orjson read it, so that every string is valid Unicode,
    every integer fits in 64 bits (orjson reads larger ones as floats) and orjson writes it
    all back, nesting aside. orjson refuses what the json module reads: NaN and ±Infinity
    (which Python's json writes), numbers beyond the float range and unpaired surrogates
    (`\\ud800`). The json module then reads the message the same way orjson would, but
    NaN, ±Infinity and numbers beyond the float range become null; `strict` (the webhook,
    which can answer the sender) refuses them instead."""
    if len(value) > MAX_MESSAGE_BYTES:
        raise Unreadable(f"message of {len(value)} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
    try:
        return orjson.loads(value), True
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise Unreadable(f"nested more than 1024 levels deep, over the limit ({MAX_DEPTH} for a record)") from None
    try:
        return json.loads(value, parse_constant=_constant_strict if strict else _constant,
                          parse_int=_int_strict if strict else _int,
                          parse_float=_float_strict if strict else _float), False
    except RecursionError:
        raise Unreadable(f"nested too deeply to be read, over the limit ({MAX_DEPTH} for a record)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"not JSON: {exc}") from None


def _constant(name: str) -> Any:
    return None  # NaN, Infinity, -Infinity: what orjson writes for them anyway


def _constant_strict(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _int(text: str) -> Any:
    # orjson's reading: exact within 64 bits, a float beyond (and here null beyond floats).
    if len(text) <= 20:
        number = int(text)
        if SEQ_MIN <= number <= SEQ_MAX:
            return number
    return _float(text)


def _int_strict(text: str) -> Any:
    if len(text) <= 20:
        number = int(text)
        if SEQ_MIN <= number <= SEQ_MAX:
            return number
    return _float_strict(text)


def _float(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def _float_strict(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        shown = text if len(text) <= 24 else f"{text[:12]}…({len(text)} digits)"
        raise ValueError(f"{shown} is beyond the range of numbers that can be kept (about ±1.8e308)")
    return number


def record_problem(item: Any, exact: bool, small: bool) -> InvalidRecord | None:
    """What makes a decoded item unsafe for the later stages (nesting, size, text orjson cannot
    write), or None. `exact` and `small` (its message is within MAX_RECORD_BYTES) skip the checks
    that cannot fail; `from_dict` checks the rest."""
    if type(item) is not dict:
        return None  # from_dict says what it should be
    for name, value in item.items():
        kind = type(value)
        if (kind is dict or kind is list) and _deeper(value, MAX_DEPTH - 1):
            return InvalidRecord(name, f"nested more than {MAX_DEPTH} levels deep (objects and arrays, "
                                       "the record being the first): over the limit")
    if exact and small:
        return None
    try:
        size = len(orjson.dumps(item))
    except orjson.JSONEncodeError as exc:
        for name, value in item.items():  # name the culprit
            try:
                orjson.dumps(value)
            except orjson.JSONEncodeError:
                return InvalidRecord(str(name), _unwritable(exc))
        return InvalidRecord("record", _unwritable(exc))
    if size > MAX_RECORD_BYTES:
        return InvalidRecord("record", f"{size} bytes as JSON, over the limit of {MAX_RECORD_BYTES} bytes for one record")
    return None


def _unwritable(exc: Exception) -> str:
    if "surrogates" in str(exc):
        return "holds text that is not valid Unicode (an unpaired UTF-16 surrogate such as \\ud800)"
    return f"cannot be written as JSON: {exc}"


def _deeper(value: Any, levels: int) -> bool:
    """Whether a container (a dict or list) nests more than `levels` levels (itself being one)."""
    if levels <= 0:
        return True
    for item in (value.values() if type(value) is dict else value):
        kind = type(item)
        if (kind is dict or kind is list) and _deeper(item, levels - 1):
            return True
    return False


def _safe_text(text: str, limit: int) -> str:
    """Text any encoder writes: at most `limit` characters, unpaired surrogates escaped."""
    if len(text) > limit:
        text = text[:limit] + f"…(cut, {len(text)} characters)"
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    return text


def _pruned(value: Any, depth: int, budget: list[int]) -> Any:
    """A copy of `value` that any JSON encoder writes: nested at most `depth` levels, at most
    budget[0] values, numbers JSON has, text valid Unicode; what is left out says so."""
    budget[0] -= 1
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        if SEQ_MIN <= value <= SEQ_MAX:
            return value
        return str(value) if value.bit_length() < 4000 else f"<an integer of {value.bit_length()} bits>"
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind is str:
        return _safe_text(value, 4096)
    if isinstance(value, (dict, Mapping, list, tuple)):
        if depth <= 0 or budget[0] <= 0:
            return "…(nested deeper, or more values, than a dead letter keeps)"
        if isinstance(value, (dict, Mapping)):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if budget[0] <= 0:
                    out["…"] = "more values than a dead letter keeps"
                    break
                out[_safe_text(str(k), 256)] = _pruned(v, depth - 1, budget)
            return out
        items: list[Any] = []
        for v in value:
            if budget[0] <= 0:
                items.append("…(more values than a dead letter keeps)")
                break
            items.append(_pruned(v, depth - 1, budget))
        return items
    try:
        return _safe_text(str(value), DEAD_PAYLOAD_BYTES)
    except Exception:  # noqa: BLE001 - a value whose str() fails still gets a dead letter
        return f"<{kind.__name__}>"


def safe_payload(payload: Any) -> Any:
    """A dead letter's payload as written: the payload itself while it is plain JSON within
    MAX_DEPTH + 2 levels and DEAD_PAYLOAD_BYTES; else the start of its JSON text."""
    if isinstance(payload, str):  # the text of a message that could not be read
        text = _safe_text(payload, DEAD_PAYLOAD_BYTES // 2)
        while len(orjson.dumps(text)) > DEAD_PAYLOAD_BYTES:
            text = text[: len(text) // 2] + "…(cut)"
        return text
    pruned = _pruned(payload, MAX_DEPTH + 2, [DEAD_PAYLOAD_BYTES // 2])
    encoded = orjson.dumps(pruned)
    if len(encoded) <= DEAD_PAYLOAD_BYTES:
        return pruned
    return encoded[: DEAD_PAYLOAD_BYTES // 2].decode("utf-8", "ignore") + f"…(cut, {len(encoded)} bytes)"


def message_text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value[:DEAD_PAYLOAD_BYTES].decode("utf-8", "replace")
    return value[:DEAD_PAYLOAD_BYTES]


def decode_message(value: bytes | str, source: str = "kafka") -> tuple[list[ChangeRecord], list[DeadLetter]]:
    """Split one Kafka message into valid records and dead letters; never raises.

    A message that cannot be read at all, or holds more than MAX_RECORDS records, is one
    dead letter (its payload the start of its text); otherwise each bad record is one."""
    try:
        data, exact = read_json(value)
        items = data if isinstance(data, list) else [data]
        if len(items) > MAX_RECORDS:
            raise Unreadable(f"message holds {len(items)} records, over the limit of {MAX_RECORDS} per message")
        return _validate(items, source, exact, len(value) <= MAX_RECORD_BYTES)
    except Unreadable as exc:
        return [], [DeadLetter(str(exc), None, message_text(value), source)]
    except Exception as exc:  # noqa: BLE001 - total by contract: what the checks above missed
        return [], [DeadLetter(f"not readable: {type(exc).__name__}: {exc}", None, message_text(value), source)]


def _validate(items: list[Any], source: str, exact: bool = True,
              small: bool = True) -> tuple[list[ChangeRecord], list[DeadLetter]]:
    records: list[ChangeRecord] = []
    dead: list[DeadLetter] = []
    for index, item in enumerate(items):
        try:
            problem = record_problem(item, exact, small)
            if problem is not None:
                raise problem
            records.append(ChangeRecord.from_dict(item))
        except InvalidRecord as exc:
            dead.append(DeadLetter(str(exc), exc.field, item, source, where={"index": index}))
        except Exception as exc:  # noqa: BLE001 - total by contract: one record, not the message
            dead.append(DeadLetter(f"record: cannot be read: {type(exc).__name__}: {exc}", None, item, source,
                                   where={"index": index}))
    return records, dead
