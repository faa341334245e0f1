"""The rule engine's costs (a measurement, not a test).

    .venv/bin/python bench/rules.py [--records 50000] [--runs 3] [--due 1000] [--tracked 10000,1000000]

1. Backtest rate with the shipped rule packs (engine.backtest: apply_record, the stock /
   account fold, Evaluator, deadline heap), next to the raw durable_rules `post` rate for
   the same records and rules: the facts the engine asserts for those records are
   prepared first (not timed), then posted one by one as events to the same compiled
   rules with durable_rules' `post` (no-op actions). Target: backtest >= 50% of raw. The
   rate of its C API alone (assert_event + actions) is printed too, and the rate of posting
   every fact the backtest matches (derived stock/account facts and deadline re-evaluations
   too, about 1.8 per record): what posting alone would cost the backtest, per record.
2. The cost of a deadline tick with the same number of orders due, when 10k and when 1M
   orders are tracked (the live pipeline's Schedule + Evaluator.evaluate). Target: <= 1.5x.
3. Memory per tracked order at 1M: resident memory growth / orders, states as the engine
   keeps them (JSON-decoded records through apply_record, evaluated once) plus their
   deadline entries. Target: <= 2 KB.

Medians over --runs. The exit status is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import backtest
from engine.evaluator import Evaluator
from engine.facts import build_fact
from engine.rules import load_rules
from engine.schedule import Schedule  # the live pipeline's deadline heaps
from engine.simulate import sort_records
from engine.state import EntityState, apply_record
from orderwatch.record import ChangeRecord

TARGET_RATE, TARGET_TICK, TARGET_BYTES = 0.5, 1.5, 2048
START = datetime(2025, 3, 3, tzinfo=UTC)
SUPPLIERS = [("华东五金 Huadong Hardware", "li.wei"), ("Acme Bearings", "anna.schmidt"),
             ("Nordic Steel AB", "anna.schmidt"), ("深圳电子 Shenzhen Electronics", "zhang.min")]
CUSTOMERS = [("上海百货 Shanghai Stores", "amy.chen"), ("Big Retail GmbH", "tom.keller")]


def _day(offset: float) -> str:
    return (START + timedelta(days=offset)).date().isoformat()


def po_fields(rnd: random.Random, day: float) -> dict[str, Any]:
    supplier, buyer = rnd.choice(SUPPLIERS)
    qty = rnd.choice([50, 100, 500, 2000])
    price = rnd.choice([0.4, 3.2, 12.5, 48.0])
    return {
        "supplier": supplier, "buyer": buyer, "status": rnd.choice(["open", "open", "confirmed", "received"]),
        "order_date": _day(day - 20), "expected_date": _day(day + rnd.randrange(-5, 20)), "qty": qty,
        "received_qty": rnd.choice([0, 0, qty // 2, qty]), "unit_price": price, "amount": round(qty * price, 2),
        "currency": "CNY", "sku": f"SKU-{rnd.randrange(200)}", "warehouse": rnd.choice(["SH1", "SZ"]),
        "approval_status": "approved", "approved_at": f"{_day(day - 19)}T08:00:00+00:00",
    }


def make_records(n: int, seed: int = 42) -> list[ChangeRecord]:
    """About n records of order life cycles over 60 days: purchase orders created, confirmed,
    sometimes changed (now and then by someone not allowed), received (some late or partly);
    sales orders promised and shipped; stock counts; invoices issued and paid (some late)."""
    rnd = random.Random(seed)
    raw: list[tuple[float, str, str, str, dict[str, Any]]] = []  # (day, entity, key, actor, fields)
    skus = [(f"SKU-{i}", wh) for i in range(300) for wh in ("SH1", "SZ")]
    i = 0
    while len(raw) < n:
        i += 1
        day = rnd.uniform(0, 50)
        kind = rnd.random()
        sku, wh = rnd.choice(skus)
        if kind < 0.4:
            supplier, buyer = rnd.choice(SUPPLIERS)
            qty, price = rnd.choice([50, 100, 500, 2000]), rnd.choice([0.4, 3.2, 12.5, 48.0])
            po: dict[str, Any] = {"supplier": supplier, "buyer": buyer, "status": "open", "order_date": _day(day),
                  "expected_date": _day(day + rnd.randrange(7, 25)), "qty": qty, "unit_price": price,
                  "amount": round(qty * price, 2), "currency": "CNY", "sku": sku, "warehouse": wh,
                  "approval_status": "approved", "approved_at": f"{_day(day)}T08:00:00+00:00",
                  "sent_date": f"{_day(day)}T09:00:00+00:00"}
            key = f"PO-{i}"
            raw.append((day, "purchase_order", key, buyer, dict(po)))
            if rnd.random() < 0.7:
                po.update(status="confirmed", confirmed_date=_day(day + 1))
                raw.append((day + 1, "purchase_order", key, buyer, dict(po)))
            if rnd.random() < 0.1:
                po.update(qty=qty + 50, amount=round((qty + 50) * price, 2))
                who = "zhou.kai" if rnd.random() < 0.3 else buyer
                raw.append((day + 2, "purchase_order", key, who, dict(po)))
            late = rnd.choice([0, 0, 0, 0, 2, 5])
            arrive = rnd.uniform(-3, 0) + 10 + late
            part = rnd.random() < 0.05
            po.update(status="partially_received" if part else "received",
                      received_qty=po["qty"] // 2 if part else po["qty"], received_date=_day(day + arrive))
            raw.append((day + arrive, "purchase_order", key, buyer, dict(po)))
        elif kind < 0.65:
            customer, rep = rnd.choice(CUSTOMERS)
            so = {"customer": customer, "sales_rep": rep, "status": "open", "qty": rnd.choice([10, 100, 300]),
                  "promised_date": _day(day + rnd.randrange(5, 20)), "amount": 1000.0, "currency": "CNY",
                  "sku": sku, "warehouse": wh, "approval_status": "approved"}
            key = f"SO-{i}"
            raw.append((day, "sales_order", key, rep, dict(so)))
            ship = day + rnd.uniform(4, 21)
            so.update(status="shipped", shipped_date=_day(ship), shipped_qty=so["qty"])
            raw.append((ship, "sales_order", key, rep, dict(so)))
        elif kind < 0.75:
            raw.append((day, "inventory", f"{sku}@{wh}", "wms", {"sku": sku, "warehouse": wh,
                        "on_hand": rnd.randrange(0, 3000), "safety_stock": 500, "owner": "wang.fang"}))
        else:
            customer, _ = rnd.choice(CUSTOMERS + [(f"Customer {c}", "x") for c in range(200)])
            inv = {"direction": "receivable", "customer": customer, "counterparty": customer,
                   "amount": rnd.choice([900, 5000, 40000]), "currency": "CNY", "due_date": _day(day + 30),
                   "status": "open", "clerk": "zhao.min"}
            key = f"AR-{i}"
            raw.append((day, "invoice", key, "finance", dict(inv)))
            paid = day + 30 + rnd.choice([-5, -1, 0, 0, 2, 6])
            inv.update(status="paid", paid_amount=inv["amount"], paid_date=_day(paid))
            raw.append((paid, "invoice", key, "finance", dict(inv)))
    raw.sort(key=lambda r: r[0])
    return [ChangeRecord.from_dict({"source": "bench", "entity": e, "key": k, "seq": seq, "actor": a, "fields": f,
                                    "ts": (START + timedelta(days=d)).isoformat()})
            for seq, (d, e, k, a, f) in enumerate(raw[:n])]


def measure_backtest(rules: list[Any], records: list[ChangeRecord]) -> float:
    """Records/s of a backtest."""
    ev = Evaluator(rules, name="bench-backtest")
    began = time.perf_counter()
    result = backtest.run(ev, records)
    elapsed = time.perf_counter() - began
    ev.close()
    return result.records / elapsed


def evaluated_facts(rules: list[Any], records: list[ChangeRecord]) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """Evaluations a backtest of these records does, and the facts it matches (a separate, untimed
    run: recording them costs a Python call per evaluation)."""
    ev = Evaluator(rules, name="bench-count")
    count = [0]
    facts: list[tuple[str, dict[str, Any]]] = []
    prepare = ev.prepare

    def recorded(state: EntityState, now: float) -> Any:
        count[0] += 1
        prepared = prepare(state, now)
        if prepared.fact is not None:
            facts.append((state["entity"], {**prepared.fact, "id": f"v{len(facts)}"}))
        return prepared

    ev.prepare = recorded  # type: ignore[method-assign]
    backtest.run(ev, records)
    ev.close()
    return count[0], facts


def engine_facts(rules: list[Any], records: list[ChangeRecord]) -> list[tuple[str, dict[str, Any]]]:
    """The facts the engine asserts for these records (entity, fact), computed once, untimed."""
    ev = Evaluator(rules, name="bench-facts")
    states: dict[str, EntityState] = {}
    out = []
    for i, record in enumerate(sort_records(records)):
        state = apply_record(states.get(record.entity_key), record, 0)
        if state is None:
            continue
        states[record.entity_key] = state
        program = ev.programs.get(record.entity)
        if program is not None:
            fact = build_fact(program.spec, state["fields"], state["history"], record.ts.timestamp())
            fact["id"] = f"e{i}"  # durable_rules rejects an event it has seen: unique ids
            out.append((record.entity, fact))
    ev.close()
    return out


def _merged(ev: Evaluator) -> dict[str, dict[str, Any]]:
    out = {}
    for entity, program in ev.programs.items():
        merged: dict[str, Any] = {}
        for ruleset in program.rulesets:
            merged.update(ruleset)
        out[entity] = merged
    return out


def measure_raw_post(rules: list[Any], facts: list[tuple[str, dict[str, Any]]], run: int) -> float:
    """durable_rules' `post` (its Python Host, as measured in DESIGN.md), one event per
    record, into the same compiled rules, with actions that do nothing."""
    from durable.engine import Host, MessageNotHandledException

    ev = Evaluator(rules, name="bench-raw")
    host = Host({f"raw{run}_{entity}": {rid: {**json.loads(json.dumps(d)), "run": lambda c: None}
                                        for rid, d in merged.items()}
                 for entity, merged in _merged(ev).items()})
    payloads = [(f"raw{run}_{entity}", {**fact, "id": f"{fact['id']}r{run}"}) for entity, fact in facts]
    began = time.perf_counter()
    for name, message in payloads:
        try:
            host.post(name, message)
        except MessageNotHandledException:
            pass
    elapsed = time.perf_counter() - began
    ev.close()
    return len(payloads) / elapsed


def measure_raw_c(rules: list[Any], facts: list[tuple[str, dict[str, Any]]], run: int) -> float:
    """The same through durable_rules' C API alone (assert_event, then drain its actions):
    the floor under any Python around it."""
    import durable_rules_engine as dre

    ev = Evaluator(rules, name="bench-raw-c")
    handles = {entity: dre.create_ruleset(f"rawc{run}.{entity}", json.dumps(merged, ensure_ascii=False))
               for entity, merged in _merged(ev).items()}
    payloads = [(handles[entity], json.dumps({**fact, "id": f"{fact['id']}c{run}", "sid": "0"}, ensure_ascii=False))
                for entity, fact in facts]
    began = time.perf_counter()
    for handle, payload in payloads:
        code, state = dre.assert_event(handle, payload)
        if code != 0:
            continue  # 1: no rule matched (post raises MessageNotHandledException)
        started = dre.start_action_for_state(handle, state)
        message = started[1] if started else None
        while message:
            json.loads(message)  # what post hands to an action
            message = dre.complete_and_start_action(handle, state)
    elapsed = time.perf_counter() - began
    for handle in handles.values():
        dre.delete_ruleset(handle)
    ev.close()
    return len(payloads) / elapsed


def tracked_states(n: int, due: int, ticks: int) -> list[EntityState]:
    """n open purchase orders as the engine holds them. For tick t (a minute apart from START)
    exactly `due` of them fall due (expected time + 1 day); the others fall due months later."""
    rnd = random.Random(n)
    late = rnd.sample(range(n), due * ticks)
    slot = {order: j // due for j, order in enumerate(late)}
    states = []
    for i in range(n):
        fields = po_fields(rnd, 0)
        fields.update(status="open", received_qty=0)
        if i in slot:
            fields["expected_date"] = (START - timedelta(days=1) + timedelta(minutes=slot[i])).isoformat()
        else:
            fields["expected_date"] = _day(rnd.randrange(30, 300))
        line = json.dumps({"source": "erp", "entity": "purchase_order", "key": f"PO-{i:07d}",
                           "ts": "2025-03-01T00:00:00+00:00", "seq": i, "actor": "li.wei", "fields": fields})
        state = apply_record(None, ChangeRecord.from_dict(json.loads(line)), 0)
        assert state is not None
        states.append(state)
    return states


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def measure_tick(rules: list[Any], n: int, due: int, ticks: int) -> tuple[float, float]:
    """Median seconds of a tick with `due` orders due among `n` tracked, and bytes per tracked order."""
    ev = Evaluator(rules, name=f"bench-tick-{n}")  # before the baseline: rulesets are not per order
    gc.collect()
    before = rss()
    schedule = Schedule(partitions=frozenset({0}))
    table: dict[str, EntityState] = {}
    states = tracked_states(n, due, ticks)
    arrival = START.timestamp() - 3 * 86400
    for i in range(0, n, 5000):  # evaluated once on arrival, as the pipeline does: each gets its deadline
        chunk = states[i : i + 5000]
        ev.evaluate(chunk, arrival)
        for state in chunk:
            ek = sys.intern(f"{state['entity']}:{state['key']}")  # one key string for table and schedule
            table[ek] = state
            schedule.push(0, state["due"], ek)
    del states
    gc.collect()
    per_order = (rss() - before) / n
    times = []
    for t in range(ticks):
        now = START.timestamp() + 60 * t
        began = time.perf_counter()
        # The pipeline's tick: pop what is due, evaluate it, schedule the next deadlines.
        batch = [s for ek in schedule.pop_due(0, now)
                 if (s := table.get(ek)) is not None and s["due"] is not None and s["due"] <= now]
        events = ev.evaluate(batch, now)
        for state in batch:
            schedule.push(0, state["due"], sys.intern(f"{state['entity']}:{state['key']}"))
        times.append(time.perf_counter() - began)
        assert len(batch) == due and len(events) >= due, (len(batch), len(events))
    ev.close()
    del table, schedule
    gc.collect()
    return median(times), per_order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50000, help="records for the rate comparison")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians)")
    parser.add_argument("--due", type=int, default=1000, help="orders due per tick")
    parser.add_argument("--ticks", type=int, default=5, help="ticks measured per size")
    parser.add_argument("--tracked", default="10000,1000000", help="tracked orders, small,large")
    args = parser.parse_args()
    rules = load_rules([REPO / "rules"])
    print(f"rules: {len(rules)} shipped rules in {len({r.entity for r in rules})} entities; python {sys.version.split()[0]}")

    records = make_records(args.records)
    facts = engine_facts(rules, records)
    rates = [measure_backtest(rules, records) for _ in range(args.runs)]
    evals, evaluated = evaluated_facts(rules, records)
    raws = [measure_raw_post(rules, facts, run) for run in range(args.runs)]
    # Every fact the backtest matches (derived entities and deadlines too), posted the same way.
    raw_all = median(measure_raw_post(rules, evaluated, run + args.runs) for run in range(args.runs))
    raw_c = median(measure_raw_c(rules, facts, run) for run in range(args.runs))
    rate, raw = median(rates), median(raws)
    print(f"\n1. {args.records} records, shipped packs (median of {args.runs})")
    print(f"   backtest (engine code, batched)      {rate:>10,.0f} records/s")
    print(f"   raw durable_rules post (same facts)  {raw:>10,.0f} records/s")
    print(f"   raw C API assert_event (same facts)  {raw_c:>10,.0f} records/s")
    print(f"   raw post of every fact the backtest matches ({len(evaluated) / args.records:.1f} per record): "
          f"{raw_all * args.records / len(evaluated):,.0f} records/s ({raw_all * args.records / len(evaluated) / raw:.2f} of raw post)")
    print(f"   (the backtest also merges states, folds stock/accounts, evaluates derived entities and "
          f"deadlines: {evals / args.records:.1f} evaluations per record, and renders alert texts)")
    print(f"   ratio {rate / raw:.2f} (target >= {TARGET_RATE}) {'OK' if rate / raw >= TARGET_RATE else 'MISSED'}")

    small, large = (int(x) for x in args.tracked.split(","))
    tick_small, _ = measure_tick(rules, small, args.due, args.ticks)
    tick_large, per_order = measure_tick(rules, large, args.due, args.ticks)
    ratio = tick_large / tick_small
    print(f"\n2. tick with {args.due} orders due (median of {args.ticks} ticks)")
    print(f"   {small:>9,} tracked   {tick_small * 1000:8.1f} ms")
    print(f"   {large:>9,} tracked   {tick_large * 1000:8.1f} ms")
    print(f"   ratio {ratio:.2f} (target <= {TARGET_TICK}) {'OK' if ratio <= TARGET_TICK else 'MISSED'}")
    print(f"\n3. memory per tracked order at {large:,}: {per_order:,.0f} bytes "
          f"(target <= {TARGET_BYTES}) {'OK' if per_order <= TARGET_BYTES else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
