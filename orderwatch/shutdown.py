"""Bounded shutdown: SIGINT/SIGTERM end an orderwatch process within DEADLINE_SECONDS.

The first signal starts the command's graceful stop (for a worker, Faust's own
shutdown, which commits offsets) and arms a watchdog thread. If the process has
not ended when the deadline passes, the watchdog kills the embedded broker child,
prints one line and ends the process with `os._exit(FORCED_EXIT)`. A second
signal does the same at once. The watchdog is a thread, and the signal handler a
plain Python one (not an event-loop callback), so both work while the event loop
is blocked. Ending hard is safe for data: input whose effects are not on the
broker is not acknowledged, and a restart reads it again.

Commands wrap their whole run in `bounded()`; a worker says how it stops
gracefully with `graceful(...)`. Outside `graceful` (while starting), a signal
raises KeyboardInterrupt in the main thread, which ends the command at once.
Once a signal has come, the deadline holds until the process ends.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

DEADLINE_SECONDS = 10.0
FORCED_EXIT = 3
# Tests only: makes the graceful stop hang, to prove the watchdog ends the process anyway.
HANG_ENV = "ORDERWATCH_TEST_HANG_ON_STOP"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_lock = threading.Lock()
_children: list[subprocess.Popen[bytes]] = []
_graceful: Callable[[int], object] | None = None
_depth = 0
_previous: dict[int, Any] = {}
_signalled: int | None = None


def watch_child(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` (the embedded broker) if the process has to end by force."""
    with _lock:
        _children.append(proc)


def unwatch_child(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        if proc in _children:
            _children.remove(proc)


@contextmanager
def bounded() -> Iterator[None]:
    """Handle SIGINT/SIGTERM for the block: end it within the deadline. Re-entrant."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread; the caller's handle it
        return
    _depth += 1
    if _depth == 1:
        for sig in _SIGNALS:
            _previous[sig] = signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        _depth -= 1
        # Once a stop is asked for, the handlers and the watchdog stay until the process ends:
        # the deadline also covers what follows (joining threads at interpreter exit).
        if _depth == 0 and _signalled is None:
            for sig in _SIGNALS:
                signal.signal(sig, _previous.pop(sig))


@contextmanager
def graceful(stop: Callable[[int], object]) -> Iterator[None]:
    """While the block runs, a first signal calls `stop(signum)` (from the signal handler:
    it must only schedule the stop, e.g. with loop.call_soon_threadsafe) instead of
    raising KeyboardInterrupt."""
    global _graceful
    previous, _graceful = _graceful, stop
    try:
        if _signalled is not None:  # a signal came while the stop could not be scheduled yet
            stop(_signalled)
        yield
    finally:
        _graceful = previous


def hang_if_testing(where: str) -> None:
    """Block the calling thread (the event loop's) for ever when HANG_ENV names `where`."""
    if os.environ.get(HANG_ENV) == where:
        print(f"{HANG_ENV}={where}: hanging the graceful stop on purpose", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _signalled
    name = signal.Signals(signum).name
    if _signalled is not None:
        _force(f"second {name}: stopped at once, without waiting for the graceful stop", 128 + signum)
    _signalled = signum
    threading.Thread(target=_watch, args=(name,), name="orderwatch-shutdown-watchdog", daemon=True).start()
    # The backstop of the backstop: should the interpreter itself be stuck (a C call holding the
    # GIL), the C-level faulthandler thread still ends the process, with the threads' tracebacks.
    faulthandler.dump_traceback_later(DEADLINE_SECONDS + 5, exit=True)
    if _graceful is None:
        raise KeyboardInterrupt  # nothing to stop gracefully yet: end now
    _graceful(signum)


def _watch(name: str) -> None:
    time.sleep(DEADLINE_SECONDS)  # a process that ended in time takes this daemon thread with it
    _force(f"{name}: the graceful stop did not finish within {DEADLINE_SECONDS:g} s", FORCED_EXIT)


def _force(why: str, code: int) -> None:
    # Called from the watchdog thread or the signal handler: no locks another thread may hold
    # (no print, no Popen methods), only system calls.
    killed = []
    for proc in _children.copy():  # no lock: the signal handler may have interrupted its holder
        if proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
            except OSError:
                pass
    broker = f"; embedded broker (pid {', '.join(map(str, killed))}) killed" if killed else ""
    line = (f"orderwatch: {why}: forced exit{broker}. Input not yet committed is read again "
            f"on the next start.\n")
    try:
        os.write(2, line.encode(errors="replace"))
    finally:
        os._exit(code)
