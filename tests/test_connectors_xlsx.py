"""Spreadsheets as offices keep them: XLSX with Chinese headers, folders of files, people's mistakes.

Workbooks are written with openpyxl in each test (no binary fixtures), with
the cell types Excel itself stores: datetime cells, serial numbers, text dates.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors.base import PollResult
from connectors.mapping import FieldMapping, FieldSpec
from connectors.spreadsheet import SEQ_ROWS, SpreadsheetConfig, SpreadsheetConnector

HEADER = ["订单号", "供应商", "负责人", "交货日期", "数量", "单价"]
MAPPING = FieldMapping(
    (
        FieldSpec("supplier", "供应商"),
        FieldSpec("buyer", "负责人"),
        FieldSpec("expected_date", "交货日期", "date"),
        FieldSpec("qty", "数量", "number"),
        FieldSpec("unit_price", "单价", "number"),
    )
)
SETTLED = 1_741_000_000  # a past mtime: the file is not being written any more


def settle(path: Path, step: int = 0) -> None:
    os.utime(path, (SETTLED + step * 60, SETTLED + step * 60))


def workbook(path: Path, rows: list[list[Any]], title: str | None = "采购订单 2025", sheet: str = "订单",
             merges: tuple[str, ...] = (), step: int = 0) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    if title:
        ws.append([title])  # a title row above the header, as people make them
        ws.merge_cells("A1:F1")
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    for cell in ws["D"]:
        if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
            cell.number_format = "0"  # a serial number shown as a number: what a paste leaves
    for rng in merges:
        ws.merge_cells(rng)
    book.save(path)
    settle(path, step)


def connector(path: Path, bookmark: dict[str, Any] | None = None, **options: Any) -> SpreadsheetConnector:
    cfg = SpreadsheetConfig(id="branch-xlsx", entity="purchase_order", path=path, key=("订单号",),
                            mapping=MAPPING, **{"header_row": 2, **options})
    return SpreadsheetConnector(cfg, bookmark)


def poll(conn: SpreadsheetConnector) -> PollResult:
    result = conn.poll()
    conn.commit(result)
    return result


ROWS = [
    ["PO-001", "华东五金", "张伟", datetime(2025, 3, 5), 500, 12.5],
    ["PO-002", "Acme Ltd", "李娜", 45722, "1,200", "￥3.20"],  # serial 45722 = 2025-03-06
    ["PO-003", "深圳电子", "王芳", "2025年3月7日", 12.0, 6.75],
    ["PO-004", "北方钢材", "张伟", "2025/3/8", 7, 910],
    ["PO-005", "苏州精密", "李娜", datetime(2025, 3, 9, 14, 30), 3, 1],  # a datetime cell in a date column
    [1006, "Lyon SARL", "王芳", "2025.3.10", 1, 1],  # a numeric key cell
]


def test_xlsx_with_a_title_row_chinese_headers_and_every_kind_of_date(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    workbook(path, ROWS)
    result = connector(path).poll()
    assert result.dead == [] and result.notices == []
    assert [r.key for r in result.records] == ["PO-001", "PO-002", "PO-003", "PO-004", "PO-005", "1006"]
    assert [r.fields["expected_date"] for r in result.records] == [
        "2025-03-05", "2025-03-06", "2025-03-07", "2025-03-08", "2025-03-09", "2025-03-10"]
    assert result.records[0].fields == {
        "supplier": "华东五金", "buyer": "张伟", "expected_date": "2025-03-05", "qty": 500, "unit_price": 12.5}
    assert (result.records[1].fields["qty"], result.records[1].fields["unit_price"]) == (1200, 3.2)
    assert result.records[2].fields["qty"] == 12
    assert [r.seq for r in result.records] == [SEQ_ROWS + n for n in range(3, 9)]  # header on row 2
    assert result.records[0].ts == datetime.fromtimestamp(SETTLED, UTC)


def test_an_unparseable_date_is_a_dead_letter_with_sheet_row_column_and_text(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    rows = [list(r) for r in ROWS]
    rows[2][3] = "下周二"
    workbook(path, rows)
    result = connector(path).poll()
    assert "PO-003" not in [r.key for r in result.records]
    [dead] = result.dead
    assert dead.where == {"file": str(path), "sheet": "订单", "row": 5, "column": "交货日期", "text": "下周二"}
    assert dead.field == "expected_date" and "not a date" in dead.reason


def test_merged_cell_leftovers_blank_rows_and_duplicates_are_reported_with_sheet_and_row(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    rows = [
        ["PO-001", "华东五金", "张伟", "2025-03-05", 1, 1],
        ["PO-002", "华东五金", "张伟", "2025-03-05", 2, 1],  # B4 is merged into B3:B4 below
        [None] * 6,  # a blank row between data rows
        ["PO-003", "深圳电子", "王芳", "2025-03-07", 3, 1],
        ["PO-001", "Other", "李娜", "2025-03-05", 9, 1],
        [None] * 6,  # trailing blank rows are just the end of the sheet
    ]
    workbook(path, rows, merges=("B3:B4",))
    result = connector(path).poll()
    assert [r.key for r in result.records] == ["PO-003"]
    merged, duplicate = result.dead
    assert merged.where == {"file": str(path), "sheet": "订单", "row": 4, "column": "供应商", "text": ""}
    assert "merged range B3:B4" in merged.reason
    assert duplicate.reason == "duplicate key 'PO-001' in rows 3, 7"
    assert (duplicate.where["sheet"], duplicate.where["rows"]) == ("订单", [3, 7])
    [blank] = result.notices
    assert blank.where == {"file": str(path), "sheet": "订单", "row": 5}
    assert "blank" in blank.reason


def test_a_merged_order_number_is_reported_as_merged_not_as_a_blank_key(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    rows = [
        ["PO-001", "华东五金", "张伟", "2025-03-05", 1, 1],
        ["PO-002", "华东五金", "张伟", "2025-03-05", 2, 1],  # A4:A6 merged: one order on three rows
        [None, "华东五金", "张伟", "2025-03-05", 3, 1],
        [None, "华东五金", "张伟", "2025-03-05", 4, 1],
    ]
    workbook(path, rows, merges=("A4:A6", "C3:C4"))
    result = connector(path).poll()
    assert [r.key for r in result.records] == ["PO-001"]  # C3 holds the merged value: row 3 is whole
    assert [(d.where["row"], d.where["column"], d.field) for d in result.dead] == [
        (4, "负责人", "buyer"), (5, "订单号", "key"), (6, "订单号", "key")]
    assert "merged range C3:C4" in result.dead[0].reason
    assert "merged range A4:A6" in result.dead[1].reason and "blank" not in result.dead[1].reason


def test_a_named_sheet_and_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    workbook(path, ROWS[:1], sheet="二月")
    assert [r.key for r in connector(path, sheet="二月").poll().records] == ["PO-001"]
    result = connector(path, sheet="三月").poll()
    assert result.records == []
    assert result.dead[0].reason == "no sheet '三月'; the workbook has: 二月"


def test_a_half_written_workbook_is_reported_and_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    workbook(path, ROWS)
    conn = connector(path)
    assert len(poll(conn).records) == 6
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the writer died halfway
    settle(path, 1)
    result = poll(conn)
    assert result.records == []  # not a mass delete
    assert "not a readable XLSX workbook" in result.dead[0].reason
    assert poll(conn) == PollResult()  # reported once
    path.write_bytes(data)
    settle(path, 2)
    assert poll(conn).records == []  # whole again: nothing changed


def test_a_folder_of_csv_and_xlsx_files_is_one_snapshot(tmp_path: Path) -> None:
    folder = tmp_path / "branches"
    folder.mkdir()
    workbook(folder / "上海.xlsx", ROWS[:2], title=None)
    csv = folder / "北京.csv"
    csv.write_bytes(("\r\n".join([",".join(HEADER), "PO-101,北方钢材,张伟,2025/3/8,7,910"]) + "\r\n")
                    .encode("gbk"))
    settle(csv)
    (folder / "~$上海.xlsx").write_bytes(b"Excel's lock file")
    (folder / "notes.txt").write_text("not a sheet")
    conn = connector(folder, header_row=1)
    first = poll(conn)
    assert sorted(r.key for r in first.records) == ["PO-001", "PO-002", "PO-101"]
    assert first.dead == []

    # PO-002 moves from the Shanghai workbook to the Beijing sheet unchanged: no change at all.
    workbook(folder / "上海.xlsx", ROWS[:1], title=None, step=1)
    csv.write_bytes(("\r\n".join([",".join(HEADER), "PO-101,北方钢材,张伟,2025/3/8,7,910",
                                  "PO-002,Acme Ltd,李娜,2025/3/6,1200,3.2"]) + "\r\n").encode("gbk"))
    settle(csv, 1)
    assert poll(conn).records == []

    # The Beijing file is removed: believed on the second poll, then its rows are deletes.
    csv.unlink()
    assert poll(conn).pending
    gone = poll(conn)
    assert sorted((r.key, r.op) for r in gone.records) == [("PO-002", "delete"), ("PO-101", "delete")]


def test_duplicate_keys_across_files_name_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "branches"
    folder.mkdir()
    workbook(folder / "a.xlsx", ROWS[:1], title=None)
    workbook(folder / "b.xlsx", [ROWS[1], ROWS[0]], title=None)
    result = connector(folder, header_row=1).poll()
    assert [r.key for r in result.records] == ["PO-002"]
    [dead] = result.dead
    assert dead.reason == "duplicate key 'PO-001' in rows a.xlsx:2, b.xlsx:3"
    assert dead.where["files"] == ["a.xlsx", "b.xlsx"]


def test_a_restart_after_publishing_folds_the_published_records_in(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    workbook(path, ROWS[:2])
    conn = connector(path)
    saved = dict(poll(conn).bookmark or {})
    rows = [list(r) for r in ROWS[:2]]
    rows[0][4] = 600
    workbook(path, rows, step=1)
    published = conn.poll()  # published, then the process died before saving the bookmark
    assert [r.key for r in published.records] == ["PO-001"]
    restarted = connector(path, saved)
    restarted.recover(published.records)
    assert poll(restarted).records == []  # the edit is not emitted a second time
    rows[1][4] = 5
    workbook(path, rows, step=2)
    [edit] = poll(restarted).records
    assert edit.key == "PO-002" and edit.changed == {"qty": (1200, 5)}
    assert edit.seq // SEQ_ROWS == 4  # snapshots 2 (recovered) and 3 (re-read) came before


@pytest.mark.parametrize("name", ["orders.xlsm", "ORDERS.XLSX"])
def test_xlsm_and_upper_case_suffixes_are_workbooks(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    workbook(path, ROWS[:1])
    assert [r.key for r in connector(path).poll().records] == ["PO-001"]
