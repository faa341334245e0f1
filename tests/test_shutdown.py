"""Bounded shutdown: SIGINT and SIGTERM end every orderwatch process, and its embedded broker,
within shutdown.DEADLINE_SECONDS, however Faust behaves; a worker waits for an unreachable broker
with one clear line per try.

Every command runs as a real process of its own process group (the `spawn` fixture kills the
group at teardown, even when a test fails). The bound is the only timing checked: a process still
running DEADLINE_SECONDS (plus start-up slack for the signal handler) after its signal fails.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orderwatch.broker import EmbeddedBroker, free_port
from orderwatch.shutdown import DEADLINE_SECONDS, FORCED_EXIT, HANG_ENV
from tests.conftest import get_json, paused_broker, tansu_pids, wait_for
from tests.test_pipeline import po, publish

pytestmark = pytest.mark.integration

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
SLACK = 5.0  # for the process to notice its signal and exit, on a loaded machine


def log_of(proc: subprocess.Popen[bytes]) -> str:
    path: Path = proc.log_path  # type: ignore[attr-defined]
    return path.read_text(errors="replace")


def wait_log(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 60) -> re.Match[str]:
    def found() -> re.Match[str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {pattern!r}:\n{log_of(proc)[-3000:]}")
        return re.search(pattern, log_of(proc))

    return wait_for(found, timeout, pattern)


def status(port: int) -> dict[str, Any] | None:
    try:
        return get_json(f"http://127.0.0.1:{port}/api/status")
    except OSError:
        return None


def ends_in_time(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    """Send `sig`; the process must be gone within the deadline. Returns its exit code."""
    proc.send_signal(sig)
    try:
        return proc.wait(DEADLINE_SECONDS + SLACK)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {DEADLINE_SECONDS + SLACK:g} s after {sig.name}:\n"
                             f"{log_of(proc)[-3000:]}") from None


def embedded_worker(spawn: Any, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Any, int, str]:
    port = free_port()
    proc = spawn("worker", "--datadir", str(tmp_path / "data"), "--web-port", str(port),
                 "--app-id", "sd", env=env)
    bootstrap = wait_log(proc, r"embedded broker on (127\.0\.0\.1:\d+)").group(1)
    wait_for(lambda: (status(port) or {}).get("partitions"), 60, "the worker to be assigned its partitions")
    return proc, port, bootstrap


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_ends_a_busy_worker_and_its_embedded_broker(spawn: Any, tmp_path: Path,
                                                              sig: signal.Signals) -> None:
    proc, port, bootstrap = embedded_worker(spawn, tmp_path)
    brokers = tansu_pids(parent=proc.pid)
    assert brokers, "the worker runs its own broker"
    publish(bootstrap, "sd", [po(f"PO-{i}", overdue=i % 2 == 0) for i in range(5000)])
    wait_for(lambda: (status(port) or {}).get("records", 0) > 0, 60, "the worker to be busy")
    assert ends_in_time(proc, sig) == 0, log_of(proc)
    assert not brokers & tansu_pids(), "the embedded broker ended with the worker"


def test_a_worker_signalled_mid_rebalance_ends_in_time(broker: EmbeddedBroker, spawn: Any, app_id: str,
                                                       tmp_path: Path) -> None:
    def worker() -> tuple[Any, int]:
        port = free_port()
        return spawn("worker", "--broker", broker.url, "--app-id", app_id, "--web-port", str(port),
                     "--datadir", str(tmp_path / str(port))), port

    first, first_port = worker()
    wait_for(lambda: (status(first_port) or {}).get("partitions"), 60, "the first worker's partitions")
    second, second_port = worker()
    # The second worker's JoinGroup starts a rebalance, which the broker holds for half the
    # session timeout; its web server answers before it has any partition.
    wait_for(lambda: status(second_port), 60, "the second worker's web server")
    assert (status(second_port) or {}).get("partitions") in (None, []), "signalled during the rebalance"
    code = ends_in_time(first, signal.SIGTERM)
    # Faust's own stop normally finishes (0); should it hang in the rebalance, the watchdog ends it.
    assert code in (0, FORCED_EXIT), log_of(first)
    assert second.poll() is None, "the other worker keeps running"


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_ends_the_demo_and_its_broker(spawn: Any, tmp_path: Path, sig: signal.Signals) -> None:
    proc = spawn("demo", "--datadir", str(tmp_path / "demo"))
    wait_log(proc, r"\[FIRING")  # busy: connectors, engine and sink at work
    brokers = tansu_pids(parent=proc.pid)
    assert brokers, "the demo runs its own broker"
    assert ends_in_time(proc, sig) == 0, log_of(proc)
    assert not brokers & tansu_pids(), "the broker stopped with the demo"


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_ends_the_broker_command(spawn: Any, sig: signal.Signals) -> None:
    proc = spawn("broker", "--port", str(free_port()))
    wait_log(proc, "embedded broker listening")
    brokers = tansu_pids(parent=proc.pid)
    assert brokers
    assert ends_in_time(proc, sig) == 0, log_of(proc)
    assert not brokers & tansu_pids()


def connectors_file(tmp_path: Path) -> Path:
    (tmp_path / "branch.csv").write_text("po,supplier\nPO-1,Acme\nPO-2,Nordic\n", encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text(f"""connectors:
  - id: sheet
    type: spreadsheet
    path: {tmp_path / 'branch.csv'}
    entity: purchase_order
    key: po
    fields: {{supplier: supplier}}
