"""Fault injection: SIGKILL workers mid-stream, restart them, count what was lost or repeated.

    .venv/bin/python bench/faults.py [--trials 30] [--workers 1,2] [--orders 800] [--seed N]

Each trial starts an embedded broker, a local HTTP receiver (the webhook every alert is
sent to, one message per alert) and N `orderwatch worker` processes sharing one SQLite
alert store. It publishes `--orders` overdue purchase orders in small messages over ~4 s,
SIGKILLs a random worker `--kills` times at random moments while they stream in (a kill
may hit a worker still recovering from the last one), restarts it each time, and waits
until nothing more happens. Then per trial:

  stored      overdue POs with a firing alert in the store (expected: all)
  notified    of those, how many reached the receiver at least once
  lost        POs never stored, plus stored alerts never notified (waiting up to 150 s for
              all to be stored and notified, then up to 300 s more)
  late        of the others, how many were not stored and notified within the 150 s
  repeated    messages the receiver got more than once (the same notification id),
              plus alerts told in more than one message (a trial waits until the outbox
              has nothing pending, so a message repeated after its claim lapsed counts)
  crashes     SIGKILLs in the trial

This is a measurement, not a test: it prints and exits 0 unless --strict is given, in
which case it exits 1 when anything was lost or more messages were repeated than crashes
(tests/test_nothing_lost.py runs a short version that way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

if __package__ in (None, ""):
    import _benchpath  # noqa: F401  (must come first: see bench/_benchpath.py)

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from alerts.store import AlertStore
from connectors.publisher import Publisher
from orderwatch.broker import EmbeddedBroker, _die_with_parent, free_port
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import ensure_topics, partition_for

RULE = "po-delivery-overdue"
TOKEN = "faults-read-token-0123456789"
ALERTS_YAML = """
api:
  tokens: [{{name: faults, token: {token}, scopes: [read]}}]
receivers:
  - {{name: hook, type: webhook, url: "{url}/hook"}}
