"""Feishu / Lark (飞书) custom bot: a rich-text `post` message, signed when the bot has a secret.

Signing (Feishu custom-bot docs): timestamp = now in seconds; sign =
base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=empty)); both go in the
JSON body. The recipient is mentioned with an `at` element (`chat: {feishu:
ou_...}`). The answer's `code` (older bots: `StatusCode`) must be 0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

from alerts.message import Notification
from alerts.notify import Receiver, SendContext, http_url
from alerts.notify.chat import blocks, mention_id
from alerts.notify.http import check_errcode, post_json
from alerts.yamlcheck import Problems, get_str
from orderwatch.yamlsrc import Map

TYPE = "feishu"
KEYS = {"url", "secret"}


def sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def payload(n: Notification, ctx: SendContext, secret: str | None = None, timestamp: str = "") -> dict[str, Any]:
    lines: list[list[dict[str, Any]]] = []
    who = mention_id(n, "feishu")
    if who:
        lines.append([{"tag": "at", "user_id": who}])
    for block in blocks(n, ctx, footer=not ctx.renderer.links(n)):
        for line in block.split("\n"):
            lines.append([{"tag": "text", "text": line}])
        lines.append([{"tag": "text", "text": ""}])
    found = ctx.renderer.links(n)
    if found:  # the console links as Feishu's link elements
        intro = ctx.renderer.footer(n).partition("\n")[0]
        lines.append([{"tag": "text", "text": intro}])
        lines += [[{"tag": "a", "text": label, "href": url}] for label, url in found]
    lang = "zh_cn" if n.language == "zh" else "en_us"
    body: dict[str, Any] = {"msg_type": "post",
                            "content": {"post": {lang: {"title": ctx.renderer.subject(n), "content": lines}}}}
    if secret:
        body = {"timestamp": timestamp, "sign": sign(secret, timestamp), **body}
    return body


class FeishuReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str, secret: str | None) -> None:
        super().__init__(name)
        self.url, self.secret = url, secret

    async def send(self, n: Notification, ctx: SendContext) -> None:
        # Wall time: Feishu refuses timestamps more than an hour from its own clock.
        body = payload(n, ctx, self.secret, str(int(time.time())))
        _, answer = await post_json(ctx, self.url, body, self.timeout)
        check_errcode(self.url, answer, ("code", "StatusCode"))


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return FeishuReceiver(name, http_url(doc, "url", problems, f"receiver {name}"), get_str(doc, "secret", problems))
