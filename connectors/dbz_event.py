"""Debezium change events (JSON converter), with or without the schema envelope.

`{"schema": …, "payload": {before, after, op, ts_ms, source}}` or the bare
payload, or a row flattened by the ExtractNewRecordState transform (its
columns, with `__op`, `__deleted`, `__source_ts_ms` where the transform adds
them). With the schema, Debezium's logical types are decoded exactly
(dates as days, timestamps as ms/µs/ns since the epoch, decimals as base64
bytes with a scale). Without it, integers in date and datetime fields are
read as days (dates) and as s/ms/µs/ns by their magnitude (datetimes), and a
base64 decimal cannot be decoded: configure Debezium with
`decimal.handling.mode=string` (or `double`) then.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1)
_MAX_DAYS = 10**7  # days since 1970 stay below this; seconds since 1970 are past it from April 1970
_DAY = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
_SCALE = {
    "io.debezium.time.Timestamp": 1_000,
    "org.apache.kafka.connect.data.Timestamp": 1_000,
    "io.debezium.time.MicroTimestamp": 1_000_000,
    "io.debezium.time.NanoTimestamp": 1_000_000_000,
}
_TIME = {
    "io.debezium.time.Time": 1_000,
    "org.apache.kafka.connect.data.Time": 1_000,
    "io.debezium.time.MicroTime": 1_000_000,
    "io.debezium.time.NanoTime": 1_000_000_000,
}


class EventError(ValueError):
    """A message that is not a Debezium change event."""


@dataclass(frozen=True, slots=True)
class Event:
    op: str  # c, u, d, r (snapshot read), t (truncate), m (message)
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts: datetime | None
    source: dict[str, Any]
    has_schema: bool = False  # logical types were decoded from the envelope's schema


def parse_event(value: bytes | None, flattened_op: str | None = "u") -> Event | None:
    """Decode one message value; None for a tombstone (the null after a delete). A row without
    the envelope (ExtractNewRecordState) is an event too: its op is `__op` when the transform
    added it, a delete when `__deleted` is "true", else `flattened_op` (None: an EventError)."""
    if value is None:
        return None
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"not JSON: {exc}") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise EventError(f"expected a JSON object, got {type(doc).__name__}")
    schema = doc.get("schema") if "payload" in doc else None
    payload = doc.get("payload", doc)
    if payload is None:
        return None  # a tombstone written with the schema converter
    if not isinstance(payload, dict):
        raise EventError(f"not a Debezium change event: the payload is a {type(payload).__name__}")
    if not {"before", "after"} & payload.keys() and not {"op", "source"} <= payload.keys():
        return _flattened(payload, schema, flattened_op)  # its columns (one may be named op)
    if "op" not in payload:
        raise EventError("not a Debezium change event: no 'op' in the payload")
    op = payload["op"]
    if op not in ("c", "u", "d", "r", "t", "m"):
        raise EventError(f"unknown Debezium op {op!r}")
    types = _field_types(schema) if isinstance(schema, dict) else {}
    before = _decode_row(payload.get("before"), types)
    after = _decode_row(payload.get("after"), types)
    found = payload.get("source")
    source: dict[str, Any] = found if isinstance(found, dict) else {}
    ts_ms = source.get("ts_ms") or payload.get("ts_ms")
    ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC) if isinstance(ts_ms, (int, float)) else None
    return Event(op, before, after, ts, source, bool(types))


def _flattened(row: dict[str, Any], schema: Any, default_op: str | None) -> Event:
    """A row as ExtractNewRecordState writes it: the columns, and `__op`, `__deleted`,
    `__source_ts_ms`/`__ts_ms`, `__table`… when its add.fields/delete.handling ask for them."""
    types = _columns(schema) if isinstance(schema, dict) else {}
    meta = {k: v for k, v in row.items() if k.startswith("__")}
    columns = _decode_row({k: v for k, v in row.items() if not k.startswith("__")}, types) or {}
    op = meta.get("__op")
    if str(meta.get("__deleted", "")).lower() == "true":
        op = "d"
    if op is None:
        op = default_op
    if op is None:
        raise EventError("a flattened row (ExtractNewRecordState) without __op or __deleted: add "
                         "'add.fields=op' to the transform, or set the connector's op")
    if op not in ("c", "u", "d", "r"):
        raise EventError(f"unknown Debezium op {op!r} in __op")
    ts_ms = meta.get("__source_ts_ms") or meta.get("__ts_ms")
    ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC) if isinstance(ts_ms, (int, float)) else None
    before, after = (columns, None) if op == "d" else (None, columns)
    return Event(op, before, after, ts, {}, bool(types))


def _columns(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Column name → its Connect schema, from a flattened row's struct (the columns themselves)."""
    return {str(c.get("field")): c for c in schema.get("fields", []) if isinstance(c, dict)}


def _field_types(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Column name → its Connect schema, from the envelope's `after` (or `before`) struct."""
    out: dict[str, dict[str, Any]] = {}
    for part in schema.get("fields", []):
        if part.get("field") in ("before", "after"):
            for column in part.get("fields", []):
                out.setdefault(column.get("field"), column)
    return out


def _decode_row(row: Any, types: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if row is None:
        return None
    if not isinstance(row, dict):
        raise EventError(f"before/after must be objects, got {type(row).__name__}")
    out = {}
    for name, value in row.items():
        try:
            out[name] = _decode(value, types.get(name))
        except (ValueError, OverflowError) as exc:  # bad base64, a date out of range…
            kind = (types.get(name) or {}).get("name")
            raise EventError(f"column {name!r}: cannot decode {value!r} as {kind}: {exc}") from None
    return out


def _decode(value: Any, schema: dict[str, Any] | None) -> Any:
    if value is None or schema is None:
        return value
    name = schema.get("name")
    params = schema.get("parameters") or {}
    if name in _DAY and isinstance(value, int):
        return date(1970, 1, 1) + timedelta(days=value)
    if name in _SCALE and isinstance(value, int):
        # "timestamp without time zone": the wall clock encoded as if it were UTC.
        return _EPOCH + timedelta(microseconds=value * 1_000_000 // _SCALE[name])
    if name == "io.debezium.time.ZonedTimestamp" and isinstance(value, str):
        return datetime.fromisoformat(value)  # Python 3.11 reads the trailing Z
    if name in _TIME and isinstance(value, int):
        clock = _EPOCH + timedelta(microseconds=value * 1_000_000 // _TIME[name])
        return clock.time().isoformat()
    if name == "org.apache.kafka.connect.data.Decimal" and isinstance(value, str):
        return _unscaled(value, int(params.get("scale", 0)))
    if name == "io.debezium.data.VariableScaleDecimal" and isinstance(value, dict):
        return _unscaled(str(value.get("value", "")), int(value.get("scale", 0)))
    return value


def _unscaled(b64: str, scale: int) -> Decimal:
    raw = base64.b64decode(b64)
    return Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale)


def guess_time(value: Any, type_: str) -> Any:
    """Without a schema: an integer in a date/datetime field as Debezium encodes them."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    magnitude = abs(value)
    if type_ == "date" and magnitude < _MAX_DAYS:
        return date(1970, 1, 1) + timedelta(days=value)
    if type_ in ("date", "datetime"):
        # Too large for days: a timestamp column mapped as a date (Odoo's date_order).
        per_second = (
            1_000_000_000 if magnitude >= 10**17 else
            1_000_000 if magnitude >= 10**14 else
            1_000 if magnitude >= 10**11 else 1
        )
        return _EPOCH + timedelta(microseconds=value * 1_000_000 // per_second)
    return value
