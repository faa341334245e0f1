"""The alert layer's clock: epoch seconds, injectable so that tests can move time.

Escalation, repeat intervals, quiet hours, silences and retry backoff all
read this clock, never the wall clock directly. In a worker process the
clock is the wall clock, unless ORDERWATCH_ALERTS_CLOCK_OFFSET_FILE names a
file holding a number of seconds to add (tests write it to jump ahead; it is
not meant for production).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

Clock = Callable[[], float]
OFFSET_FILE_ENV = "ORDERWATCH_ALERTS_CLOCK_OFFSET_FILE"


class OffsetFileClock:
    """Wall time plus the offset written in a file (re-read when the file changes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._offset = 0.0

    def offset(self) -> float:
        try:
            st = self.path.stat()
        except OSError:
            return 0.0
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._offset = float(self.path.read_text().strip() or 0)
                self._stamp = stamp
            except (OSError, ValueError):
                pass  # half-written: keep the last good offset
        return self._offset

    def __call__(self) -> float:
        return time.time() + self.offset()


def from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The wall clock, or the offset-file clock when the environment asks for it."""
    path = (os.environ if env is None else env).get(OFFSET_FILE_ENV)
    return OffsetFileClock(path) if path else time.time


def now_of(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