route:
  receivers: [hook]
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 30d
delivery: {{interval: 0.2s, concurrency: {concurrency}}}
"""


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every notification it accepts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)


class Worker:
    """An `orderwatch worker` process; restartable on the same datadir and port."""

    def __init__(self, broker: str, app_id: str, datadir: Path, store: str, env: dict[str, str]) -> None:
        self.args = [sys.executable, "-m", "orderwatch", "worker", "--broker", broker, "--app-id", app_id,
                     "--datadir", str(datadir), "--web-port", str(free_port()), "--store", store,
                     "--tick", "1"]
        self.env, self.log = env, datadir.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 - prctl only

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def status(self) -> dict[str, Any] | None:
        port = self.args[self.args.index("--web-port") + 1]
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except OSError:
            return None

    def ready(self) -> bool:
        status = self.status()
        return status is not None and status.get("partitions") is not None


@dataclass
class Trial:
    workers: int
    orders: int
    crashes: int = 0
    stored: int = 0
    notified: int = 0
    lost: int = 0
    late: int = 0  # not stored and notified within the settle time, but before the patience ran out
    repeated: int = 0
    seconds: float = 0.0
    lost_keys: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (f"workers={self.workers} orders={self.orders} crashes={self.crashes} stored={self.stored} "
                f"notified={self.notified} lost={self.lost} repeated={self.repeated} "
                + (f"late={self.late} " if self.late else "")
                + f"({self.seconds:.0f} s)" + (f" lost: {', '.join(self.lost_keys[:10])}" if self.lost_keys else ""))

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.repeated <= self.crashes


def _orders(n: int, run: str) -> list[ChangeRecord]:
    late = (date.today() - timedelta(days=5)).isoformat()
    now = datetime.now(UTC).isoformat()
    return [ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": f"PO-{run}-{i:05d}", "op": "upsert", "ts": now,
        "seq": 1, "fields": {"status": "open", "expected_date": late, "supplier": "Acme", "buyer": "li.wei"},
    }) for i in range(n)]


async def _publish(bootstrap: str, settings: Settings, records: list[ChangeRecord], chunk: int,
                   pause: float) -> None:
    publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    try:
        for i in range(0, len(records), chunk):
            await publisher.publish(records[i:i + chunk])
            await asyncio.sleep(pause)
    finally:
        await publisher.stop()


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def run_trial(workers: int, orders: int, rng: random.Random, workdir: Path, settle: float = 150.0,
              concurrency: int = 1, kills: int = 2, patience: float = 300.0) -> Trial:
    """One trial: `kills` SIGKILLs of a random worker, each restarted at once (a second kill may
    land while a restarted worker recovers). Returns the counts; every process it starts is
    stopped before it returns."""
    pause = 4.0 / max(1, orders // 10)  # records stream in over ~4 s
    started = time.monotonic()
    trial = Trial(workers, orders)
    keep = False
    run = f"{rng.randrange(16**6):06x}"
    app_id = f"faults-{run}"
    datadir = workdir / run
    datadir.mkdir(parents=True)
    store_url = f"sqlite:///{datadir / 'alerts.sqlite'}"
    with EmbeddedBroker() as broker, Receiver() as receiver:
        alerts = datadir / "alerts.yaml"
        alerts.write_text(ALERTS_YAML.format(url=receiver.url, concurrency=concurrency, token=TOKEN), encoding="utf-8")
        env = {**os.environ, "ORDERWATCH_ALERTS": str(alerts), "ORDERWATCH_CONSOLE": "false",
               "ORDERWATCH_LOG_LEVEL": os.environ.get("ORDERWATCH_LOG_LEVEL", "warn")}
        settings = Settings(app_id=app_id, topic_prefix=app_id)
        asyncio.run(ensure_topics(broker.bootstrap, settings))
        procs = [Worker(broker.url, app_id, datadir / f"w{i}", store_url, env) for i in range(workers)]
        try:
            for w in procs:
                w.start()
            if not _wait(lambda: all(w.ready() for w in procs), 60):
                raise RuntimeError(f"workers not ready in 60 s; see {datadir}")
            records = _orders(orders, run)
            # The kills land while records stream in and are handled, and during recoveries.
            publishing = threading.Thread(target=asyncio.run, args=(
                _publish(broker.bootstrap, settings, records, chunk=10, pause=pause),))
            publishing.start()
            for _ in range(kills):
                victim = rng.choice(procs)
                time.sleep(rng.uniform(0.2, 3.0))
                victim.kill()
                trial.crashes += 1
                time.sleep(rng.uniform(0.0, 1.0))
                victim.start()
            publishing.join()
            store = AlertStore(store_url)
            try:
                expected = {r.key for r in records}

                def settled() -> bool:
                    firing = {a.key for a in store.list(state="firing", rule=RULE)}
                    told = {a["labels"]["key"] for body in receiver.snapshot() for a in body["alerts"]}
                    with store.engine.connect() as conn:
                        # A message claimed by a killed worker goes out again once its claim
                        # lapses (a minute or more): wait for it, so that a repeat is counted.
                        waiting = conn.execute(text("SELECT count(*) FROM ow_outbox WHERE status = 'pending'"))
                        pending = waiting.scalar_one()
                    return expected <= firing and expected <= told and pending == 0

                if not _wait(settled, settle):
                    # Not there yet: say where things stand, then tell late from lost.
                    trial.late = len(expected - _arrived(store, receiver))
                    print(f"  after {settle:.0f} s, {trial.late} not stored and notified yet; "
                          f"{_where(broker.bootstrap, app_id, settings, procs)}", flush=True)
                    _wait(settled, patience)
                    keep = True
                time.sleep(3)  # anything still in flight arrives now and counts as repeated
                firing = {a.key for a in store.list(state="firing", rule=RULE)}
                bodies = receiver.snapshot()
                if not (expected <= firing):
                    print(f"  {_where(broker.bootstrap, app_id, settings, procs)}", flush=True)
            finally:
                store.close()
        finally:
            for w in procs:
                w.stop()
        if keep or not (expected <= firing):
            _keep(datadir, expected - firing)
    told = Counter(a["labels"]["key"] for body in bodies for a in body["alerts"] if a["status"] == "firing")
    ids = Counter(body["orderwatch"]["notificationId"] for body in bodies)
    trial.stored = len(firing & expected)
    trial.notified = len(firing & set(told))
    missing = sorted((expected - firing) | (firing - set(told)))
    trial.lost, trial.lost_keys = len(missing), missing
    trial.late = max(0, trial.late - trial.lost)  # those missing at the settle time that came later
    trial.repeated = sum(n - 1 for n in ids.values()) + sum(n - 1 for n in told.values())
    trial.seconds = time.monotonic() - started
    return trial


def _arrived(store: AlertStore, receiver: Receiver) -> set[str]:
    """Order keys whose alert is stored firing and reached the receiver."""
    firing = {a.key for a in store.list(state="firing", rule=RULE)}
    return firing & {a["labels"]["key"] for body in receiver.snapshot() for a in body["alerts"]}


def _where(bootstrap: str, app_id: str, settings: Settings, procs: list[Worker]) -> str:
    """Who owns which partition, and the group's committed offsets against the topic's end."""
    owners = {}
    for i, w in enumerate(procs):
        status = w.status()
        owners[f"w{i}"] = status.get("partitions") if status else None

    async def offsets() -> tuple[dict[int, int | None], dict[int, int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(settings.changes_topic, p) for p in range(settings.partitions)]
            committed = {tp.partition: await consumer.committed(tp) for tp in tps}
            ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
            return committed, ends
        finally:
            await consumer.stop()

    try:
        committed, ends = asyncio.run(offsets())
    except Exception as exc:  # noqa: BLE001 - a diagnostic line, whatever the broker says
        return f"owners {owners}; offsets not read: {exc!r}"
    return f"owners {owners}; changes committed {committed}; end {ends}"


def _keep(datadir: Path, missing: set[str]) -> None:
    """Copy a trial that lost alerts (logs, store) out of the temporary folder, and say where."""
    kept = Path(tempfile.gettempdir()) / "orderwatch-faults-kept" / datadir.name
    shutil.copytree(datadir, kept, dirs_exist_ok=True)
    parts = Counter(partition_for(f"purchase_order:{key}", Settings().partitions) for key in missing)
    print(f"  (trial kept for inspection: {kept}; missing per partition: {dict(sorted(parts.items()))})",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30, help="trials in all, shared among --workers")
    parser.add_argument("--workers", default="1,2", help="worker counts to alternate, e.g. 1,2")
    parser.add_argument("--orders", type=int, default=800)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=1, help="the outbox's delivery concurrency")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial")
    parser.add_argument("--strict", action="store_true", help="exit 1 if anything was lost or repeated too often")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    counts = [int(n) for n in args.workers.split(",")]
    print(f"fault injection: {args.trials} trials, workers {counts}, {args.orders} overdue POs each, "
          f"delivery concurrency {args.concurrency}, seed {seed}", flush=True)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="orderwatch-faults-") as tmp:
        for i in range(args.trials):
            trial = run_trial(counts[i % len(counts)], args.orders, rng, Path(tmp),
                              concurrency=args.concurrency, kills=args.kills)
            trials.append(trial)
            print(f"trial {i + 1:>2}: {trial.row()}", flush=True)
    lost = sum(t.lost for t in trials)
    repeated = sum(t.repeated for t in trials)
    crashes = sum(t.crashes for t in trials)
    print(f"total: {len(trials)} trials, {crashes} crashes, {lost} lost, {repeated} repeated "
          f"(at most one repeated message per crash: {'yes' if all(t.repeated <= t.crashes for t in trials) else 'NO'})")
    return 1 if args.strict and not all(t.ok for t in trials) else 0


if __name__ == "__main__":
    raise SystemExit(main())
