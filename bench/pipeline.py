"""Throughput and latency of the orderwatch pipeline on the embedded broker (a measurement).

    .venv/bin/python bench/pipeline.py [--records 200000] [--runs 3] [--rate 1000]

One embedded Tansu broker (started and stopped here) serves: 1. raw aiokafka consume, 2. a bare
Faust agent (subprocess), 3. a real `orderwatch worker` (subprocess) over N pre-published records,
4. their ratios, 5. change->alert-stored latency at a steady rate. Medians over --runs; the exit
status is 0 whether or not the targets are met. Method details are printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import _benchpath  # noqa: F401  (must come first: see bench/_benchpath.py)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from alerts.store import AlertStore
from connectors.publisher import Publisher
from orderwatch.broker import EmbeddedBroker, _die_with_parent, free_port
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO, TARGET_P99_MS = 2.5, 250.0
SUPPLIERS = [("华东五金 Huadong Hardware", "li.wei"), ("Acme Bearings", "anna.schmidt"),
             ("Nordic Steel AB", "anna.schmidt"), ("深圳电子 Shenzhen Electronics", "zhang.min"),
             ("Lyon Packaging SARL", "zhang.min")]
AGENT_SCRIPT = '''
import json, os, time
import faust

env, seen = os.environ, {"count": 0, "first": 0.0}
app = faust.App(env["BENCH_APP_ID"], broker=env["BENCH_BROKER"], datadir=env["BENCH_DATADIR"],
                store="memory://", web_enabled=False, consumer_auto_offset_reset="earliest",
                broker_session_timeout=10.0, broker_heartbeat_interval=3.0)

@app.agent(app.topic(env["BENCH_TOPIC"], value_serializer="raw", key_serializer="raw"))
async def count(stream):
    async for value in stream:
        json.loads(value)
        seen["first"] = seen["first"] or time.perf_counter()
        seen["count"] += 1
        if seen["count"] == int(env["BENCH_N"]):
            with open(env["BENCH_OUT"] + ".tmp", "w") as fh:
                json.dump({"first": seen["first"], "last": time.perf_counter()}, fh)
            os.replace(env["BENCH_OUT"] + ".tmp", env["BENCH_OUT"])

if __name__ == "__main__":
    app.main()
'''


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def po_record(key: str, i: int, seq: int, overdue: bool, now: datetime) -> ChangeRecord:
    """A purchase order as an ERP connector emits it (~330 bytes of JSON)."""
    supplier, buyer = SUPPLIERS[i % len(SUPPLIERS)]
    status = ("open", "confirmed", "partially_received" if overdue else "received")[i % 3]
    if overdue or status == "received":
        expected = now.date() - timedelta(days=(3 + i % 40) if overdue else i % 30)
    else:
        expected = now.date() + timedelta(days=5 + i % 60)
    qty, price = 1 + i % 200 + seq, round(0.5 + (i % 997) / 10, 2)  # amounts under the approval limit
    fields = {"supplier": supplier, "buyer": buyer, "status": status,
              "expected_date": expected.isoformat(), "qty": qty, "amount": round(qty * price, 2),
              "currency": "CNY" if i % 2 else "EUR"}
    return ChangeRecord(source="bench-erp", entity="purchase_order", key=key, op="upsert", ts=now,
                        seq=seq, fields=fields, actor=buyer)


def workload(n: int) -> tuple[list[ChangeRecord], int]:
    """n records over n/2 POs (two updates each, in order); every 10th PO is overdue.
    Returns the records and the number of alerts they must produce (one per overdue PO)."""
    now = datetime.now(UTC).replace(microsecond=0)
    pos = max(1, n // 2)
    records = [po_record(f"PO-B-{j % pos:07d}", j % pos, j // pos + 1, j % pos % 10 == 0, now)
               for j in range(n)]
    return records, sum(1 for i in range(min(n, pos)) if i % 10 == 0)


def encode(record: ChangeRecord) -> bytes:
    return json.dumps(record.to_dict(), ensure_ascii=False).encode()


class Child:
    """A subprocess that dies with us (PR_SET_PDEATHSIG: so start it from the main thread)."""

    def __init__(self, argv: list[str], logfile: Path, env: dict[str, str]) -> None:
        self.logfile, self.name = logfile, Path(argv[0]).name
        with open(logfile, "wb") as out:  # no other thread runs while children start
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env={**os.environ, **env},
                                         cwd=REPO, preexec_fn=_die_with_parent)  # noqa: PLW1509

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.logfile.read_text(errors="replace")[-3000:]
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def produce_single(bootstrap: str, topic: str, records: list[ChangeRecord]) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    payloads = [(r.entity_key.encode(), encode(r)) for r in records]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in payloads])
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        started, count = time.perf_counter(), 0
        while count < n:
            batches = await consumer.getmany(timeout_ms=1000)
            count += sum(len(msgs) for msgs in batches.values())
            if time.perf_counter() - started > 120:
                raise BenchError(f"raw consumer read {count} of {n} records in 120 s")
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def bare_agent(broker_url: str, topic: str, n: int, tmp: Path, run: int) -> float:
    work = tmp / f"agent-{run}"
    work.mkdir()
    script, out = work / "agent.py", work / "result.json"
    script.write_text(AGENT_SCRIPT)
    env = {"BENCH_N": str(n), "BENCH_OUT": str(out), "BENCH_BROKER": broker_url,
           "BENCH_APP_ID": f"bench-agent-{os.getpid()}-{run}", "BENCH_TOPIC": topic,
           "BENCH_DATADIR": str(work / "data")}
    child = Child([sys.executable, str(script), "worker", "-l", "warn"], work / "agent.log", env)
    try:
        deadline = time.monotonic() + 120 + n / 500
        while not out.exists():
            child.check()
            if time.monotonic() > deadline:
                raise BenchError(f"bare agent did not finish; see {child.logfile}")
            await asyncio.sleep(0.2)
        result: dict[str, float] = json.loads(out.read_text())
        return n / max(result["last"] - result["first"], 1e-6)
    finally:
        child.stop()


def scrape(port: int) -> tuple[float, float] | None:
    """(records accepted, firing alerts stored) from the worker's /metrics; None if not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            lines = resp.read().decode().splitlines()
    except OSError:
        return None

    def total(prefix: str) -> float:
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines if ln.startswith(prefix))

    return (total("orderwatch_records_in_total{"),
            total('orderwatch_alerts_stored_total{state="firing"}'))


