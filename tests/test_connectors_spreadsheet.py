"""The spreadsheet connector: a branch's order sheet, edited by people, read by snapshot diff."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import BookmarkStore, PollResult
from connectors.mapping import FieldMapping, FieldSpec
from connectors.spreadsheet import (
    SEQ_ROWS,
    SpreadsheetConfig,
    SpreadsheetConnector,
    detect_encoding,
)

HEADER = " 订单号 ,供应商,负责人 ,状态,交货日期,数量"
ROWS = [
    'PO-001,华东五金,张伟,open,2025/3/5,"￥1,234.50"',
    "PO-002,Acme Ltd,李娜,open,2025年3月6日,100",
    ",,,,,",
    "PO-003,深圳电子,王芳,approved,2025-03-07,12",
    "PO-004,北方钢材,张伟,open,45724,7",
]
MAPPING = FieldMapping(
    (
        FieldSpec("supplier", "供应商"),
        FieldSpec("buyer", "负责人"),
        FieldSpec("status", "状态"),
        FieldSpec("expected_date", "交货日期", "date"),
        FieldSpec("qty", "数量", "number"),
    )
)


class Sheet:
    """A CSV file on disk whose every write gets a distinct, settled mtime."""

    def __init__(self, path: Path, encoding: str = "gbk") -> None:
        self.path, self.encoding, self.writes = path, encoding, 0

    def write(self, lines: list[str]) -> None:
        self.path.write_bytes(("\r\n".join(lines) + "\r\n" if lines else "").encode(self.encoding))
        self.writes += 1
        stamp = (1_741_000_000 + self.writes * 60) * 10**9  # well in the past: settled
        os.utime(self.path, ns=(stamp, stamp))

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(self.path.stat().st_mtime_ns / 1e9, UTC)


@pytest.fixture
def sheet(tmp_path: Path) -> Sheet:
    return Sheet(tmp_path / "branch_orders.csv")


def connector(
    sheet: Sheet, bookmark: dict[str, Any] | None = None, encoding: str = "auto"
) -> SpreadsheetConnector:
    cfg = SpreadsheetConfig(
        id="branch-sheet",
        entity="purchase_order",
        path=sheet.path,
        key=("订单号",),
        mapping=MAPPING,
        encoding=encoding,
    )
    return SpreadsheetConnector(cfg, bookmark)


def poll_and_commit(conn: SpreadsheetConnector) -> PollResult:
    result = conn.poll()
    conn.commit(result)
    return result


def test_gbk_csv_with_chinese_headers_and_mixed_date_formats(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    assert detect_encoding(sheet.path.read_bytes()) == "gb18030"
    result = connector(sheet).poll()
    assert result.dead == []
    assert result.rows_read == 4  # the blank row is skipped
    assert [r.key for r in result.records] == ["PO-001", "PO-002", "PO-003", "PO-004"]
    assert [r.fields["expected_date"] for r in result.records] == [
        "2025-03-05",
        "2025-03-06",
        "2025-03-07",
        "2025-03-08",
    ]
    first = result.records[0]
    assert first.fields == {
        "supplier": "华东五金",
        "buyer": "张伟",
        "status": "open",
        "expected_date": "2025-03-05",
        "qty": 1234.5,
    }
    assert (first.source, first.entity, first.op, first.changed) == (
        "branch-sheet",
        "purchase_order",
        "upsert",
        None,
    )
    assert first.ts == sheet.mtime
    # Rows are numbered as a person sees them: header = 1, so PO-003 sits on row 5.
    assert [r.seq for r in result.records] == [SEQ_ROWS + n for n in (2, 3, 5, 6)]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_other_encodings_are_detected(sheet: Sheet, encoding: str) -> None:
    sheet.encoding = encoding
    sheet.write([HEADER, *ROWS])
    result = connector(sheet).poll()
    assert result.records[1].fields["supplier"] == "Acme Ltd"
    assert result.records[3].fields["supplier"] == "北方钢材"


def test_a_utf8_file_with_one_stray_byte_is_reported_not_read_as_gbk(sheet: Sheet) -> None:
    # An ERP export: English headers, Chinese values, UTF-8.
    sheet.encoding = "utf-8"
    sheet.write(["po_number,supplier,qty", "PO-001,华东五金,5", "PO-002,深圳电子,7", "PO-003,Acme Ltd,1"])
    mapping = FieldMapping((FieldSpec("supplier", "supplier"), FieldSpec("qty", "qty", "number")))
    conn = SpreadsheetConnector(SpreadsheetConfig(
        id="erp-export", entity="purchase_order", path=sheet.path, key=("po_number",), mapping=mapping))
    assert len(poll_and_commit(conn).records) == 3
    # A supplier's name pasted from an old Latin-1 system: one byte that is not UTF-8.
    sheet.path.write_bytes(sheet.path.read_bytes().replace(b"Acme Ltd", b"M\xfcller GmbH"))
    os.utime(sheet.path, ns=(1_742_000_000 * 10**9,) * 2)
    result = poll_and_commit(conn)
    assert result.records == []  # not every Chinese cell re-emitted as GBK mojibake
    [dead] = result.dead
    assert dead.reason == "cannot decode the file as utf-8: invalid start byte at byte 78"
    assert conn.bookmark["rows"]["PO-001"]["supplier"] == "华东五金"


@pytest.mark.parametrize(("named", "written", "buyer"), [("gb2312", "gbk", "王喆"), ("gbk", "gb18030", "𠮷田")])
def test_a_chinese_encoding_named_loosely_reads_the_wider_characters(
    sheet: Sheet, named: str, written: str, buyer: str
) -> None:
    sheet.encoding = written
    sheet.write([HEADER, ROWS[0].replace("张伟", buyer)])
    result = connector(sheet, encoding=named).poll()
    assert result.dead == []
    assert [r.fields["buyer"] for r in result.records] == [buyer]


def test_a_named_encoding_that_does_not_fit_is_a_file_dead_letter(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    result = connector(sheet, encoding="utf-8").poll()
    assert result.records == []
    assert "cannot decode the file as utf-8" in result.dead[0].reason


def test_a_bad_date_is_a_dead_letter_with_row_column_and_text(sheet: Sheet) -> None:
    rows = list(ROWS)
    rows[3] = "PO-003,深圳电子,王芳,approved,下周二,12"
    sheet.write([HEADER, *rows])
    result = connector(sheet).poll()
    assert [r.key for r in result.records] == ["PO-001", "PO-002", "PO-004"]
    [dead] = result.dead
    assert dead.where == {
        "file": str(sheet.path),
        "sheet": None,
        "row": 5,
        "column": "交货日期",
        "text": "下周二",
    }
    assert dead.field == "expected_date"
    assert dead.source == "branch-sheet"
    assert "not a date" in dead.reason and "交货日期" in dead.reason
    assert dead.payload["订单号"] == "PO-003"


def test_edits_adds_and_removals_resume_across_instances(sheet: Sheet, tmp_path: Path) -> None:
    store = BookmarkStore(tmp_path / "bookmarks")
    sheet.write([HEADER, *ROWS])
    first = connector(sheet)
    result = poll_and_commit(first)
    assert len(result.records) == 4
    store.save(first.id, first.bookmark)

    # Someone edits PO-002, deletes PO-003 and adds PO-005; a restarted connector reads it.
    sheet.write(
        [
            HEADER,
            ROWS[0],
            "PO-002,Acme Ltd,李娜,approved,2025/3/9,100",
            ROWS[4],
            "PO-005,华东五金,张伟,open,2025-04-01,3",
        ]
    )
    second = connector(sheet, store.load("branch-sheet"))
    result = poll_and_commit(second)
    by_key = {(r.key, r.op): r for r in result.records}
    assert sorted(by_key) == [("PO-002", "upsert"), ("PO-003", "delete"), ("PO-005", "upsert")]
    edit = by_key["PO-002", "upsert"]
    assert edit.changed == {
        "status": ("open", "approved"),
        "expected_date": ("2025-03-06", "2025-03-09"),
    }
    assert edit.fields["status"] == "approved"
    assert by_key["PO-005", "upsert"].changed is None
    gone = by_key["PO-003", "delete"]
    assert gone.fields["supplier"] == "深圳电子"  # the last known values travel with the delete
    assert gone.seq == 2 * SEQ_ROWS
    assert edit.seq == 2 * SEQ_ROWS + 3
    store.save(second.id, second.bookmark)

    # A third instance on an unchanged file: nothing again, and the file is not even read.
    third = connector(sheet, store.load("branch-sheet"))
    assert third.poll() == PollResult()


def test_a_touched_but_unchanged_file_emits_nothing(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    sheet.write([HEADER, *ROWS])  # saved again, same content
    result = poll_and_commit(conn)
    assert result.rows_read == 4
    assert result.records == [] and result.dead == []
    assert result.bookmark is not None and result.bookmark["snapshot"] == 2


@pytest.mark.parametrize("content", [[], [HEADER]])
def test_a_file_caught_half_written_is_not_a_mass_delete(sheet: Sheet, content: list[str]) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    saved = dict(conn.bookmark)
    sheet.write(content)
    half = conn.poll()
    assert half == PollResult(pending=True)  # retried, nothing emitted, bookmark kept
    assert conn.bookmark == saved
    sheet.write([HEADER, *ROWS])
    result = poll_and_commit(conn)
    assert result.records == []  # the rows never went away


def test_a_file_still_empty_on_the_next_poll_was_really_emptied(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    sheet.write([HEADER])
    assert poll_and_commit(conn).pending
    result = poll_and_commit(conn)
    assert sorted((r.key, r.op) for r in result.records) == [
        (f"PO-00{n}", "delete") for n in (1, 2, 3, 4)
    ]


def test_a_file_being_written_is_read_once_it_has_settled(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    now = time.time_ns()
    os.utime(sheet.path, ns=(now, now))  # just written: the writer may not be done
    conn = connector(sheet)
    assert conn.poll() == PollResult(pending=True)
    settled = now - 3 * 10**9
    os.utime(sheet.path, ns=(settled, settled))
    assert len(conn.poll().records) == 4


def test_a_row_turning_unreadable_is_reported_not_deleted(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    rows = list(ROWS)
    rows[0] = "PO-001,华东五金,张伟,open,2025/3/5,一千"
    sheet.write([HEADER, *rows])
    result = poll_and_commit(conn)
    assert result.records == []
    assert result.dead[0].where["row"] == 2
    assert result.dead[0].where["column"] == "数量"
    assert result.dead[0].where["text"] == "一千"
    sheet.write([HEADER, *ROWS])  # fixed: its values are back to the last good ones
    assert poll_and_commit(conn).records == []


def test_duplicate_keys_are_dead_letters_with_their_row_numbers(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    sheet.write([HEADER, *ROWS, "PO-002,Other Co,李娜,open,2025/3/6,1"])
    result = poll_and_commit(conn)
    assert result.records == []  # neither copy is trusted, and PO-002 is not deleted
    [dead] = result.dead
    assert dead.where["rows"] == [3, 7]
    assert dead.where["text"] == "PO-002"
    assert "duplicate key 'PO-002' in rows 3, 7" == dead.reason


def test_a_pasted_copy_with_a_typo_still_makes_its_key_a_duplicate(sheet: Sheet) -> None:
    sheet.write([HEADER, *ROWS])
    conn = connector(sheet)
    poll_and_commit(conn)
    # PO-002's row is edited, and a copy of it pasted below with a date nobody can read.
    rows = [*ROWS, "PO-002,Other Co,李娜,open,下周三,1"]
    rows[1] = "PO-002,Acme Ltd,李娜,approved,2025年3月6日,100"
    sheet.write([HEADER, *rows])
    result = poll_and_commit(conn)
    assert result.records == []  # which copy is right is unknowable: neither is emitted
    assert sorted(d.reason.split(":")[0] for d in result.dead) == [
        "duplicate key 'PO-002' in rows 3, 7",
        "field 'expected_date' (column '交货日期')",
    ]
    assert conn.bookmark["rows"]["PO-002"]["status"] == "open"
    # The copy is deleted: the edit is now emitted, with the change against what was emitted.
    sheet.write([HEADER, *rows[:-1]])
    [edit] = poll_and_commit(conn).records
    assert (edit.key, edit.changed) == ("PO-002", {"status": ("open", "approved")})


def test_a_missing_header_column_is_reported_once(sheet: Sheet) -> None:
    sheet.write([HEADER.replace("交货日期", "到货日期"), *ROWS])
    conn = connector(sheet)
    result = poll_and_commit(conn)
    assert result.records == []
    [dead] = result.dead
    assert "lacks column(s) '交货日期'" in dead.reason
    assert dead.where == {"file": str(sheet.path), "sheet": None, "row": 1}
    assert conn.poll() == PollResult()  # same file: not reported again
