"""Sessions: a signed cookie naming the person, its expiry and a random nonce; the CSRF token.

The cookie holds no secret of its own and needs no server-side table, so any worker with
the same console secret serves any page. The CSRF token is derived from the session's nonce:
a page's forms carry it, and every state-changing request with a session must send it back
(form field `csrf` or header `X-CSRF-Token`).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from console.links import seal, sign, unseal

COOKIE = "orderwatch_session"
LANG_COOKIE = "orderwatch_lang"


@dataclass(frozen=True)
class Session:
    person: str
    expires: int
    nonce: str

    def csrf(self, secret: str) -> str:
        return sign(secret, "csrf", self.nonce.encode())

    def csrf_ok(self, secret: str, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf(secret), str(sent))


def start(person: str, now: float, ttl: float) -> Session:
    return Session(person, int(now + ttl), secrets.token_urlsafe(18))


def cookie_value(session: Session, secret: str) -> str:
    return seal({"p": session.person, "e": session.expires, "n": session.nonce}, secret, "session")


def read(value: str | None, secret: str, now: float) -> Session | None:
    """The session a cookie holds, if it is signed with `secret` and not expired."""
    doc = unseal(value, secret, "session")
    try:
        session = Session(str(doc["p"]), int(doc["e"]), str(doc["n"])) if doc is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    return session if session is not None and session.expires > now else None
