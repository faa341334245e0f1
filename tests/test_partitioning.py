"""Records are partitioned exactly as Kafka's default partitioner does, so that records keyed
`entity:key` by any producer (a connector, the engine's repartition, Debezium) meet in one place."""

from __future__ import annotations

import pytest

from orderwatch.topics import murmur2, murmur2_py, partition_for

# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
KAFKA_CASES = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


@pytest.mark.parametrize("impl", [murmur2, murmur2_py], ids=["fast", "python"])
def test_murmur2_is_kafkas(impl) -> None:
    assert {k: signed(impl(k)) for k in KAFKA_CASES} == KAFKA_CASES


def test_both_implementations_agree_on_order_keys() -> None:
    keys = [f"purchase_order:PO-2025-{i:05d}".encode() for i in range(2000)] + ["stock:螺栓-M8@上海1".encode(), b""]
    assert [murmur2(k) for k in keys] == [murmur2_py(k) for k in keys]


def test_partition_is_the_positive_hash_modulo_the_partition_count() -> None:
    key = "sales_order:SO-2025-0101"
    assert partition_for(key, 4) == (murmur2(key.encode()) & 0x7FFFFFFF) % 4
    assert {partition_for(f"invoice:AR-{i}", 8) for i in range(200)} == set(range(8))
