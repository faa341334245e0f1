"""Personal sign-in links: HMAC-SHA256 over (person, target page, expiry) with the console secret.

A notification carries `signed_url(base_url, person, target, expires, secret=...)`; opening it
(GET /console/signin?t=...) starts a session for that person and lands on `target`. The link
names the person by their id in the owners directory; a link for somebody no longer in the
directory, an expired link, or one altered in any byte is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # alerts/ builds its messages with these links: no import cycle at run time
    from alerts.config import AlertsConfig
    from alerts.message import AlertItem, Notification

SIGNIN_PATH = "/console/signin"
HOME = "/console/"


class BadLink(ValueError):
    """A sign-in link that cannot be used; the message says why (shown to the person)."""


@dataclass(frozen=True)
class Link:
    person: str
    target: str
    expires: int  # epoch seconds


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding (fits a query parameter and a cookie as it is)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, purpose: str, payload: bytes) -> str:
    """HMAC-SHA256 of `payload` for one purpose (a link's signature never verifies as a session's)."""
    if not secret:
        raise ValueError("the console has no secret: set console.secret in the alerts file or "
                         "ORDERWATCH_CONSOLE_SECRET")
    return b64encode(hmac.new(secret.encode(), purpose.encode() + b"\n" + payload, hashlib.sha256).digest())


def seal(doc: dict[str, Any], secret: str, purpose: str) -> str:
    """`doc` as JSON in base64, a dot, and its signature for `purpose` (a cookie, a ticket)."""
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{b64encode(payload)}.{sign(secret, purpose, payload)}"


def unseal(value: str | None, secret: str, purpose: str) -> dict[str, Any] | None:
    """The JSON object `seal` made, if it is signed with `secret` for `purpose`; else None."""
    if not value or not secret:
        return None
    encoded, _, signature = value.partition(".")
    try:
        payload = b64decode(encoded)
        if not hmac.compare_digest(sign(secret, purpose, payload), signature):
            return None
        doc = json.loads(payload)
    except ValueError:  # bad base64, bad JSON, a signature with other characters
        return None
    return doc if isinstance(doc, dict) else None


def safe_target(target: str | None) -> str:
    """A page of the console to land on; anything else (another site, a protocol-relative URL) is home."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def token(person: str, target: str, expires: datetime | float, *, secret: str) -> str:
    """The signed value carried in the link's `t` parameter."""
    when = int(expires.timestamp() if isinstance(expires, datetime) else expires)
    payload = json.dumps({"p": person, "t": safe_target(target), "e": when}, separators=(",", ":"),
                         ensure_ascii=False).encode()
    return f"{b64encode(payload)}.{sign(secret, 'link', payload)}"


def signed_url(base_url: str, person: str, target: str, expires: datetime | float, *,
               secret: str) -> str:
    """A personal sign-in link: `base_url` is the console's address as people reach it (the alerts
    file's external_url), `person` an id from the owners directory, `target` the console page to
    open (e.g. /console/alerts/<fingerprint>), `expires` a datetime or epoch seconds."""
    return f"{base_url.rstrip('/')}{SIGNIN_PATH}?t={quote(token(person, target, expires, secret=secret))}"


def verify(value: str, *, secret: str, now: float) -> Link:
    """The link's content if its signature holds and it has not expired; BadLink otherwise."""
    encoded, dot, signature = value.strip().partition(".")
    if not dot or not encoded or not signature:
        raise BadLink("this is not a sign-in link")
    try:
        payload = b64decode(encoded)
    except ValueError:
        raise BadLink("this sign-in link was altered") from None
    if not hmac.compare_digest(sign(secret, "link", payload), signature):
        raise BadLink("this sign-in link was altered or signed with another secret")
    try:
        doc = json.loads(payload)
        link = Link(str(doc["p"]), safe_target(str(doc["t"])), int(doc["e"]))
    except (ValueError, KeyError, TypeError):
        raise BadLink("this sign-in link was altered") from None
    if link.expires <= now:
        raise BadLink("this sign-in link has expired: open the link in a newer notification")
    return link


def link_for(config: AlertsConfig, person: str, target: str, now: float) -> str:
    """A person's sign-in link as notifications carry it: the alerts file's external_url, the
    console secret, valid for console.link_ttl from `now` (epoch seconds)."""
    return signed_url(config.external_url, person, target, now + config.console.link_ttl,
                      secret=config.console.secret)


def alert_target(fingerprint: str) -> str:
    """The console page a notification opens: the alert, with acknowledging ready (`do=ack`);
    nothing changes until the person presses the page's button (a POST)."""
    return f"/console/alerts/{quote(fingerprint)}?do=ack"


def notification_linker(config: AlertsConfig, clock: Callable[[], float]
                        ) -> Callable[[Notification, AlertItem | None], str] | None:
    """What messages link to, per reader: a person gets their own signed link (valid for
    console.link_ttl from when the message is sent); a team mailbox or a group chat gets the page's
    plain address (people sign in with their own links). None when the console has no secret or
    the alerts file no external_url: messages then keep the CLI command."""
    if not config.console.secret or not config.external_url:
        return None

    def link(n: Notification, a: AlertItem | None) -> str:
        target = alert_target(a.fingerprint) if a is not None else HOME
        r = n.recipient or {}
        if r.get("kind") == "person" and config.directory.person(str(r.get("id"))) is not None:
            return link_for(config, str(r["id"]), target, clock())
        return f"{config.external_url.rstrip('/')}{target}"

    return link
