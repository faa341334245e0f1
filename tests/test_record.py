"""The canonical change record on the wire: what a connector publishes is what the engine reads."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType

import orjson
import pytest

from engine.state import apply_record
from orderwatch.record import ChangeRecord, DeadLetter, decode_message, encode_batch

SHANGHAI = timezone(timedelta(hours=8))


def _po(key: str, **extra: object) -> ChangeRecord:
    values: dict[str, object] = {
        "source": "erp", "entity": "purchase_order", "key": key, "op": "upsert",
        "ts": datetime(2025, 3, 5, 9, 30, tzinfo=UTC), "seq": 7,
        "fields": {"supplier": "华东五金", "qty": 100, "expected_date": "2025-03-20"},
    }
    values.update(extra)
    return ChangeRecord(**values)  # type: ignore[arg-type]


def test_a_batch_reads_back_as_the_records_that_were_published() -> None:
    records = [
        _po("PO-1"),
        _po("PO-2", ts=datetime(2025, 3, 5, 17, 30, 1, 250, tzinfo=SHANGHAI), seq="2025-03-05T09:30:01.000250+00:00",
            changed={"qty": (100, 120)}, actor="li.wei"),
        _po("PO-3", op="delete", fields={}, seq=8),
    ]
    wire = encode_batch(records)
    assert isinstance(json.loads(wire), list)
    decoded, dead = decode_message(wire)
    assert dead == []
    assert decoded == records
    assert decoded[1].ts.utcoffset() == timedelta(hours=8)  # the source's offset is kept


@pytest.mark.parametrize("text", [
    "2025-03-05T09:30:00+00:00", "2025-03-05T17:30:01.000250+08:00", "2025-03-05T09:30:00-05:00",
    # read, then written as isoformat writes them: the state keeps that text, not the source's
    "2025-03-05T09:30:00Z", "2025-03-05T09:30:00-00:00", "2025-03-05T09:30:00.000000+00:00",
    "2025-03-05 09:30:00+00:00", "2025-03-05T09:30:00.5+00:00", "2025-03-05T09:30:00,000250+00:00",
    "20250305T093000+0000", "2025-03-05T09:30+00:00", "2025-03-05T09:30:00+05:30:15",
])
def test_a_records_time_is_kept_as_isoformat_writes_it(text: str) -> None:
    (record,), _ = decode_message(json.dumps([_po("PO-1").to_dict() | {"ts": text}]))
    assert record.ts == datetime.fromisoformat(text)
    assert record.ts_text() == datetime.fromisoformat(text).isoformat()
    state = apply_record(None, record, 0)
    assert state is not None and state["ts"] == datetime.fromisoformat(text).isoformat()


def test_absent_optional_fields_are_null_and_read_as_absent() -> None:
    (doc,) = json.loads(encode_batch([_po("PO-1")]))
    assert doc["ts"] == "2025-03-05T09:30:00+00:00"
    assert (doc["changed"], doc["actor"]) == (None, None)
    (record,), _ = decode_message(json.dumps(doc))
    assert (record.changed, record.actor) == (None, None)


def test_values_json_has_no_type_for_are_written_as_text() -> None:
    record = _po("PO-1", fields=MappingProxyType({"amount": Decimal("1234.50"), "qty": 3}))
    (decoded,), _ = decode_message(encode_batch([record]))
    assert decoded.fields == {"amount": "1234.50", "qty": 3}


def test_a_cursor_beyond_64_bits_is_dead_lettered_with_the_reason() -> None:
    # Faust reads the state changelog back with orjson, which rounds such integers to floats.
    wire = encode_batch([_po("PO-1", seq=2**70), _po("PO-2", seq=2**64 - 1)])
    (kept,), (letter,) = decode_message(wire)
    assert kept.seq == 2**64 - 1
    assert (letter.field, letter.reason) == (
        "seq", "seq: an integer cursor must fit in 64 bits (at most 18446744073709551615); send a larger one as a string")
    assert letter.to_dict()["payload"]["key"] == "PO-1"


GOOD = json.dumps({"source": "erp", "entity": "purchase_order", "key": "PO-OK", "ts": "2025-03-05T09:30:00Z",
                   "seq": 1, "fields": {"qty": 1}})


def _nested(levels: int, leaf: str = "1") -> str:
    return '{"a":' * levels + leaf + "}" * levels


def _record(key: str, seq: str = "2", **fields: str) -> str:
    """A record's JSON, with raw JSON text as seq and field values."""
    body = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    return (f'{{"source": "erp", "entity": "purchase_order", "key": "{key}", "ts": "2025-03-05T09:30:00Z", '
            f'"seq": {seq}, "fields": {{{body}}}}}')


BIG = str(2**100)
SURROGATE = '"\\ud800"'
LONG = '"' + "x" * 1_100_000 + '"'
HUGE = '"' + "x" * 9_000_000 + '"'


