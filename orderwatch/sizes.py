"""How large a Kafka message orderwatch writes: the one limit, and the splitting that keeps to it.

Every producer of orderwatch's (connectors, `orderwatch produce`, the engine's
alerts, derived, dead-letter and changelog output) writes message values of at
most MAX_MESSAGE_BYTES, below Apache Kafka's default `message.max.bytes`
(1,048,588 bytes), so a broker with stock settings takes every message. A batch
of records larger than that goes out as several messages to the same partition,
in order; one record larger than that on its own cannot be sent at all and is
dead-lettered instead, naming it (key, source) and its size, never retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MAX_MESSAGE_BYTES = 1_000_000
"""The largest message (value, plus key if any) orderwatch sends."""

PRODUCER_LIMITS: dict[str, int] = {
    # aiokafka refuses a message above max_request_size, and a record batch (what the
    # broker checks against message.max.bytes) holds at most max_batch_size bytes.
    "max_request_size": 1_048_576,
    "max_batch_size": 1_048_576,
}
"""Keyword arguments for every AIOKafkaProducer orderwatch starts."""

_SUMMARY_KEYS = 12
_SUMMARY_TEXT = 200
_HEAD = 2048


def pack(parts: Sequence[bytes], limit: int = MAX_MESSAGE_BYTES) -> tuple[list[list[int]], list[int]]:
    """Pack JSON-encoded items into JSON arrays of at most `limit` bytes, keeping their order.

    Returns the messages (each a list of indices into `parts`) and the indices of the
    items too large to fit a message even alone.
    """
    messages: list[list[int]] = []
    oversized: list[int] = []
    current: list[int] = []
    size = 2  # the brackets
    for i, part in enumerate(parts):
        n = len(part)
        if n + 2 > limit:
            oversized.append(i)
            continue
        if current and size + 1 + n > limit:
            messages.append(current)
            current, size = [], 2
        size += n + (1 if current else 0)
        current.append(i)
    if current:
        messages.append(current)
    return messages, oversized


def json_array(parts: Sequence[bytes]) -> bytes:
    """The JSON array of already-encoded items."""
    return b"[" + b",".join(parts) + b"]"


def summary(item: Any, size: int) -> dict[str, Any]:
    """What names a too-large item in its dead letter: its short scalar fields and its size."""
    out: dict[str, Any] = {}
    if isinstance(item, Mapping):
        for k, v in item.items():
            if len(out) >= _SUMMARY_KEYS:
                break
            if isinstance(v, (str, int, float, bool)) and len(str(v)) <= _SUMMARY_TEXT:
                out[str(k)] = v
    out["bytes"] = size
    return out


def too_large_reason(size: int, what: str = "record") -> str:
    return f"{what} too large: {size:,} bytes encoded, over the {MAX_MESSAGE_BYTES:,}-byte message limit"


def fit_dead_letter(doc: dict[str, Any], encode: Callable[[Any], bytes]) -> bytes:
    """Encode a dead letter, replacing its payload by a summary and its head if it is too large
    (or cannot be encoded at all), so that the dead letter itself always fits a message."""
    try:
        value = encode(doc)
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. nested past the encoder's limit
        value, why = b"", f"payload not encodable ({exc})"
    else:
        if len(value) <= MAX_MESSAGE_BYTES:
            return value
        why = f"payload of {len(value):,} bytes cut to fit the {MAX_MESSAGE_BYTES:,}-byte message limit"
    payload = doc.get("payload")
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        text = repr(payload)[:_HEAD] if not isinstance(payload, (list, dict)) else ""
    cut = dict(doc, payload={"truncated": why, "head": text[:_HEAD]})
    for key in ("reason", "field", "source"):
        if isinstance(cut.get(key), str) and len(cut[key]) > _HEAD:
            cut[key] = cut[key][:_HEAD]
    where = cut.get("where")
    cut["where"] = summary(where, 0) if isinstance(where, Mapping) else {}
    cut["where"].pop("bytes", None)
    return json.dumps(cut, ensure_ascii=False, default=str).encode()
