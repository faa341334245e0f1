"""Shared by the chat integrations: the message as short markdown blocks, and who to mention."""

from __future__ import annotations

from alerts.message import Notification
from alerts.notify import SendContext
from alerts.template import LinkStyle, markdown_link, plain_link


def mention_id(n: Notification, kind: str) -> str | None:
    """The recipient's id on a chat platform (owners directory `chat: {kind: id}`), if any."""
    if not n.recipient:
        return None
    return (n.recipient.get("chat") or {}).get(kind) or None


def blocks(n: Notification, ctx: SendContext, style: LinkStyle = plain_link, footer: bool = True) -> list[str]:
    """One text block per alert (firing first), then the footer (its console links in `style`)."""
    out = [ctx.renderer.alert(n, a) for a in n.firing + n.resolved]
    text = ctx.renderer.footer(n, style) if footer else ""
    return out + ([text] if text else [])


def markdown(n: Notification, ctx: SendContext, bold: str = "**", newline: str = "\n") -> str:
    """Markdown text: the subject in bold, then each block; first lines of blocks in bold too;
    the console links as `[label](url)`."""
    parts = [f"{bold}{ctx.renderer.subject(n)}{bold}"]
    for block in blocks(n, ctx, markdown_link):
        first, _, rest = block.partition("\n")
        parts.append(f"{bold}{first}{bold}" + (newline + rest.replace("\n", newline) if rest else ""))
    return (newline + newline).join(parts)


def truncate_utf8(text: str, limit: int) -> str:
    """Cut to at most `limit` UTF-8 bytes (platforms count bytes), marking the cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 4].decode(errors="ignore") + " …"
