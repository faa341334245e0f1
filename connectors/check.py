"""`orderwatch connectors check CONFIG`: connect, read a few rows, show the canonical records.

Nothing is published and no bookmark is written: each connector reads from
its beginning as if it had never run. The exit status is 1 when the file has
mistakes or a source cannot be read, else 0 (rows that do not map are shown
as problems: they are the source's, not the configuration's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.config import Context, build_connector, load_config
from orderwatch.yamlsrc import SourceError

TIMEOUT = 30.0  # seconds per connector: a source that hangs is a failed check


def _where(where: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in where.items() if v not in (None, ""))


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
        conn = build_connector(cfg, None, Context(bootstrap=bootstrap))
        try:
            result = await asyncio.wait_for(conn.sample_async(rows), TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next connector
            out(f"  FAILED: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        finally:
            conn.close()
        out(f"  read {result.rows_read} row(s): {len(result.records)} record(s), "
            f"{len(result.dead)} problem(s)")
        for record in result.records[:rows]:
            out("  " + json.dumps(record.to_dict(), ensure_ascii=False, default=str))
        for dead in result.dead[:rows]:
            out(f"  problem: {dead.reason} ({_where(dict(dead.where))})")
        if len(result.dead) > rows:
            out(f"  … and {len(result.dead) - rows} more problem(s)")
        for notice in result.notices[:rows]:
            out(f"  note: {notice.reason} ({_where(notice.where)})")
    out(f"{len(configs) if not only else len(only)} connector(s) checked, {failed} failed")
    return 1 if failed else 0
