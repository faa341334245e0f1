"""Create orderwatch's topics up front, with the configured partition count.

Producers that start before the worker would otherwise let the broker
auto-create topics with its own default partition count, which breaks the
co-partitioning of the changes topic and the state table's changelog.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from orderwatch.config import Settings


def bootstrap_of(broker_url: str) -> str:
    """`kafka://h1:9092;h2:9092` or `kafka://h:9092` → aiokafka's bootstrap string."""
    hosts = broker_url.split("://", 1)[-1]
    return ",".join(h.strip() for h in hosts.replace(";", ",").split(",") if h.strip())


async def ensure_topics(bootstrap: str, settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.changes_topic, settings.alerts_topic, settings.deadletter_topic]
        missing = [NewTopic(t, settings.partitions, 1) for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
    finally:
        await admin.close()