async def throughput(worker: Child, port: int, n: int, alerts: int) -> float:
    """Records/s from the first sample showing records processed until all n are in and
    all alerts stored (records already processed at the first sample are not counted)."""
    deadline, first, sample = time.monotonic() + 120 + n / 500, None, None
    while time.monotonic() < deadline:
        worker.check()
        sample, now = scrape(port), time.perf_counter()
        if sample is not None:
            if first is None and sample[0] > 0:
                first = (now, sample[0])
            if first is not None and sample[0] >= n and sample[1] >= alerts:
                return (n - first[1]) / (now - first[0]) if first[1] < n else math.nan
        await asyncio.sleep(0.05)
    raise BenchError(f"pipeline did not finish: last sample {sample}, want {n} / {alerts}")


def poll_store(db: Path, seen: dict[str, float], stop: threading.Event) -> None:
    """When each alert row first appears (new rows only: rowid grows with each insert)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        last = conn.execute("SELECT coalesce(max(rowid), 0) FROM ow_alerts").fetchone()[0]
        while not stop.is_set():
            rows = conn.execute("SELECT rowid, key FROM ow_alerts WHERE rowid > ? ORDER BY rowid",
                                (last,)).fetchall()
            now = time.perf_counter()
            for last, key in rows:
                seen.setdefault(key, now)
            time.sleep(0.005)
    finally:
        conn.close()


async def tail_alerts(bootstrap: str, settings: Settings, seen: dict[str, float],
                      ready: asyncio.Event) -> None:
    """When each alert key first appears on the alerts topic (splits the latency in two)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.alerts_topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while True:
            for msgs in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for event in (e for msg in msgs for e in json.loads(msg.value)):
                    seen.setdefault(event["key"], now)
    finally:
        await consumer.stop()


