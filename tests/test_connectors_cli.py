"""`orderwatch connectors check|run` as a person runs them (real processes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from orderwatch.broker import free_port
from tests.conftest import wait_for

CLI = [sys.executable, "-m", "orderwatch", "connectors"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def sources(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "erp.sqlite") as db:
        db.execute("CREATE TABLE po (po_number TEXT, supplier TEXT, expected TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO po VALUES (?, ?, ?, ?)", [
            ("PO-1", "华东五金", "2025/3/5", "2025-03-05 10:00:00"),
            ("PO-2", "Acme", "next week", "2025-03-05 10:00:01"),
            ("PO-3", "Acme", "2025-03-07", "2025-03-05 10:00:02"),
        ])
    sheet = tmp_path / "branch.csv"
    sheet.write_bytes("订单号,供应商,交货日期\nSZ-1,宁波紧固件,2025年3月5日\n".encode("gbk"))
    os.utime(sheet, (1_741_000_000, 1_741_000_000))


GOOD = """\
connectors:
  - id: erp
    type: sql
    url: sqlite:///erp.sqlite
    table: po
    entity: purchase_order
    key: po_number
    cursor: updated_at
    fields: {supplier: supplier, expected_date: {column: expected, type: date}}
  - id: sheet
    type: spreadsheet
    path: branch.csv
    entity: purchase_order
    key: 订单号
    fields: {supplier: 供应商, expected_date: {column: 交货日期, type: date}}
"""


def test_check_shows_records_and_problems_and_publishes_nothing(tmp_path: Path) -> None:
    sources(tmp_path)
    (tmp_path / "connectors.yaml").write_text(GOOD, encoding="utf-8")
    done = run("check", str(tmp_path / "connectors.yaml"), "--rows", "2")
    assert done.returncode == 1, done.stdout + done.stderr  # a row that does not map fails the check
    out = done.stdout
    assert "== erp (sql, purchase_order)" in out
    assert "summary: 2 row(s) read, 1 record(s), 1 dead letter(s)" in out  # --rows 2 reads two rows
    assert "    1 × field 'expected_date' (column 'expected'): not a date: …; expected e.g." in out
    assert '"key": "PO-1"' in out and '"supplier": "华东五金"' in out and '"expected_date": "2025-03-05"' in out
    assert "problem: field 'expected_date' (column 'expected'): not a date: 'next week'" in out
    assert "key PO-2" in out
    assert "== sheet (spreadsheet, purchase_order)" in out and '"key": "SZ-1"' in out
    assert "summary: 1 row(s) read, 1 record(s), 0 dead letter(s)" in out
    assert out.rstrip().endswith("2 connector(s) checked, 1 failed")
    assert not (tmp_path / "bookmarks").exists() and not (tmp_path / ".orderwatch").exists()


def test_check_reports_mistakes_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text(GOOD.replace("cursor: updated_at", "cursr: updated_at"), encoding="utf-8")
    done = run("check", str(path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"{path}:2:5: sql connector needs 'cursor'" in lines
    assert any(line.startswith(f"{path}:8:5: unknown key 'cursr' for type sql") for line in lines)


def test_check_fails_for_a_source_it_cannot_read(tmp_path: Path) -> None:
    sources(tmp_path)
    (tmp_path / "connectors.yaml").write_text(GOOD.replace("erp.sqlite", "missing.sqlite"), encoding="utf-8")
    done = run("check", str(tmp_path / "connectors.yaml"))
    assert done.returncode == 1
    assert "FAILED: OperationalError" in done.stdout and "unable to open database file" in done.stdout
    assert '"key": "SZ-1"' in done.stdout  # the other connectors are still checked
    assert "2 connector(s) checked, 1 failed" in done.stdout
    only = run("check", str(tmp_path / "connectors.yaml"), "--only", "sheet")
    assert only.returncode == 0 and "== erp" not in only.stdout


def test_every_verb_has_help_and_run_needs_a_broker(tmp_path: Path) -> None:
    for verb in ([], ["check"], ["run"]):
        done = run(*verb, "--help")
        assert done.returncode == 0 and "usage: orderwatch connectors" in done.stdout
    (tmp_path / "connectors.yaml").write_text(GOOD, encoding="utf-8")
    done = run("run", str(tmp_path / "connectors.yaml"), cwd=tmp_path)
    assert done.returncode == 2
    assert "give --broker kafka://host:port" in done.stderr


def test_check_tells_of_rows_the_cursor_never_reaches(tmp_path: Path) -> None:
    sources(tmp_path)
    with sqlite3.connect(tmp_path / "erp.sqlite") as db:  # rows no poll will ever read
        db.executemany("INSERT INTO po VALUES (?, ?, ?, ?)",
                       [("PO-4", "Acme", "2025-03-07", None), (None, "Acme", "2025-03-07", "2025-03-06")])
    (tmp_path / "connectors.yaml").write_text(GOOD, encoding="utf-8")
    done = run("check", str(tmp_path / "connectors.yaml"), "--only", "erp")
    assert done.returncode == 1, done.stdout + done.stderr  # PO-2's date, as above
    assert "note: 2 row(s) have no value in updated_at, po_number and are never read (table po)" in done.stdout


def test_run_keeps_trying_a_broker_that_is_not_there_and_stops_on_sigterm(tmp_path: Path) -> None:
    sources(tmp_path)
    (tmp_path / "connectors.yaml").write_text(GOOD, encoding="utf-8")
    port = free_port()
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*CLI, "run", "connectors.yaml", "--broker", f"kafka://127.0.0.1:{port}"],
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        line = (f"orderwatch: cannot reach the broker at 127.0.0.1:{port} (connection refused); "
                "is it running? check --broker / ORDERWATCH_BROKER; retrying in ")
        wait_for(lambda: log.read_text().count(line) >= 2, 60, "two attempts")
        assert proc.poll() is None  # still trying
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert lines and all(x.startswith(line) for x in lines), lines  # nothing else: no traceback, no client logs
