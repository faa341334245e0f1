"""A process that only sends the outbox, through the Deliverer's public API, until it is killed.

    python -m tests.outbox_sender ALERTS_FILE STORE_URL

The crash tests SIGKILL it while an endpoint holds messages, as a crash would stop a worker.
"""

from __future__ import annotations

import asyncio
import sys

from alerts.config import load_alerts_config
from alerts.deliver import Deliverer
from alerts.store import AlertStore


async def main(alerts: str, url: str) -> None:
    deliverer = Deliverer(load_alerts_config(alerts), AlertStore(url))
    while True:
        await deliverer.run_once()
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
