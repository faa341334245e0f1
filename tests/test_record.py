"""The canonical change record on the wire: what a connector publishes is what the engine reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType

from orderwatch.record import ChangeRecord, decode_message, encode_batch

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


def test_a_cursor_beyond_64_bits_survives_the_trip() -> None:
    record = _po("PO-1", seq=2**70)
    (decoded,), _ = decode_message(encode_batch([record]))
    assert decoded.seq == 2**70
