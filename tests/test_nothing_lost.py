"""Nothing lost: workers killed mid-stream and an alert store that goes away lose no alert.

The fault-injection trials are the short version of `bench/faults.py` (which prints
the counts of many more trials): SIGKILL workers while overdue POs stream in, restart
them, and every PO must end with its alert stored and told to the webhook, with at
most one message repeated per crash.
"""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from bench.faults import run_trial
from orderwatch.record import ChangeRecord
from tests.alerts_helpers import database
from tests.conftest import WorkerProc, wait_for
from tests.test_pipeline import publish

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_killed_mid_stream_lose_no_alert(workers: int, tmp_path: Path) -> None:
    trial = run_trial(workers, 200, random.Random(workers), tmp_path)
    assert trial.crashes == 2
    assert trial.lost == 0, trial.row()
    assert trial.stored == trial.notified == 200, trial.row()
    assert trial.repeated <= trial.crashes, trial.row()


class Proxy:
    """A TCP relay to a database server that can be cut off and brought back (a network blip)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        for s in [listener, *conns]:
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _overdue(keys: list[str]) -> list[ChangeRecord]:
    late = (date.today() - timedelta(days=3)).isoformat()
    return [ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "op": "upsert",
        "ts": datetime.now(UTC).isoformat(), "seq": 1,
        "fields": {"status": "open", "expected_date": late, "supplier": "Acme", "buyer": "li.wei"},
    }) for key in keys]


def test_alerts_wait_for_an_alert_store_that_is_down(broker: Any, app_id: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's database is cut off while POs go overdue: the worker says it is waiting,
    keeps the alerts, and stores every one once the database is back."""
    monkeypatch.setenv("ORDERWATCH_CONSOLE", "false")
    with database("postgresql", tmp_path) as direct:
        host_port = direct.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        proxy = Proxy((host, int(port)))
        proxy.up()
        via_proxy = direct.replace(host_port, f"127.0.0.1:{proxy.port}")
        worker = WorkerProc(broker.url, app_id, tmp_path, via_proxy)
        try:
            worker.wait_ready()
            proxy.down()
            keys = [f"PO-DOWN-{i}" for i in range(5)]
            publish(broker.bootstrap, app_id, _overdue(keys))
            wait_for(lambda: "the alert store cannot be written" in worker.log(), 60,
                     f"the worker to say the store cannot be written; log:\n{worker.log()}")
            proxy.up()
            store = AlertStore(direct)
            try:
                wait_for(lambda: {a.key for a in store.list(state="firing")} >= set(keys), 90,
                         f"the 5 alerts stored after the database came back; log:\n{worker.log()}")
            finally:
                store.close()
            assert worker.proc.poll() is None, worker.log()
        finally:
            worker.stop()
            proxy.down()


SKIPPING_AGENT = '''
import os
import faust
from orderwatch.consume import consume

env = os.environ
app = faust.App(env["T_APP"], broker=env["T_BROKER"], datadir=env["T_DATA"], store="memory://",
                web_enabled=False, consumer_auto_offset_reset="earliest", topic_partitions=1)
jumped = []


@app.agent(app.topic(env["T_TOPIC"], value_serializer="raw", key_serializer="raw"))
async def take(stream):
    async def handle(events):
        with open(env["T_OUT"], "a") as out:
            out.writelines(f"{e.message.offset}\\n" for e in events)
        if not jumped:  # the consumer moves past input nobody has read yet, as Faust's fetch loop can
            jumped.append(True)
            await app.consumer.seek(events[-1].message.tp, events[-1].message.offset + 10)

    await consume(stream, 5, 0.05, handle, "skipping agent")


if __name__ == "__main__":
    app.main()
'''


def test_input_the_consumer_skips_is_read_again(broker: Any, app_id: str, tmp_path: Path) -> None:
    """A consumer that moves past messages before anyone read them (Faust does, when a rebalance
    interrupts its fetch loop) is sent back to read them: every message is handled."""
    import asyncio
    import os
    import subprocess
    import sys

    from aiokafka import AIOKafkaProducer

    from tests.conftest import stop_process

    topic, out = f"{app_id}-skip", tmp_path / "handled.txt"

    async def send(values: range) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in values:
                await producer.send_and_wait(topic, str(i).encode(), partition=0)
        finally:
            await producer.stop()

    def handled() -> list[int]:
        return [int(line) for line in out.read_text().split()] if out.exists() else []

    asyncio.run(send(range(1)))
    script = tmp_path / "agent.py"
    script.write_text(SKIPPING_AGENT)
    log = tmp_path / "agent.log"
    env = {**os.environ, "T_APP": app_id, "T_BROKER": broker.url, "T_DATA": str(tmp_path / "data"),
           "T_TOPIC": topic, "T_OUT": str(out), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script), "worker", "-l", "warn"], stdout=sink,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for(lambda: handled() == [0], 120, "the first message handled")  # a Faust start under load
        asyncio.run(send(range(1, 30)))  # the consumer now sits at offset 10: 1-9 were skipped
        wait_for(lambda: set(range(30)) <= set(handled()), 60, "every message handled")
    finally:
        stop_process(proc, timeout=10)
    assert "the consumer skipped offsets 1-9 of" in log.read_text(), log.read_text()[-3000:]
    assert sorted(handled()) == list(range(30)), "each message handled once"


