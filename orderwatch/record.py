"""The canonical change record: the one shape that crosses every boundary.

Connectors emit it, the engine consumes it, the dead-letter topic explains why
a payload could not become one. On the wire a Kafka message carries either one
record (a JSON object) or a batch of records (a JSON array) whose entity keys
all hash to the partition the message was sent to.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

ENTITIES = ("purchase_order", "sales_order", "inventory", "invoice", "payment", "approval")
OPS = ("upsert", "delete")
Op = Literal["upsert", "delete"]
Seq = int | str


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


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One change to one business entity, as seen at its source."""

    source: str
    entity: str
    key: str
    op: Op
    ts: datetime
    seq: Seq
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    changed: Mapping[str, tuple[Any, Any]] | None = None
    actor: str | None = None

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
        if not entity.replace("_", "").isalnum():
            raise InvalidRecord("entity", f"not an entity name: {entity!r}")
        op = data.get("op", "upsert")
        if op not in OPS:
            raise InvalidRecord("op", f"must be one of {', '.join(OPS)}, got {op!r}")
        if "ts" not in data:
            raise InvalidRecord("ts", "required, an ISO 8601 timestamp with offset")
        ts = parse_ts(data["ts"])
        seq = data.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, (int, str)) or seq == "":
            raise InvalidRecord("seq", "required, an integer or a non-empty string cursor")
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
        return cls(
            source=data["source"],
            entity=entity,
            key=data["key"],
            op=op,
            ts=ts,
            seq=seq,
            fields=fields,
            changed=changed,
            actor=actor,
        )

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
        return {
            "reason": self.reason,
            "field": self.field,
            "payload": self.payload,
            "source": self.source,
            "at": self.at.isoformat(),
            "where": dict(self.where),
        }


def decode_message(value: bytes | str, source: str = "kafka") -> tuple[list[ChangeRecord], list[DeadLetter]]:
    """Split one Kafka message into valid records and dead letters; never raises."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        # orjson is stricter than the json module (NaN, huge integers): accept what json
        # accepts, and word the reason as json does.
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return [], [DeadLetter(f"not JSON: {exc}", None, text[:4096], source)]
    records, dead = _validate(data, source)
    if any(d.field == "seq" and isinstance(d.payload, dict) and type(d.payload.get("seq")) is float for d in dead):
        # orjson reads an integer beyond 64 bits as a float; the json module keeps it exact.
        records, dead = _validate(json.loads(value), source)
    return records, dead


def _validate(data: Any, source: str) -> tuple[list[ChangeRecord], list[DeadLetter]]:
    items = data if isinstance(data, list) else [data]
    records: list[ChangeRecord] = []
    dead: list[DeadLetter] = []
    for index, item in enumerate(items):
        try:
            records.append(ChangeRecord.from_dict(item))
        except InvalidRecord as exc:
            dead.append(DeadLetter(str(exc), exc.field, item, source, where={"index": index}))
    return records, dead
