"""DingTalk (钉钉) custom robot: a markdown message, signed when the robot has a secret (加签).

Signing (DingTalk's custom-robot docs): timestamp = now in milliseconds;
sign = urlencode(base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>")));
both go in the query string. The recipient is @-mentioned by mobile number or
user id from the owners directory (`chat: {dingtalk: ...}`); DingTalk needs
the `@<mobile>` text in the message too. The answer's `errcode` must be 0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from alerts.message import Notification
from alerts.notify import Receiver, SendContext, http_url
from alerts.notify.chat import markdown, mention_id, truncate_utf8
from alerts.notify.http import check_errcode, post_json
from alerts.yamlcheck import Problems, get_str
from orderwatch.yamlsrc import Map

TYPE = "dingtalk"
KEYS = {"url", "secret"}


def sign(secret: str, timestamp_ms: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def payload(n: Notification, ctx: SendContext) -> dict[str, Any]:
    who = mention_id(n, "dingtalk")
    at: dict[str, Any] = {"atMobiles": [], "atUserIds": [], "isAtAll": False}
    text = markdown(n, ctx, newline="\n\n")
    if who:
        at["atMobiles" if who.lstrip("+").isdigit() else "atUserIds"].append(who)
        text = f"@{who}\n\n{text}"
    # DingTalk caps markdown messages around 20,000 bytes.
    return {"msgtype": "markdown", "markdown": {"title": ctx.renderer.subject(n), "text": truncate_utf8(text, 18000)},
            "at": at}


class DingTalkReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str, secret: str | None) -> None:
        super().__init__(name)
        self.url, self.secret = url, secret

    async def send(self, n: Notification, ctx: SendContext) -> None:
        # Wall time, not the alert clock: DingTalk rejects timestamps an hour away from its own.
        url = signed_url(self.url, self.secret, str(int(time.time() * 1000))) if self.secret else self.url
        _, answer = await post_json(ctx, url, payload(n, ctx), self.timeout)
        check_errcode(self.url, answer)


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return DingTalkReceiver(name, http_url(doc, "url", problems, f"receiver {name}"), get_str(doc, "secret", problems))