DEEP = "nested more than 32 levels deep (objects and arrays, the record being the first): over the limit"
BEYOND_64_BITS = "seq: an integer cursor must fit in 64 bits (at most 18446744073709551615); send a larger one as a string"
_OVER_1_MIB = f"[{_record('PO-P', x=LONG)}, {GOOD}]"
_OVER_8_MIB = f"[{_record('PO-P', x=HUGE)}, {GOOD}]"

# Each poison kind, most with a valid record after it in the same message:
# (message, the reason of its one dead letter, the keys of the records kept).
POISON = {
    "nested 1,000 levels": ("[" * 1000 + "]" * 1000, "record: expected a JSON object, got list", []),
    "nested 1,100 levels": ("[" * 1100 + "]" * 1100,
                            "nested more than 1024 levels deep, over the limit (32 for a record)", []),
    "nested 2,000 levels with NaN": (_nested(2000, "NaN"),
                                     "nested more than 1024 levels deep, over the limit (32 for a record)", []),
    "a field nested 300 levels": (f"[{_record('PO-P', x=_nested(300))}, {GOOD}]", f"fields: {DEEP}", ["PO-OK"]),
    "seq 2**100": (f"[{_record('PO-P', seq=BIG)}, {GOOD}]", BEYOND_64_BITS, ["PO-OK"]),
    "NaN and integers beyond 64 bits": (f"[{_record('PO-P', seq=BIG, x='NaN', y=BIG)}, {GOOD}]", BEYOND_64_BITS,
                                        ["PO-OK"]),
    "an invalid record nested 300 levels": (f'[{{"key": "PO-P", "payload": {_nested(300)}}}, {GOOD}]',
                                            f"payload: {DEEP}", ["PO-OK"]),
    "nested 900 levels with NaN": (f'[{{"key": "PO-P", "x": {_nested(900, "NaN")}}}, {GOOD}]', f"x: {DEEP}",
                                   ["PO-OK"]),
    "an unpaired surrogate": (f"[{_record('PO-P', x=SURROGATE)}, {GOOD}]",
                              ("fields: holds text that is not valid Unicode (an unpaired UTF-16 surrogate such as "
                              "\\ud800)"), ["PO-OK"]),
    "a record over 1 MiB": (_OVER_1_MIB, (f"record: {len(orjson.dumps(json.loads(_record('PO-P', x=LONG))))} bytes "
                                         "as JSON, over the limit of 1048576 bytes for one record"), ["PO-OK"]),
    "10,001 records": ("[" + ", ".join([GOOD] * 10_001) + "]",
                       "message holds 10001 records, over the limit of 10000 per message", []),
    "a message over 8 MiB": (_OVER_8_MIB, f"message of {len(_OVER_8_MIB)} bytes is over the limit of 8388608 bytes",
                             []),
    "not UTF-8": (GOOD.encode().replace(b"PO-OK", b"PO-\xff"), "not JSON", []),
}


@pytest.mark.parametrize("kind", POISON)
def test_each_poison_kind_is_a_dead_letter_with_its_reason_and_never_an_exception(kind: str) -> None:
    message, reason, kept = POISON[kind]
    records, dead = decode_message(message if isinstance(message, bytes) else message.encode())
    assert [d.reason[: len(reason)] for d in dead] == [reason]
    assert [r.key for r in records] == kept
    # The dead letter is bounded and writes as JSON, as the engine and the connectors send it.
    doc = dead[0].to_dict()
    assert len(orjson.dumps(doc)) < 80_000
    assert json.loads(json.dumps(doc))["reason"].startswith(reason)


def test_numbers_json_does_not_have_are_read_as_orjson_writes_them() -> None:
    message = _record("PO-1", nan="NaN", inf="-Infinity", huge="1e400", big=str(2**100), digits="9" * 5000)
    (record,), dead = decode_message(message.encode())
    assert dead == []
    assert record.fields == {"nan": None, "inf": None, "huge": None, "big": float(2**100), "digits": None}


def test_decoding_never_raises_on_arbitrary_bytes() -> None:
    rnd = random.Random(11)
    pieces = [b"[", b"]", b"{", b"}", b'"a":', b",", b"NaN", b"1e400", b'"\\ud800"', b"\xff", b"null",
              str(2**100).encode(), b'"x"', GOOD.encode(), b"-", b"0", b".", b"e"]
    for _ in range(3000):
        value = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
        records, dead = decode_message(value)
        for letter in dead:
            orjson.dumps(letter.to_dict())
        for record in records:
            orjson.dumps(record.to_dict())


def test_a_dead_letter_writes_whatever_its_payload() -> None:
    deep: object = 1
    for _ in range(3000):
        deep = [deep]
    payload = {"deep": deep, "big": 2**5000, "nan": float("nan"), "bad": "\ud800", 3: {"k"}, "long": "x" * 10**6}
    doc = DeadLetter("why", None, payload, "test", where={"row": "\udcff"}).to_dict()
    text = orjson.dumps(doc)
    assert len(text) < 80_000
    json.loads(text)
