"""Watch a spreadsheet file (CSV now) by diffing snapshots.

A sheet has no change log, so the bookmark holds the last snapshot (key →
mapped fields) and every new read is compared with it: new rows and edited
rows become upserts (edits carry `changed`), vanished rows become deletes.
The file is only re-read when its mtime or size changed.
"""

from __future__ import annotations

import codecs
import csv
import io
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from connectors.base import Connector, PollResult
from connectors.mapping import FieldMapping, MappingError, is_blank, make_key
from orderwatch.record import ChangeRecord, DeadLetter, Op

# seq = snapshot number * SEQ_ROWS + row number: grows with every read, and a
# replayed record is recognisable by its seq.
SEQ_ROWS = 10_000_000
# A file modified this recently may be modified again within the same mtime
# tick without changing size; such a read does not mark the file as seen.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class SpreadsheetConfig:
    """One `type: spreadsheet` entry of the connectors file."""

    id: str
    entity: str
    path: Path
    key: tuple[str, ...]
    mapping: FieldMapping
    encoding: str = "auto"
    delimiter: str = ","
    actor: str | None = None
    timezone: tzinfo = field(default=UTC)


class SheetError(ValueError):
    """The file as a whole cannot be read (encoding, CSV syntax, header)."""


@dataclass(slots=True)
class Sheet:
    """One table read from a file: header cells and rows numbered as a person sees them."""

    name: str | None
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]


