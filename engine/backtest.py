"""`backtest`: replay recorded change records offline, on simulated time, through the real engine.

No broker: records (JSON lines, the canonical change record) are sorted by
`ts` and fed to engine.simulate, which runs `apply_record`, the derived-entity
fold and `Evaluator` exactly as the live pipeline does; deadlines fire at the
instant they fall due. The result is the alert timeline and per-rule counts.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from engine.evaluator import Evaluator
from engine.simulate import Simulation, sort_records
from orderwatch import gcpolicy
from orderwatch.alert import AlertEvent
from orderwatch.record import ChangeRecord, InvalidRecord


@dataclass
class Backtest:
    """What a replay produced."""

    events: list[AlertEvent] = field(default_factory=list)
    firing: list[AlertEvent] = field(default_factory=list)  # still firing at the end
    records: int = 0
    duplicates: int = 0
    invalid: list[str] = field(default_factory=list)  # "file:line: reason"
    seconds: float = 0.0
    # Records outside --from/--to: before --from they build state only, after --to they are not replayed.
    before_start: int = 0
    after_end: int = 0
    first_after: datetime | None = None
    end: datetime | None = None

    def counts(self) -> dict[str, Counter[str]]:
        """rule → Counter(fired=…, resolved=…, firing_at_end=…)."""
        out: dict[str, Counter[str]] = {}
        for e in self.events:
            out.setdefault(e.rule, Counter())["fired" if e.state == "firing" else "resolved"] += 1
        for e in self.firing:
            out.setdefault(e.rule, Counter())["firing_at_end"] += 1
        return out


def read_records(path: str, invalid: list[str]) -> Iterator[ChangeRecord]:
    """Change records from a JSON-lines file ('-' = stdin); bad lines are reported in `invalid`."""
    # Bytes, decoded line by line: a line that is not UTF-8 is reported like any other bad line.
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for number, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM, as Windows tools write
            except UnicodeDecodeError as exc:
                invalid.append(f"{path}:{number}: not UTF-8: {exc.reason} at byte {exc.start + 1}")
                continue
            if not line.strip():
                continue
            try:
                yield ChangeRecord.from_dict(json.loads(line))
            except ValueError as exc:  # InvalidRecord is a ValueError, so is a JSON error
                reason = str(exc) if isinstance(exc, InvalidRecord) else f"not JSON: {exc}"
                invalid.append(f"{path}:{number}: {reason}")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.last = total, enabled and total > 0, 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        width = 30
        filled = int(width * done / self.total)
        sys.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {100 * done // self.total:3d}% {done}/{self.total} records")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(evaluator: Evaluator, records: Iterable[ChangeRecord], start: float | None = None,
        end: float | None = None, progress: bool = False, chunk: int = 2000) -> Backtest:
    """Replay records up to `end` (default: the last record); report transitions at or after `start`."""
    result = Backtest()
    ordered = sort_records(records)
    if start is not None:
        result.before_start = sum(1 for r in ordered if r.ts.timestamp() < start)
    if end is not None:
        later = [r for r in ordered if r.ts.timestamp() > end]
        result.after_end = len(later)
        result.first_after = later[0].ts if later else None
        result.end = datetime.fromtimestamp(end, UTC)
        ordered = ordered[: len(ordered) - len(later)]
    sim = Simulation(evaluator)
    bar = Progress(len(ordered), progress)
    began = time.perf_counter()
    for i in range(0, len(ordered), chunk):
        with gcpolicy.batch():  # the states are a large acyclic heap, as in a worker
            sim.feed(ordered[i : i + chunk])
        bar.update(min(i + chunk, len(ordered)))
    last = ordered[-1].ts.timestamp() if ordered else None
    finish = end if end is not None else last
    if finish is not None:
        sim.advance(finish)
    result.seconds = time.perf_counter() - began
    events = sim.take_events()
    result.events = [e for e in events if start is None or e.at.timestamp() >= start]
    result.firing = sim.firing()
    result.records, result.duplicates = sim.records, sim.duplicates
    return result


def event_json(event: AlertEvent) -> dict[str, object]:
    """The JSON line of one transition."""
    return {
        "rule": event.rule, "entity": event.entity, "key": event.key, "state": event.state,
        "at": event.at.isoformat(), "since": event.since.isoformat(), "severity": event.severity,
        "owner": event.owner, "labels": dict(event.labels), "title": event.title, "summary": event.summary,
    }


def outside(result: Backtest) -> list[str]:
    """Sentences about the records outside --from/--to (none when all were inside)."""
    lines = []
    if result.after_end:
        end = result.end.isoformat() if result.end else "--to"
        first = result.first_after.isoformat() if result.first_after else "?"
        lines.append(f"{result.after_end} record(s) after --to {end} were not replayed (the first at {first})")
    if result.before_start:
        lines.append(f"{result.before_start} record(s) before --from built state only; their transitions are not listed")
    return lines


def summary_json(result: Backtest) -> dict[str, object]:
    """The per-rule counts and the record counts as one JSON object (`--format summary`)."""
    counts = result.counts()
    return {
        "rules": {rule: {"fired": c["fired"], "resolved": c["resolved"], "firing_at_end": c["firing_at_end"]}
                  for rule, c in sorted(counts.items())},
        "records": result.records, "replays_ignored": result.duplicates, "invalid": len(result.invalid),
        "before_from": result.before_start, "after_to": result.after_end,
        "first_after_to": result.first_after.isoformat() if result.first_after else None,
        "transitions": len(result.events), "firing_at_end": len(result.firing),
    }


def print_summary(result: Backtest, out: IO[str]) -> None:
    out.write(json.dumps(summary_json(result), ensure_ascii=False, indent=2) + "\n")


def print_text(result: Backtest, out: IO[str]) -> None:
    for e in result.events:
        mark = "FIRING  " if e.state == "firing" else "RESOLVED"
        out.write(f"{e.at.isoformat()}  {mark} {e.severity:<8} {e.rule:<28} {e.entity}:{e.key}  "
                  f"owner={e.owner or '-'}  {e.summary or e.title}\n")
    counts = result.counts()
    out.write(f"\n{'rule':<32} {'fired':>6} {'resolved':>9} {'firing at end':>14}\n")
    for rule in sorted(counts):
        c = counts[rule]
        out.write(f"{rule:<32} {c['fired']:>6} {c['resolved']:>9} {c['firing_at_end']:>14}\n")
    rate = result.records / result.seconds if result.seconds else 0.0
    out.write(f"\n{result.records} records ({result.duplicates} replays ignored, {len(result.invalid)} invalid), "
              f"{len(result.events)} transitions, {len(result.firing)} firing at the end; "
              f"{result.seconds:.2f}s ({rate:,.0f} records/s)\n")
    for line in outside(result):
        out.write(line + "\n")


def print_json(result: Backtest, out: IO[str]) -> None:
    for e in result.events:
        out.write(json.dumps(event_json(e), ensure_ascii=False) + "\n")


def load_input(path: str) -> tuple[list[ChangeRecord], list[str]]:
    invalid: list[str] = []
    records = list(read_records(path, invalid))
    return records, invalid

