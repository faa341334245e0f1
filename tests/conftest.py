"""Shared fixtures: a real embedded broker, and orderwatch workers run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orderwatch.broker import EmbeddedBroker, free_port

ORDERWATCH = [sys.executable, "-m", "orderwatch"]
# Every page but /metrics and /healthz needs an API token: workers started here get an alerts
# file with this one (read only) unless the test brings its own file (then it passes its token).
API_TOKEN = "tests-read-token-0123456789"


def tansu_pids(parent: int | None = None) -> set[int]:
    """Running Tansu broker processes (only the children of `parent`, if given)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (cmd and cmd[0].endswith(b"/tansu") and b"broker" in cmd
                and (parent is None or parent_of(int(entry.name)) == parent)):
            pids.add(int(entry.name))
    return pids


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


_PIDS_BEFORE = tansu_pids()


def _leftovers() -> set[int]:
    # Orphans (re-parented to init) and brokers still held by this pytest process.
    return {p for p in tansu_pids() - _PIDS_BEFORE if parent_of(p) in (1, os.getpid())}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # No orphan brokers after the suite (session fixtures are torn down by now).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _leftovers():
        time.sleep(0.2)
    left = _leftovers()
    if left:
        print(f"\nORPHAN BROKERS left by the test run: {sorted(left)}", file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@contextmanager
def paused_broker() -> Iterator[EmbeddedBroker]:
    """An embedded broker of its own, paused (SIGSTOP): it accepts connections and answers nothing."""
    with EmbeddedBroker() as paused:
        assert paused.process is not None
        os.kill(paused.process.pid, signal.SIGSTOP)
        try:
            yield paused
        finally:
            os.kill(paused.process.pid, signal.SIGCONT)


def get_json(url: str, timeout: float = 2.0, token: str | None = API_TOKEN) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def with_api_token(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` for a worker: without an alerts file of the test's own, one that gives the tests'
    read-only API token (every page but /metrics and /healthz needs a token)."""
    if env.get("ORDERWATCH_ALERTS"):
        return env
    folder.mkdir(parents=True, exist_ok=True)
    alerts = folder / "worker-api-token.yaml"
    alerts.write_text(f"api:\n  tokens: [{{name: tests, token: {API_TOKEN}, scopes: [read]}}]\n")
    return {**env, "ORDERWATCH_ALERTS": str(alerts)}


class WorkerProc:
    """An `orderwatch worker` subprocess with its own web port."""

    def __init__(self, broker_url: str, app_id: str, datadir: Path, store: str, tick: float = 1.0,
                 extra: list[str] = (), token: str = API_TOKEN) -> None:
        self.port = free_port()
        self.token = token
        self.log_path = datadir / f"worker-{self.port}.log"
        datadir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) if "--config" in extra else with_api_token(datadir, dict(os.environ))
        self.proc = subprocess.Popen(
            ORDERWATCH + [
                "worker", "--broker", broker_url, "--app-id", app_id, "--datadir", str(datadir / str(self.port)),
                "--web-port", str(self.port), "--store", store, "--tick", str(tick), *extra,
            ],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 - the worker's log, open as long as it runs
            start_new_session=True,  # its own process group, killed whole by stop()
            env=env,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> dict[str, Any] | None:
        try:
            return get_json(self.url + "/api/status", token=self.token)
        except OSError:
            return None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            st = self.status()
            if st and st.get("partitions"):
                return
            time.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL to its whole process group (start it with start_new_session=True);
    an embedded broker child dies with its parent (PR_SET_PDEATHSIG)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever it started, even once it has exited
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start an orderwatch command as a process of its own group, output to a log file; every
    one still running at teardown (even when the test failed) is stopped, its group killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = tmp_path / f"proc-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([*ORDERWATCH, *args], stdout=out, stderr=subprocess.STDOUT,
                                    env=with_api_token(tmp_path, {**os.environ, **(env or {})}),
                                    start_new_session=True)
        proc.log_path = log  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process(proc, timeout=5)


@pytest.fixture
def app_id() -> str:
    return f"ow-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(broker: EmbeddedBroker, app_id: str, tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProc] = []
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"

    def start(n: int = 1) -> list[WorkerProc]:
        new = [WorkerProc(broker.url, app_id, tmp_path, store) for _ in range(n)]
        started.extend(new)
        return new

    start.store = store  # type: ignore[attr-defined]
    yield start
    for w in started:  # stop_process never raises, so each is stopped even if one hangs
        w.stop()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ci() -> bool:
    return os.environ.get("CI") == "true"
