"""`orderwatch connectors export CONFIG --out records.jsonl`: a source's records, for `backtest`.

Each sql and spreadsheet connector reads its source from the beginning, as
`connectors run` first would, and its canonical change records are written
one JSON object per line; no bookmark is written and nothing is published.
Dead letters are counted by reason on stderr (and make the exit status 1);
the records read are written all the same.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

from connectors.check import reason_of
from connectors.config import build_connector, load_config
from connectors.debezium import DebeziumConfig
from connectors.webhook import WebhookConfig
from orderwatch.yamlsrc import SourceError


def export(config_path: str | Path, out: IO[str], only: list[str] | None = None,
           say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Write the records of the file's pull connectors to `out`; return the exit status."""
    try:
        configs = load_config(config_path)
    except SourceError as exc:
        for pos, message in exc.problems:
            say(f"{pos}: {message}")
        return 1
    unknown = sorted(set(only or ()) - {c.id for c in configs})
    if unknown:
        say(f"no connector with id {', '.join(unknown)} in {config_path}")
        return 1
    status = 0
    for cfg in configs:
        if only and cfg.id not in only:
            continue
        if isinstance(cfg, (DebeziumConfig, WebhookConfig)):
            kind = "debezium" if isinstance(cfg, DebeziumConfig) else "webhook"
            say(f"{cfg.id}: skipped: a {kind} connector is a stream; export reads sql and spreadsheet sources")
            continue
        conn = build_connector(cfg)
        records = rows = 0
        dead: Counter[str] = Counter()
        first = last = None
        try:
            for result in conn.export():
                rows += result.rows_read
                for record in result.records:
                    out.write(json.dumps(record.to_dict(), ensure_ascii=False, default=str) + "\n")
                    records += 1
                    first = record.ts if first is None or record.ts < first else first
                    last = record.ts if last is None or record.ts > last else last
                dead.update(reason_of(d) for d in result.dead)
                for notice in result.notices:
                    say(f"{cfg.id}: note: {notice.reason}")
        except Exception as exc:  # noqa: BLE001 - reported, then the next connector
            say(f"{cfg.id}: FAILED: {type(exc).__name__}: {exc}")
            status = 1
            continue
        finally:
            conn.close()
        span = f", ts {first.isoformat()} … {last.isoformat()}" if first and last else ""
        say(f"{cfg.id}: {rows} row(s) read, {records} record(s), {sum(dead.values())} dead letter(s){span}")
        for reason, count in dead.most_common():
            say(f"  {count} × {reason}")
        if dead:
            status = 1
    return status
