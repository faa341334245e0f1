"""How one worker asks another for its share of a page, for the person who asked it.

The asking worker does not pass on the person's session cookie or token (another worker's
address comes from the consumer group, and a credential sent there could be replayed anywhere):
it sends a ticket, signed with the console secret, that names who asked, allows only the
share pages (`SHARE_PATHS`) and expires within a minute. Every worker of a group has the
same console secret; without one, only a token's own Authorization header is passed on.
"""

from __future__ import annotations

from alerts.config import AlertsConfig
from console.links import seal, unseal
from console.pages import Viewer

HEADER = "X-Orderwatch-Share"
TTL = 60.0
SHARE_PATHS = frozenset({"/console/analysis/held"})


def ticket(viewer: Viewer, secret: str, now: float) -> str:
    return seal({"a": viewer.actor, "m": viewer.machine, "e": int(now + TTL)}, secret, "share")


def viewer_of(value: str, secret: str, now: float, config: AlertsConfig) -> Viewer | None:
    """The viewer a ticket names, if it is signed with `secret`, unexpired, and (a person) still
    in the owners directory; else None."""
    doc = unseal(value, secret, "share")
    if doc is None:
        return None
    try:
        actor, machine, expires = str(doc["a"]), bool(doc["m"]), float(doc["e"])
    except (KeyError, TypeError, ValueError):
        return None
    if expires <= now:
        return None
    if machine:
        return Viewer(actor)
    person = config.directory.person(actor)
    return Viewer(person.id, person) if person is not None and person.id == actor else None
