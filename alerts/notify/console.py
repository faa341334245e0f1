"""Console: the rendered message on stdout (or stderr), for a person watching the worker."""

from __future__ import annotations

import sys
from pathlib import Path

from alerts.message import Notification
from alerts.notify import Receiver, SendContext
from alerts.yamlcheck import Problems, get_choice
from orderwatch.yamlsrc import Map

TYPE = "console"
KEYS = {"stream"}


class ConsoleReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, stream: str = "stdout") -> None:
        super().__init__(name)
        self.stream = stream

    async def send(self, n: Notification, ctx: SendContext) -> None:
        out = sys.stdout if self.stream == "stdout" else sys.stderr
        to = f" → {n.recipient['name']}" if n.recipient else ""
        out.write(f"--- {ctx.renderer.subject(n)}{to} [{n.receiver}]\n{ctx.renderer.body(n)}\n")
        out.flush()


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return ConsoleReceiver(name, get_choice(doc, "stream", ("stdout", "stderr"), problems, "stdout"))