def _stalled_worker(spawn: Any, broker: Any, app_id: str, tmp_path: Path, stall: str) -> tuple[Any, Path]:
    """A worker whose Faust stalls as `stall` says (orderwatch/liveness.py), with a short stall_deadline;
    returns the process and its alert store's file."""
    from orderwatch.broker import free_port

    db = tmp_path / "alerts.sqlite"
    proc = spawn("worker", "--broker", broker.url, "--app-id", app_id, "--datadir", str(tmp_path / "data"),
                 "--web-port", str(free_port()), "--store", f"sqlite:///{db}", "--tick", "1",
                 env={"ORDERWATCH_TEST_STALL": stall, "ORDERWATCH_STALL_DEADLINE": "8"})
    return proc, db


def _wait_until_all_stored(db: Path, keys: list[str]) -> None:
    store = AlertStore(f"sqlite:///{db}")
    try:
        wait_for(lambda: {a.key for a in store.list(state="firing")} >= set(keys), 90,
                 "every overdue PO's alert stored after the fresh start")
    finally:
        store.close()


def _overdue_after_stall(spawn: Any, broker: Any, app_id: str, tmp_path: Path, stall: str,
                         said: str) -> tuple[Any, Path, list[str]]:
    """A stalled worker (`_stalled_worker`) that said `said`; then 40 overdue POs published."""
    publish(broker.bootstrap, app_id, [])  # the topics
    proc, db = _stalled_worker(spawn, broker, app_id, tmp_path, stall)
    wait_for(lambda: said in proc.log_path.read_text(errors="replace"), 90, f"the worker to say {said!r}")
    keys = [f"PO-{stall.upper()}-{i:03d}" for i in range(40)]
    publish(broker.bootstrap, app_id, _overdue(keys))
    return proc, db, keys


def test_a_worker_that_faust_never_resumes_starts_afresh(broker: Any, app_id: str, tmp_path: Path,
                                                          spawn: Any) -> None:
    """After a rebalance Faust's resume hangs (as in a fault trial): the worker holds its partitions
    and reads nothing. Past `stall_deadline` it says so, starts afresh and every alert is stored."""
    keys = [f"PO-STALL-{i:03d}" for i in range(40)]
    publish(broker.bootstrap, app_id, _overdue(keys))
    proc, db = _stalled_worker(spawn, broker, app_id, tmp_path, "resume")
    wait_for(lambda: "starts afresh" in proc.log_path.read_text(errors="replace"), 90,
             "the worker noticing that its input was never resumed")
    _wait_until_all_stored(db, keys)
    log = proc.log_path.read_text(errors="replace")
    assert "the resume after this rebalance hangs on purpose" in log
    assert log.count("hangs on purpose") == 1, "the fresh process resumes normally"


@pytest.mark.parametrize("stall, said", [("drop", "past their end on purpose"),
                                         ("idle", "left out of the fetch on purpose")])
def test_input_faust_hands_over_to_nobody_is_fetched_again(broker: Any, app_id: str, tmp_path: Path, spawn: Any,
                                                           stall: str, said: str) -> None:
    """Faust counts the changes topic's partitions as read past their end (as after a rebalance
    that cut a hand-over short), or leaves them out of its fetch (as after a takeover): messages
    wait and none shows a hole. The worker fetches them again from their committed offsets, in
    place, without a fresh start."""
    proc, db, keys = _overdue_after_stall(spawn, broker, app_id, tmp_path, stall, said)
    _wait_until_all_stored(db, keys)
    log = proc.log_path.read_text(errors="replace")
    assert "Faust hands none over" in log, log[-3000:]
    assert "starts afresh" not in log, "fetched again in place, not restarted"


def test_a_worker_that_stops_fetching_a_partition_starts_afresh(broker: Any, app_id: str, tmp_path: Path,
                                                               spawn: Any) -> None:
    """The rebalance ended but the partitions of the changes topic are never fetched again (as in a
    fault trial): POs wait unread. Past `stall_deadline` the worker starts afresh and stores every alert."""
    proc, db, keys = _overdue_after_stall(spawn, broker, app_id, tmp_path, "fetch", "not fetched on purpose")
    wait_for(lambda: "without being read" in proc.log_path.read_text(errors="replace"), 90,
             "the worker noticing messages waiting unread")
    _wait_until_all_stored(db, keys)
    assert proc.log_path.read_text(errors="replace").count("not fetched on purpose") == 1
