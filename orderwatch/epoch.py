"""Notice a broker that lost its topics (the embedded Tansu keeps them in memory only).

The first process to find the `<prefix>-epoch` topic empty writes a random
id into it; the record at offset 0 is the broker's *epoch* from then on (two
writers racing both read back the same first record). Every worker and
connector keeps the epoch it last saw in its datadir. A different epoch
there, or the topic gone while running, means the broker restarted empty:
the process says so (one log line, `orderwatch_broker_resets_total`) and
rebuilds (connectors resend their sources, a worker starts afresh).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client import Counter

from orderwatch.config import Settings
from orderwatch.topics import bootstrap_of, ensure_topics

log = logging.getLogger(__name__)

BROKER_RESETS = Counter(
    "orderwatch_broker_resets_total",
    "Times this process found the broker's topics gone (restarted empty) and rebuilt",
    ["component"],
)

# Seconds between checks of a running process; the tests shorten it.
CHECK_SECONDS = float(os.environ.get("ORDERWATCH_BROKER_CHECK_SECONDS", "10"))


def epoch_topic(topic_prefix: str) -> str:
    return f"{topic_prefix}-epoch"


async def read_epoch(bootstrap: str, topic: str, timeout: float = 10.0) -> str:
    """The broker's epoch: the first record of `topic`, written first if there is none."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                request_timeout_ms=int(timeout * 1000))
    await consumer.start()
    try:
        first = await _first(consumer, topic, timeout)
        if first is None:
            await _create(bootstrap, topic)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
            await producer.start()
            try:
                mine = uuid.uuid4().hex
                await producer.send_and_wait(topic, json.dumps({"epoch": mine, "at": time.time()}).encode(),
                                             key=mine.encode(), partition=0)
            finally:
                await producer.stop()
            first = await _first(consumer, topic, timeout)
        if first is None:
            raise KafkaError(f"could not read back the epoch written to {topic}")
        return first
    finally:
        await consumer.stop()


async def _first(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> str | None:
    await consumer._client.force_metadata_update()
    if not consumer._client.cluster.partitions_for_topic(topic):
        return None
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    if end <= (await consumer.beginning_offsets([tp]))[tp]:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
        for msg in batch.get(tp, []):
            return str(json.loads(msg.value or b"{}").get("epoch") or msg.offset)
    return None


async def _create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # One partition; compaction with a key per writer keeps the first record for ever on Kafka.
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


@dataclass
class EpochFile:
    """The epoch a process last saw, kept in its datadir (and when it last found a reset)."""

    path: Path

    def load(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)


async def check(bootstrap: str, topic: str, file: EpochFile, component: str) -> bool:
    """Whether the broker is not the one `file` last saw (then say so once); records what it sees.

    A first run (no file) is not a reset. Raises KafkaError (or OSError) while the broker is away.
    """
    seen = file.load()
    epoch = await read_epoch(bootstrap, topic)
    if seen.get("epoch") == epoch:
        return False
    reset = "epoch" in seen
    data: dict[str, object] = {**seen, "epoch": epoch}
    if reset:
        data["reset_at"] = time.time()
        BROKER_RESETS.labels(component).inc()
        print(f"orderwatch: BROKER RESET: the broker at {bootstrap} lost its topics (restarted empty); "
              f"{component} rebuilds from the sources", flush=True)
    file.save(data)
    return reset


@dataclass
class BrokerWatch:
    """`check` at start and then at most every `interval` seconds; topics recreated after a reset."""

    settings: Settings
    file: EpochFile
    component: str
    interval: float = CHECK_SECONDS
    _next: float = 0.0

    @property
    def bootstrap(self) -> str:
        return bootstrap_of(self.settings.broker)

    async def reset(self) -> bool:
        """Check now (raises while the broker is away); returns whether the broker restarted empty."""
        self._next = time.monotonic() + self.interval
        found = await check(self.bootstrap, epoch_topic(self.settings.topic_prefix), self.file, self.component)
        if found:
            await ensure_topics(self.bootstrap, self.settings)
        return found

    async def poll(self) -> bool:
        """`reset` if a check is due; False while the broker is away (the next call tries again)."""
        if time.monotonic() < self._next:
            return False
        try:
            return await self.reset()
        except (KafkaError, OSError) as exc:
            log.debug("broker epoch not readable yet: %s", exc)
            self._next = time.monotonic() + min(self.interval, 1.0)
            return False

    def due_now(self) -> None:
        """Check before the next poll (a publish just failed: the broker may have restarted)."""
        self._next = 0.0

    def reset_at(self) -> float | None:
        """When this datadir last found a reset whose rebuild is not finished, if any."""
        at = self.file.load().get("reset_at")
        return float(at) if isinstance(at, (int, float)) else None

    def rebuilt(self) -> None:
        data = self.file.load()
        data.pop("reset_at", None)
        self.file.save(data)
