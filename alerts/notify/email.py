"""SMTP email to the recipient's address (or the receiver's fixed `to`), in their language.

    - name: mail
      type: email
      from: orderwatch@example.com
      smtp: {host: smtp.example.com, port: 587, tls: starttls, username: ow, password: "${SMTP_PASSWORD}"}
      to: [ops@example.com]      # only for routes without recipients
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from alerts.message import Notification
from alerts.notify import DeliveryError, Receiver, SendContext, required_str
from alerts.yamlcheck import (
    Problems,
    as_map,
    check_keys,
    get_choice,
    get_int,
    get_str,
    get_str_list,
)
from orderwatch.yamlsrc import Map

TYPE = "email"
KEYS = {"from", "smtp", "to"}


class EmailReceiver(Receiver):
    type = TYPE
    needs = "email"

    def __init__(self, name: str, sender: str, host: str, port: int, tls: str, username: str | None,
                 password: str | None, to: list[str]) -> None:
        super().__init__(name)
        self.sender, self.host, self.port, self.tls = sender, host, port, tls
        self.username, self.password, self.to = username, password, to

    def reaches(self, recipient: dict[str, Any] | None) -> bool:
        return bool(recipient["emails"]) if recipient else bool(self.to)

    def build(self, n: Notification, ctx: SendContext) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = ctx.renderer.subject(n)
        msg["From"] = self.sender
        msg["To"] = ", ".join(n.recipient["emails"] if n.recipient else self.to)
        msg["Date"] = formatdate(localtime=False)
        # The same outbox row always gets the same Message-ID: a resend after a crash is recognisable.
        digest = hashlib.sha1(f"{n.id}|{n.group_key}|{n.created_at}".encode()).hexdigest()[:16]
        msg["Message-ID"] = f"<orderwatch.{n.id}.{digest}@{self.sender.split('@')[-1]}>"
        msg["X-Orderwatch-Group"] = n.group_key[:200]
        msg["X-Orderwatch-Alerts"] = " ".join(a.fingerprint for a in n.alerts)[:900]
        msg.set_content(ctx.renderer.body(n) + "\n")
        msg["Content-Language"] = "zh-CN" if n.language == "zh" else "en"  # after set_content, which clears it
        return msg

    async def send(self, n: Notification, ctx: SendContext) -> None:
        msg = self.build(n, ctx)
        # smtplib blocks: run it off the event loop so Kafka heartbeats keep flowing.
        await asyncio.to_thread(self._deliver, msg)

    def _deliver(self, msg: EmailMessage) -> None:
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                       context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        if refused:
            raise DeliveryError(f"SMTP {self.host}:{self.port} refused {', '.join(refused)}")


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver | None:
    what = f"receiver {name}"
    sender = required_str(doc, "from", problems, what)
    smtp = as_map(doc.get("smtp"), doc.at("smtp"), f"{what}: smtp", problems) if "smtp" in doc else None
    if smtp is None:
        problems.add(doc.pos, f"{what} needs 'smtp: {{host: ..., port: ...}}'")
        return None
    check_keys(smtp, {"host", "port", "tls", "username", "password"}, problems, f"{what}: smtp", required=("host",))
    tls = get_choice(smtp, "tls", ("none", "starttls", "ssl"), problems, "none")
    port = get_int(smtp, "port", problems, {"none": 25, "starttls": 587, "ssl": 465}[tls])
    to = get_str_list(doc, "to", problems)
    for address in [sender, *to]:
        if address and "@" not in address:
            problems.add(doc.pos, f"{what}: {address!r} is not an email address")
    return EmailReceiver(name, sender, get_str(smtp, "host", problems) or "", port, tls,
                         get_str(smtp, "username", problems), get_str(smtp, "password", problems), to)
