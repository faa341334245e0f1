"""Sessions: a signed cookie naming the person, its expiry and a random nonce; the CSRF token.

The cookie holds no secret of its own and needs no server-side table, so any worker with
the same console secret serves any page. The CSRF token is derived from the session's nonce:
a page's forms carry it, and every state-changing request with a session must send it back
(form field `csrf` or header `X-CSRF-Token`).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from console.links import b64decode, b64encode, sign

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
    payload = json.dumps({"p": session.person, "e": session.expires, "n": session.nonce},
                         separators=(",", ":"), ensure_ascii=False).encode()
    return f"{b64encode(payload)}.{sign(secret, 'session', payload)}"


def read(value: str | None, secret: str, now: float) -> Session | None:
    """The session a cookie holds, if it is signed with `secret` and not expired."""
    if not value or not secret:
        return None
    encoded, _, signature = value.partition(".")
    try:
        payload = b64decode(encoded)
        if not hmac.compare_digest(sign(secret, "session", payload), signature):
            return None
        doc = json.loads(payload)
        session = Session(str(doc["p"]), int(doc["e"]), str(doc["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > now else None
