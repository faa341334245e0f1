"""Slack incoming webhook: `text` (the notification fallback) plus Block Kit `blocks`.

Shape: https://api.slack.com/messaging/webhooks — the recipient is mentioned
as `<@U…>` when the owners directory has `chat: {slack: U…}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerts.message import Notification
from alerts.notify import DeliveryError, Receiver, SendContext, http_url
from alerts.notify.chat import blocks, mention_id
from alerts.notify.http import post_json, where
from alerts.yamlcheck import Problems
from orderwatch.yamlsrc import Map

TYPE = "slack"
KEYS = {"url"}


def escape(text: str) -> str:
    """Slack's three control characters: order text like `<!channel>` or `qty < 5` must show as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(n: Notification, ctx: SendContext) -> dict[str, Any]:
    subject = ctx.renderer.subject(n)
    who = mention_id(n, "slack")
    mention = f"<@{who}> " if who else ""
    out: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": subject[:150]}}]
    body = [escape(b) for b in blocks(n, ctx, footer=False)]
    # The console links as Slack writes links: <url|label> (label escaped, the link kept whole).
    footer = ctx.renderer.footer(n, lambda label, url: f"<{url}|{escape(label)}>")
    if footer:
        intro, _, links = footer.partition("\n")
        body.append(escape(intro) + (f"\n{links}" if links else ""))
    # Slack allows 50 blocks and 3000 characters per section text.
    for i, block in enumerate(body[:48]):
        first, _, rest = block.partition("\n")
        text = f"*{first}*" + (f"\n{rest}" if rest else "")
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": (mention if i == 0 else "") + text[:2900]}})
    return {"text": f"{mention}{escape(subject)}", "blocks": out}


class SlackReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name)
        self.url = url

    async def send(self, n: Notification, ctx: SendContext) -> None:
        _, answer = await post_json(ctx, self.url, payload(n, ctx), self.timeout)
        # Incoming webhooks answer the plain text "ok".
        if answer not in ("ok", None) and not (isinstance(answer, dict) and answer.get("ok")):
            raise DeliveryError(f"POST {where(self.url)}: Slack answered {str(answer)[:200]!r}")


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return SlackReceiver(name, http_url(doc, "url", problems, f"receiver {name}"))
