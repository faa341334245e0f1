"""Microsoft Teams: an Adaptive Card message, as Teams Workflows ("post to a channel when a
webhook request is received") and incoming webhooks accept it.

Shape: {"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard 1.4}}]};
the recipient is @-mentioned through `msteams.entities` when the owners
directory has `chat: {teams: <UPN or id>}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerts.message import Notification
from alerts.notify import Receiver, SendContext, http_url
from alerts.notify.chat import blocks, mention_id
from alerts.notify.http import post_json
from alerts.template import markdown_link
from alerts.yamlcheck import Problems
from orderwatch.yamlsrc import Map

TYPE = "teams"
KEYS = {"url"}


def card(n: Notification, ctx: SendContext) -> dict[str, Any]:
    body: list[dict[str, Any]] = [{
        "type": "TextBlock", "text": ctx.renderer.subject(n), "weight": "Bolder", "size": "Medium", "wrap": True,
        "color": "Attention" if n.firing else "Good",
    }]
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
        "version": "1.4", "body": body,
    }
    who = mention_id(n, "teams")
    if who and n.recipient:
        tag = f"<at>{n.recipient['name']}</at>"
        body.append({"type": "TextBlock", "text": tag, "wrap": True})
        content["msteams"] = {"entities": [{"type": "mention", "text": tag,
                                            "mentioned": {"id": who, "name": n.recipient["name"]}}]}
    for block in blocks(n, ctx, markdown_link):
        body.append({"type": "TextBlock", "text": block.replace("\n", "\n\n"), "wrap": True, "separator": True})
    found = ctx.renderer.links(n)
    if found:  # and as the card's buttons (Teams shows up to six)
        content["actions"] = [{"type": "Action.OpenUrl", "title": label[:80], "url": url} for label, url in found[:6]]
    return content


def payload(n: Notification, ctx: SendContext) -> dict[str, Any]:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card(n, ctx),
    }]}


class TeamsReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name)
        self.url = url

    async def send(self, n: Notification, ctx: SendContext) -> None:
        await post_json(ctx, self.url, payload(n, ctx), self.timeout)


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return TeamsReceiver(name, http_url(doc, "url", problems, f"receiver {name}"))