async def latency(settings: Settings, bootstrap: str, port: int, db: Path, rate: int,
                  seconds: float, run: int) -> tuple[list[float], list[float]]:
    """ms from just before publish to the alert row, and to the alert on the alerts topic, for
    records published after a 1 s warm-up; an alert never seen counts as infinitely late."""
    publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    sent: dict[str, float] = {}
    stored: dict[str, float] = {}
    on_topic: dict[str, float] = {}
    pending: list[asyncio.Future[int]] = []
    stop, ready = threading.Event(), asyncio.Event()
    poller = threading.Thread(target=poll_store, args=(db, stored, stop), daemon=True)
    poller.start()
    tail = asyncio.ensure_future(tail_alerts(bootstrap, settings, on_topic, ready))
    per_tick, warmup = max(1, rate // 100), 1.0
    try:
        await asyncio.wait_for(ready.wait(), 10)
        before, start = scrape(port) or (0.0, 0.0), time.perf_counter()
        for tick in range(int((warmup + seconds) * 100)):
            await asyncio.sleep(max(0.0, start + tick * 0.01 - time.perf_counter()))
            now = datetime.now(UTC)
            batch = [po_record(f"PO-L{run}-{tick:05d}-{j:03d}", tick * per_tick + j, 1, True, now)
                     for j in range(per_tick)]
            sent.update((r.key, time.perf_counter()) for r in batch)
            pending.append(asyncio.ensure_future(publisher.publish(batch)))
        await asyncio.gather(*pending)
        after = scrape(port) or (math.nan, math.nan)
        log(f"run {run}: published {len(sent)} in {time.perf_counter() - start:.1f} s; then the "
            f"worker was {before[0] + len(sent) - after[0]:.0f} records and "
            f"{before[1] + len(sent) - after[1]:.0f} stored alerts behind")
        progress, idle_since = 0, time.perf_counter()  # drain while alerts keep arriving
        while len(stored) < len(sent) and time.perf_counter() - idle_since < 10:
            await asyncio.sleep(0.1)
            if len(stored) > progress:
                progress, idle_since = len(stored), time.perf_counter()
    finally:
        stop.set()
        tail.cancel()
        poller.join()
        await asyncio.gather(tail, return_exceptions=True)
        await publisher.stop()
    measured = [k for k, t in sent.items() if t >= start + warmup]

    def late(seen: dict[str, float]) -> list[float]:
        return [(seen[k] - sent[k]) * 1000 if k in seen else math.inf for k in measured]

    return late(stored), late(on_topic)


async def pipeline_run(broker_url: str, bootstrap: str, records: list[ChangeRecord], alerts: int,
                       tmp: Path, run: int, args: argparse.Namespace) -> dict[str, float]:
    app_id = f"bench-ow-{os.getpid()}-{run}"
    settings = Settings(broker=broker_url, app_id=app_id, topic_prefix=app_id)
    await ensure_topics(bootstrap, settings)
    publisher = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    try:
        for i in range(0, len(records), 5000):  # a connector's poll round at a time
            await publisher.publish(records[i : i + 5000])
    finally:
        await publisher.stop()
    datadir, port = tmp / app_id, free_port()
    datadir.mkdir()
    db = datadir / "alerts.sqlite"
    argv = [str(Path(sys.executable).parent / "orderwatch"), "worker", "--broker", broker_url,
            "--app-id", app_id, "--datadir", str(datadir), "--web-port", str(port),
            "--tick", "1", "--store", f"sqlite:///{db}"]
    # The `orderwatch` script imports the installed package, which may be another checkout (an
    # editable install of the main one): the worker runs this checkout's code, as the bench does.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    worker = Child(argv, tmp / f"{app_id}.log", {"ORDERWATCH_CONSOLE": "false", "PYTHONPATH": path})
    log(f"run {run}: worker pid {worker.proc.pid}, http://127.0.0.1:{port}/metrics")
    try:
        rate = await throughput(worker, port, len(records), alerts)
        store = AlertStore(f"sqlite:///{db}")
        stored = len(store.list(state="firing"))
        store.close()
        log(f"run {run}: pipeline {rate:,.0f} records/s, {stored} alerts stored; latency phase")
        await asyncio.sleep(1.0)
        to_store, to_topic = await latency(settings, bootstrap, port, db, args.rate,
                                           args.latency_seconds, run)
        worker.check()
    finally:
        worker.stop()
    return {"pipe": rate, "stored": stored, "p50": pct(to_store, 0.5), "p99": pct(to_store, 0.99),
            "t50": pct(to_topic, 0.5), "t99": pct(to_topic, 0.99),
            "seen": sum(1 for v in to_store if v < math.inf)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


async def measure(args: argparse.Namespace, records: list[ChangeRecord],
                  alerts: int) -> dict[str, list[float]]:
    n, fig = len(records), dict[str, list[float]]()

    def add(key: str, value: float) -> None:
        fig.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="ow-bench-") as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        log(f"embedded broker {broker.bootstrap}; producing {n} single-record messages")
        add("produce", await produce_single(broker.bootstrap, "bench-raw", records))
        for run in range(1, args.runs + 1):
            add("consume", await consume_all(broker.bootstrap, "bench-raw", n))
            log(f"run {run}: raw consume {fig['consume'][-1]:,.0f} records/s; bare Faust agent")
            add("bare", await bare_agent(broker.url, "bench-raw", n, tmp, run))
            log(f"run {run}: bare agent {fig['bare'][-1]:,.0f} records/s; orderwatch pipeline")
            result = await pipeline_run(broker.url, broker.bootstrap, records, alerts, tmp, run, args)
            for key, value in result.items():
                add(key, value)
            log(f"run {run}: change->stored p50 {result['p50']:.0f} ms, p99 {result['p99']:.0f} ms")
    return fig


def report(args: argparse.Namespace, fig: dict[str, list[float]], alerts: int, size: float) -> None:
    med = {k: median(v) for k, v in fig.items()}
    ratio_bare, ratio_raw = med["pipe"] / med["bare"], med["pipe"] / med["consume"]

    def ok(cond: bool) -> str:
        return "PASS" if cond else "MISS"

    def row(name: str, key: str, target: str = "", spec: str = ",.0f") -> tuple[str, ...]:
        return name, format(med[key], spec), "  ".join(format(v, spec) for v in fig[key]), target

    rows = [
        row("raw aiokafka produce (send per msg), rec/s", "produce"),
        row("1 raw aiokafka consume (getmany), rec/s", "consume"),
        row("2 bare Faust agent (1 rec/msg, json), rec/s", "bare"),
        row("3 orderwatch pipeline, rec/s", "pipe"),
        row(f"  firing alerts stored (expect {alerts})", "stored",
            ok(all(s == alerts for s in fig["stored"])), ".0f"),
        ("4 pipeline / bare Faust agent", f"{ratio_bare:.2f}x", "",
         f">= {TARGET_RATIO}x {ok(ratio_bare >= TARGET_RATIO)}"),
        ("  pipeline / raw consume", f"{ratio_raw:.3f}x", "", ""),
        row(f"5 latency @{args.rate}/s: change->stored p50 ms", "p50"),
        row("  change->stored p99 ms", "p99", f"<= {TARGET_P99_MS:.0f} ms "
            + ok(med["p99"] <= TARGET_P99_MS)),
        row("  of which change->alerts topic p50 ms", "t50"),
        row("  of which change->alerts topic p99 ms", "t99"),
        row(f"  alerts measured (of {int(args.rate * args.latency_seconds)})", "seen", "", ".0f"),
    ]
    print(f"\norderwatch pipeline benchmark: N={args.records} records (~{size:.0f} B JSON, "
          f"{alerts} overdue POs), runs={args.runs}, embedded Tansu, {os.cpu_count()} CPUs")
    print(f"{'measure':<46} {'median':>9}  {'runs':<28} target")
    for name, value, runs, target in rows:
        print(f"{name:<46} {value:>9}  {runs:<28} {target}")
    print("\n1, 2: the same N single-record messages. 3: N records (2 updates per PO) pre-published\n"
          "with connectors' Publisher, then `orderwatch worker` started (console sink off); timed from\n"
          "the first /metrics sample with records_in > 0 until records_in = N and all alerts stored\n"
          "(start-up excluded). 5: new overdue POs to that idle worker, a batch every 10 ms, after a\n"
          "1 s warm-up; publish -> row in SQLite (polled every 5 ms) / -> on the alerts topic;\n"
          "inf = never stored (gave up after 10 s without progress).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=200_000, help="records per throughput run")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are medians")
    parser.add_argument("--rate", type=int, default=1000, help="changes/s in the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=12.0, help="latency phase length")
    args = parser.parse_args()
    log(f"generating {args.records} records")
    records, alerts = workload(args.records)
    size = sum(len(encode(r)) for r in records[:1000]) / min(len(records), 1000)
    try:
        fig = asyncio.run(measure(args, records, alerts))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    report(args, fig, alerts, size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
