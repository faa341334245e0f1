"""WeCom (企业微信) group robot: a markdown message; `<@userid>` mentions the recipient.

Shape (WeCom group-robot docs): {"msgtype": "markdown", "markdown": {"content": ...}},
content at most 4096 bytes; the answer's `errcode` must be 0. The user id
comes from the owners directory (`chat: {wecom: ...}`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerts.message import Notification
from alerts.notify import Receiver, SendContext, http_url
from alerts.notify.chat import markdown, mention_id, truncate_utf8
from alerts.notify.http import check_errcode, post_json
from alerts.yamlcheck import Problems
from orderwatch.yamlsrc import Map

TYPE = "wecom"
KEYS = {"url"}


def payload(n: Notification, ctx: SendContext) -> dict[str, Any]:
    text = markdown(n, ctx)
    who = mention_id(n, "wecom")
    if who:
        text = f"<@{who}>\n{text}"
    return {"msgtype": "markdown", "markdown": {"content": truncate_utf8(text, 4096)}}


class WeComReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name)
        self.url = url

    async def send(self, n: Notification, ctx: SendContext) -> None:
        _, answer = await post_json(ctx, self.url, payload(n, ctx), self.timeout)
        check_errcode(self.url, answer)


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return WeComReceiver(name, http_url(doc, "url", problems, f"receiver {name}"))
