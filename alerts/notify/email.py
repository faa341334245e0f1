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
                smtp: smtplib.SMTP = _SMTPSSL(self.host, self.port, timeout=self.timeout,
                                              context=ssl.create_default_context())
            else:
                smtp = _SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
            finally:
                _close(smtp)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None


class _SMTP(smtplib.SMTP):
    """Refuse the whole message when the server refuses one recipient, before DATA.

    smtplib sends to the accepted recipients and reports the others; the retry
    would then mail everybody again. As in Alertmanager, nothing goes out until
    every address is accepted.
    """

    def rcpt(self, recip: str, options: Any = ()) -> tuple[int, bytes]:
        code, resp = super().rcpt(recip, options)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recip: (code, resp)})
        return code, resp


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    pass


def _close(smtp: smtplib.SMTP) -> None:
    # Once DATA is accepted the message is the server's: a failed QUIT must not make it a retry (a copy).
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


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