def detect_encoding(data: bytes) -> str:
    """BOM first; then UTF-8 if the bytes are valid UTF-8; else GB18030 (a GBK superset)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def read_csv(data: bytes, encoding: str = "auto", delimiter: str = ",") -> Sheet:
    """Decode and split a CSV file; header = row 1, cells stripped, short rows padded."""
    name = detect_encoding(data) if encoding == "auto" else encoding
    try:
        text = data.decode(name)
    except UnicodeDecodeError as exc:
        raise SheetError(
            f"cannot decode the file as {name}: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise SheetError(f"not a readable CSV file: {exc}") from None
    if not records:
        return Sheet(None, [], [])
    header = [cell.strip().lstrip("\ufeff").strip() for cell in records[0]]
    rows = []
    for number, cells in enumerate(records[1:], start=2):
        padded = cells + [""] * (len(header) - len(cells))
        rows.append((number, {h: padded[i].strip() for i, h in enumerate(header) if h}))
    return Sheet(None, header, rows)


class SpreadsheetConnector(Connector):
    """Bookmark: {"mtime_ns", "size", "snapshot": n, "rows": {key: fields}}."""

    def __init__(self, config: SpreadsheetConfig, bookmark: dict[str, Any] | None = None) -> None:
        super().__init__(config.id, bookmark)
        self.config = config

    def read(self, data: bytes) -> Sheet:
        """Turn the file's bytes into a Sheet; the seam where XLSX will plug in."""
        return read_csv(data, self.config.encoding, self.config.delimiter)

    def poll(self) -> PollResult:
        path = self.config.path
        before = path.stat()  # a missing file is an error the runner reports
        seen = (self.bookmark.get("mtime_ns"), self.bookmark.get("size"))
        if (before.st_mtime_ns, before.st_size) == seen:
            return PollResult()
        data = path.read_bytes()
        after = path.stat()
        if (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size):
            return PollResult()  # written while we read: read it whole next time
        settled = time.time_ns() - after.st_mtime_ns >= SETTLE_NS
        stamp = {"mtime_ns": after.st_mtime_ns if settled else None, "size": after.st_size}
        old_rows: dict[str, dict[str, Any]] = self.bookmark.get("rows") or {}
        try:
            sheet = self.read(data)
            if sheet.header:
                self._check_header(sheet)
        except SheetError as exc:
            return self._file_problem(exc, stamp)
        if not any(_nonblank(cells) for _, cells in sheet.rows) and old_rows:
            # Empty or header only, yet rows last time: caught half-written, not a mass delete.
            return PollResult()
        mtime = datetime.fromtimestamp(after.st_mtime_ns / 1e9, UTC)
        return self._diff(sheet, old_rows, stamp, mtime)

    def _check_header(self, sheet: Sheet) -> None:
        cfg = self.config
        actor = [cfg.actor] if cfg.actor else []
        needed = list(dict.fromkeys([*cfg.key, *cfg.mapping.columns(), *actor]))
        missing = [c for c in needed if c not in sheet.header]
        if missing:
            raise SheetError(
                f"header row lacks column(s) {', '.join(map(repr, missing))}; "
                f"it has: {', '.join(map(repr, (h for h in sheet.header if h)))}"
            )
        doubled = [c for c in needed if sheet.header.count(c) > 1]
        if doubled:
            names = ", ".join(map(repr, doubled))
            raise SheetError(f"header row has column(s) {names} more than once")

    def _file_problem(self, exc: SheetError, stamp: dict[str, Any]) -> PollResult:
        # Mark the file as seen (no repeat report every poll) but keep the snapshot.
        where = {"file": str(self.config.path), "sheet": None, "row": 1}
        dead = DeadLetter(str(exc), None, None, self.config.id, where=where)
        return PollResult(dead=[dead], bookmark={**self.bookmark, **stamp})

    def _diff(
        self,
        sheet: Sheet,
        old_rows: dict[str, dict[str, Any]],
        stamp: dict[str, Any],
        mtime: datetime,
    ) -> PollResult:
        cfg = self.config
        snapshot_no = int(self.bookmark.get("snapshot", 0)) + 1
        result = PollResult()
        rows_of: dict[str, list[int]] = {}
        good: dict[str, tuple[int, dict[str, Any], str | None]] = {}
        unreadable: set[str] = set()
        for number, cells in sheet.rows:
            if not _nonblank(cells):
                continue
            result.rows_read += 1
            try:
                key = make_key(cells, cfg.key)
            except MappingError as exc:
                result.dead.append(self._cell_dead_letter(sheet, number, cells, exc))
                continue
            rows_of.setdefault(key, []).append(number)
            try:
                fields = cfg.mapping.apply(cells)
            except MappingError as exc:
                result.dead.append(self._cell_dead_letter(sheet, number, cells, exc))
                unreadable.add(key)
                continue
            actor = cells.get(cfg.actor) if cfg.actor else None
            good.setdefault(key, (number, fields, actor or None))
        for key, numbers in rows_of.items():
            if len(numbers) > 1:
                # Which copy is right is unknowable: emit none, report all.
                where = {
                    "file": str(cfg.path),
                    "sheet": sheet.name,
                    "row": numbers[1],
                    "rows": numbers,
                    "column": ":".join(cfg.key),
                    "text": key,
                }
                reason = f"duplicate key {key!r} in rows {', '.join(map(str, numbers))}"
                result.dead.append(DeadLetter(reason, "key", key, cfg.id, where=where))
                unreadable.add(key)
                good.pop(key, None)

        snapshot: dict[str, dict[str, Any]] = {}
        for key, (number, fields, actor) in sorted(good.items(), key=lambda item: item[1][0]):
            snapshot[key] = fields
            old = old_rows.get(key)
            if old == fields:
                continue
            changed = None
            if old is not None:
                changed = {
                    f: (old.get(f), fields.get(f))
                    for f in {**old, **fields}
                    if old.get(f) != fields.get(f)
                }
            seq = snapshot_no * SEQ_ROWS + number
            result.records.append(self._record(key, "upsert", fields, seq, mtime, changed, actor))
        for key, fields in old_rows.items():
            if key in unreadable:
                snapshot[key] = fields  # still in the file, just unreadable now: not a delete
            elif key not in good:
                seq = snapshot_no * SEQ_ROWS
                result.records.append(self._record(key, "delete", fields, seq, mtime))
        result.bookmark = {**stamp, "snapshot": snapshot_no, "rows": snapshot}
        return result

    def _record(
        self,
        key: str,
        op: Op,
        fields: dict[str, Any],
        seq: int,
        ts: datetime,
        changed: dict[str, tuple[Any, Any]] | None = None,
        actor: str | None = None,
    ) -> ChangeRecord:
        cfg = self.config
        return ChangeRecord(
            source=cfg.id,
            entity=cfg.entity,
            key=key,
            op=op,
            ts=ts,
            seq=seq,
            fields=fields,
            changed=changed,
            actor=actor,
        )

    def _cell_dead_letter(
        self, sheet: Sheet, number: int, cells: dict[str, str], exc: MappingError
    ) -> DeadLetter:
        where = {
            "file": str(self.config.path),
            "sheet": sheet.name,
            "row": number,
            "column": exc.column,
            "text": exc.text,
        }
        return DeadLetter(str(exc), exc.field, dict(cells), self.config.id, where=where)


def _nonblank(cells: dict[str, str]) -> bool:
    return any(not is_blank(v) for v in cells.values())
