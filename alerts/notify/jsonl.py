"""JSONL file: one JSON object per notification appended to a file (fsynced), for audits and tools."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from alerts.message import Notification
from alerts.notify import Receiver, SendContext, required_str
from alerts.yamlcheck import Problems
from orderwatch.yamlsrc import Map

TYPE = "jsonl"
KEYS = {"path"}


class JsonlReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    async def send(self, n: Notification, ctx: SendContext) -> None:
        doc = {**n.to_dict(), "subject": ctx.renderer.subject(n), "text": ctx.renderer.body(n)}
        line = json.dumps(doc, ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    path = Path(required_str(doc, "path", problems, f"receiver {name}"))
    return JsonlReceiver(name, path if path.is_absolute() else base_dir / path)
