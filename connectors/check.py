"""`orderwatch connectors check CONFIG`: connect, read a few rows, show the canonical records.

Nothing is published and no bookmark is written: each connector reads from
its beginning as if it had never run. Each connector ends with a summary
(rows read, records, dead letters by reason) and what its columns showed
(date columns whose day/month order is ambiguous or contradicts the setting,
values a `map:` lacks). The exit status is 1 when the file has mistakes, a
source cannot be read or a row read would be a dead letter, else 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.config import ConnectorConfig, Context, build_connector, load_config
from connectors.mapping import FieldMapping
from connectors.observe import Observed
from orderwatch.record import DeadLetter
from orderwatch.yamlsrc import SourceError

TIMEOUT = 30.0  # seconds per connector: a source that hangs is a failed check


def _where(where: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in where.items() if v not in (None, ""))


def reason_of(dead: DeadLetter) -> str:
    """A dead letter's reason with the cell's own text left out, so that rows failing the same
    way count as one reason."""
    text = (dead.where or {}).get("text")
    reason = dead.reason
    if isinstance(text, str) and text:
        reason = reason.replace(repr(text), "…")
    return re.sub(r"duplicate key '[^']*' in rows [\d, :\w./-]+", "duplicate key", reason)


def _observing(cfg: ConnectorConfig, observed: Observed) -> ConnectorConfig:
    """The config with its mappings reporting to `observed`."""
    mapping = getattr(cfg, "mapping", None)
    if mapping is None:
        return cfg
    changes: dict[str, Any] = {"mapping": dataclasses.replace(mapping, observed=observed)}
    lines = getattr(cfg, "lines", None)
    if isinstance(lines, FieldMapping):  # a sheet's line fields
        changes["lines"] = dataclasses.replace(lines, observed=observed)
    elif lines is not None:
        changes["lines"] = dataclasses.replace(lines, mapping=dataclasses.replace(lines.mapping, observed=observed))
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


async def check(
    config_path: str | Path,
    rows: int = 5,
    only: list[str] | None = None,
    bootstrap: str | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Print each connector's first records and problems; return the exit status."""
    try:
        configs = load_config(config_path)
    except SourceError as exc:
        for pos, message in exc.problems:
            out(f"{pos}: {message}")
        return 1
    unknown = sorted(set(only or ()) - {c.id for c in configs})
    if unknown:
        out(f"no connector with id {', '.join(unknown)} in {config_path}")
        return 1
    failed = 0
    for cfg in configs:
        if only and cfg.id not in only:
            continue
        kind = type(cfg).__name__.removesuffix("Config").lower()
        out(f"== {cfg.id} ({kind}, {cfg.entity or 'any entity'})")
        observed = Observed()
        conn = build_connector(_observing(cfg, observed), None, Context(bootstrap=bootstrap))
        try:
            result = await asyncio.wait_for(conn.sample_async(rows), TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next connector
            out(f"  FAILED: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        finally:
            conn.close()
        for record in result.records[:rows]:
            out("  " + json.dumps(record.to_dict(), ensure_ascii=False, default=str))
        for dead in result.dead[:rows]:
            out(f"  problem: {dead.reason} ({_where(dict(dead.where))})")
        if len(result.dead) > rows:
            out(f"  … and {len(result.dead) - rows} more problem(s)")
        for notice in result.notices[:rows]:
            out(f"  note: {notice.reason} ({_where(notice.where)})")
        for line in observed.lines():
            out(f"  {line}")
        out(f"  summary: {result.rows_read} row(s) read, {len(result.records)} record(s), "
            f"{len(result.dead)} dead letter(s)")
        for reason, count in Counter(reason_of(d) for d in result.dead).most_common():
            out(f"    {count} × {reason}")
        if result.dead:
            failed += 1
    out(f"{len(configs) if not only else len(only)} connector(s) checked, {failed} failed")
    return 1 if failed else 0
