"""Console delivery: one line per stored transition, readable by the person on call."""

from __future__ import annotations

import sys
from typing import TextIO

from orderwatch.alert import AlertEvent

_MARK = {"firing": "FIRING  ", "resolved": "RESOLVED"}


def format_event(ev: AlertEvent) -> str:
    owner = ev.owner or "(no owner)"
    text = ev.summary or ev.title or ev.rule
    return f"[{_MARK.get(ev.state, ev.state)}] {ev.severity:<8} {ev.rule}  {ev.entity} {ev.key}  owner={owner}  {text}"


def print_events(events: list[AlertEvent], out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    for ev in events:
        stream.write(format_event(ev) + "\n")
    stream.flush()
