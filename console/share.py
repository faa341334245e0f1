"""How one worker asks another for its share of a page, for the person who asked it.

The asking worker does not pass on the person's session cookie or token (another worker's
address comes from the consumer group, and a credential sent there could be replayed anywhere):
it sends a ticket, signed with the console secret, that names who asked, allows only the
share pages (`SHARE_PATHS`) and expires within a minute. Every worker of a group has the
same console secret; without one, only a token's own Authorization header is passed on.
"""

from __future__ import annotations

import hmac
import json

from alerts.config import AlertsConfig
from console.links import b64decode, b64encode, sign
from console.pages import Viewer

HEADER = "X-Orderwatch-Share"
TTL = 60.0
SHARE_PATHS = frozenset({"/console/analysis/held"})


def ticket(viewer: Viewer, secret: str, now: float) -> str:
    payload = json.dumps({"a": viewer.actor, "m": viewer.machine, "e": int(now + TTL)},
                         separators=(",", ":"), ensure_ascii=False).encode()
    return f"{b64encode(payload)}.{sign(secret, 'share', payload)}"


def viewer_of(value: str, secret: str, now: float, config: AlertsConfig) -> Viewer | None:
    """The viewer a ticket names, if it is signed with `secret`, unexpired, and (a person) still
    in the owners directory; else None."""
    if not secret:
        return None
    encoded, _, signature = value.partition(".")
    try:
        payload = b64decode(encoded)
        if not hmac.compare_digest(sign(secret, "share", payload), signature):
            return None
        doc = json.loads(payload)
        actor, machine, expires = str(doc["a"]), bool(doc["m"]), float(doc["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= now:
        return None
    if machine:
        return Viewer(actor)
    person = config.directory.person(actor)
    return Viewer(person.id, person) if person is not None and person.id == actor else None