""", encoding="utf-8")
    return config


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_ends_connectors_run(broker: EmbeddedBroker, spawn: Any, app_id: str, tmp_path: Path,
                                      sig: signal.Signals) -> None:
    proc = spawn("connectors", "run", str(connectors_file(tmp_path)), "--broker", broker.url, "--app-id", app_id,
                 "--datadir", str(tmp_path / "data"), "--interval", "0.2")
    wait_log(proc, r"connectors: sheet")
    assert ends_in_time(proc, sig) == 0, log_of(proc)


def test_a_hung_worker_stop_is_ended_by_the_watchdog(spawn: Any, tmp_path: Path) -> None:
    proc, _, _ = embedded_worker(spawn, tmp_path, env={HANG_ENV: "worker"})
    brokers = tansu_pids(parent=proc.pid)
    assert ends_in_time(proc, signal.SIGTERM) == FORCED_EXIT, log_of(proc)
    out = log_of(proc)
    assert "hanging the graceful stop on purpose" in out
    assert (f"orderwatch: SIGTERM: the graceful stop did not finish within {DEADLINE_SECONDS:g} s: forced exit; "
            "embedded broker (pid") in out
    assert "read again on the next start" in out
    assert not brokers & tansu_pids(), "the watchdog killed the embedded broker"


def test_a_hung_connectors_stop_is_ended_by_the_watchdog(broker: EmbeddedBroker, spawn: Any, app_id: str,
                                                         tmp_path: Path) -> None:
    proc = spawn("connectors", "run", str(connectors_file(tmp_path)), "--broker", broker.url, "--app-id", app_id,
                 "--datadir", str(tmp_path / "data"), "--interval", "0.2", env={HANG_ENV: "connectors"})
    wait_log(proc, r"connectors: sheet")
    assert ends_in_time(proc, signal.SIGINT) == FORCED_EXIT, log_of(proc)
    assert "SIGINT: the graceful stop did not finish" in log_of(proc)


def test_a_second_ctrl_c_ends_a_hung_stop_at_once(spawn: Any, tmp_path: Path) -> None:
    proc, _, _ = embedded_worker(spawn, tmp_path, env={HANG_ENV: "worker"})
    brokers = tansu_pids(parent=proc.pid)
    proc.send_signal(signal.SIGINT)
    wait_log(proc, "hanging the graceful stop on purpose")
    assert ends_in_time(proc, signal.SIGINT) == 128 + signal.SIGINT, log_of(proc)
    assert "second SIGINT: stopped at once" in log_of(proc)
    assert not brokers & tansu_pids()


def test_a_worker_waits_for_an_unreachable_broker_with_one_clear_line(spawn: Any, tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    proc = spawn("worker", "--broker", f"kafka://127.0.0.1:{closed}", "--datadir", str(tmp_path / "data"),
                 "--web-port", str(free_port()))
    wait_for(lambda: log_of(proc).count("cannot reach the broker") >= 2 or proc.poll() is not None, 60,
             "two tries")
    assert proc.poll() is None, f"it keeps retrying:\n{log_of(proc)}"
    ends_in_time(proc, signal.SIGTERM)
    lines = log_of(proc).splitlines()
    assert "Traceback" not in log_of(proc)
    line = (f"orderwatch: cannot reach the broker at 127.0.0.1:{closed} (connection refused); "
            "is it running? check --broker / ORDERWATCH_BROKER; retrying in ")
    assert len(lines) >= 2 and all(x.startswith(line) for x in lines), lines  # the words of produce, connectors
    assert lines[0] == line + "1s" and lines[1] == line + "2s", "the wait grows"


def test_a_worker_gives_up_each_try_on_a_paused_broker_and_tries_again(spawn: Any, tmp_path: Path) -> None:
    # A paused broker accepts connections and never answers: each try is bounded, and says so.
    with paused_broker() as paused:
        proc = spawn("worker", "--broker", paused.url, "--datadir", str(tmp_path / "data"),
                     "--web-port", str(free_port()))
        wait_for(lambda: "retrying in 2s" in log_of(proc) or proc.poll() is not None, 90, "two tries")
        assert proc.poll() is None, f"it keeps retrying:\n{log_of(proc)}"
        ends_in_time(proc, signal.SIGTERM)
    lines = log_of(proc).splitlines()
    assert len(lines) >= 2 and all(
        x.startswith(f"orderwatch: cannot reach the broker at {paused.bootstrap} (it accepts connections but "
                     "answers no Kafka request") for x in lines), lines


def test_sigterm_while_starting_ends_at_once(spawn: Any, tmp_path: Path) -> None:
    # Before Faust runs there is nothing to stop gracefully: the signal ends the command.
    proc = spawn("worker", "--datadir", str(tmp_path / "data"), "--web-port", str(free_port()))
    wait_log(proc, r"embedded broker on")
    time.sleep(0.2)
    brokers = tansu_pids(parent=proc.pid)
    assert ends_in_time(proc, signal.SIGTERM) in (0, 130)
    assert not brokers & tansu_pids()
