"""Watch spreadsheet files (CSV, XLSX; one file or a folder of them) by diffing snapshots.

A sheet has no change log, so the bookmark holds the last snapshot (key →
mapped fields) and every new read is compared with it: new rows and edited
rows become upserts (edits carry `changed`), vanished rows become deletes.
Files are only read once they have settled (not modified for `settle`
seconds) and again only when their mtime or size changed; a file that turns
empty or disappears must still be so on the next poll before its rows count
as deleted, so a file caught half-written is retried, never a mass delete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from connectors.base import Connector, Notice, PollResult
from connectors.mapping import FieldMapping, FieldSpec, MappingError, make_key, ts_of
from connectors.sheets import XLSX_SUFFIXES, Sheet, SheetError, detect_encoding, read_csv, read_xlsx
from orderwatch.record import ChangeRecord, DeadLetter, Op

__all__ = ["SEQ_ROWS", "SheetError", "SpreadsheetConfig", "SpreadsheetConnector", "detect_encoding"]

# seq = snapshot number * SEQ_ROWS + row number: grows with every read, and a
# replayed record is recognisable by its seq.
SEQ_ROWS = 10_000_000
DEFAULT_PATTERNS = ("*.csv", "*.xlsx", "*.xlsm")


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
    sheet: str | None = None
    header_row: int = 1
    pattern: tuple[str, ...] = DEFAULT_PATTERNS
    settle: float = 2.0
    ts: FieldSpec | None = None  # the column saying when the row changed (else the file's mtime)
    lines: FieldMapping | None = None  # rows sharing a key are one order; these map its lines


@dataclass(slots=True)
class _Row:
    file: str
    sheet: str | None
    number: int
    fields: dict[str, Any] | None  # None: the row does not map (already a dead letter)
    actor: str | None
    ts: datetime | None = None
    line: dict[str, Any] | None = None


class SpreadsheetConnector(Connector):
    """Bookmark: {"files": {name: [mtime_ns, size]}, "snapshot": n, "rows": {key: fields},
    "origin": {key: file name}}."""

    def __init__(self, config: SpreadsheetConfig, bookmark: dict[str, Any] | None = None) -> None:
        super().__init__(config.id, bookmark)
        self.config = config
        self._suspect: dict[str, list[int]] | None = None  # an emptied file, seen once

    def read(self, path: Path, data: bytes) -> Sheet:
        """Turn one file's bytes into a Sheet."""
        cfg = self.config
        if path.suffix.lower() in XLSX_SUFFIXES:
            return read_xlsx(data, cfg.sheet, cfg.header_row)
        return read_csv(data, cfg.encoding, cfg.delimiter, cfg.header_row)

    def files(self) -> dict[str, Path]:
        """The files watched now, by name (relative to a watched folder)."""
        path = self.config.path
        if not path.is_dir():
            path.stat()  # a missing file is an error the runner reports and retries
            return {path.name: path}
        found = {}
        for child in sorted(path.iterdir()):
            # ~$name.xlsx is Excel's lock file; dot files are editors' temporaries.
            if child.name.startswith(("~$", ".")) or not child.is_file():
                continue
            if any(fnmatch(child.name.lower(), p.lower()) for p in self.config.pattern):
                found[child.name] = child
        return found

    def poll(self) -> PollResult:
        return self._poll(self.bookmark, wait=True)

    def sample(self, rows: int) -> PollResult:
        # A sheet is read whole in any case: all its records, for the check's counts.
        return self._poll({}, wait=False)

    def export(self) -> Iterator[PollResult]:
        yield self._poll({}, wait=False)

    def _poll(self, bookmark: dict[str, Any], wait: bool) -> PollResult:
        paths = self.files()
        stats = {name: [p.stat().st_mtime_ns, p.stat().st_size] for name, p in paths.items()}
        if stats == bookmark.get("files"):
            return PollResult()
        newest = max((m for m, _ in stats.values()), default=0)
        if wait and time.time_ns() - newest < self.config.settle * 1e9:
            return PollResult(pending=True)  # still being written: read it whole later
        sheets: dict[str, Sheet] = {}
        dead: list[DeadLetter] = []
        for name, path in paths.items():
            data = path.read_bytes()
            if [path.stat().st_mtime_ns, path.stat().st_size] != stats[name]:
                return PollResult(pending=True)  # written while we read
            try:
                sheets[name] = self._checked(path, data)
            except SheetError as exc:
                where = {"file": str(path), "sheet": self.config.sheet, "row": self.config.header_row}
                dead.append(DeadLetter(str(exc), None, None, self.config.id, where=where))
        old_origin = self._origin(bookmark)
        emptied = {name for name in set(old_origin.values()) if name not in sheets or not sheets[name].rows}
        emptied -= {name for name in paths if name not in sheets}  # unreadable: kept, not emptied
        if emptied and wait and self._suspect != stats:
            # A file that lost all its rows may be half-written: believe it on the next poll.
            self._suspect = stats
            return PollResult(pending=True)
        self._suspect = None
        unreadable_files = {name for name in paths if name not in sheets}
        result = self._diff(bookmark, sheets, unreadable_files)
        result.dead[:0] = dead
        result.bookmark = {**(result.bookmark or {}), "files": stats}
        return result

    def _checked(self, path: Path, data: bytes) -> Sheet:
        sheet = self.read(path, data)
        if not sheet.header:
            return sheet
        cfg = self.config
        actor = [cfg.actor] if cfg.actor else []
        needed = list(dict.fromkeys([*cfg.key, *self._columns(), *actor]))
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
        return sheet

    def _columns(self) -> list[str]:
        """The columns read besides the key and actor: fields, line fields, ts."""
        cfg = self.config
        lines = cfg.lines.columns() if cfg.lines else []
        ts = [cfg.ts.column] if cfg.ts is not None and cfg.ts.column else []
        return list(dict.fromkeys([*cfg.mapping.columns(), *lines, *ts]))

    def _diff(
        self, bookmark: dict[str, Any], sheets: dict[str, Sheet], unreadable_files: set[str]
    ) -> PollResult:
        cfg = self.config
        folder = cfg.path if cfg.path.is_dir() else cfg.path.parent
        old_rows: dict[str, dict[str, Any]] = bookmark.get("rows") or {}
        old_origin = self._origin(bookmark)
        snapshot_no = int(bookmark.get("snapshot", 0)) + 1
        result = PollResult()
        found: dict[str, list[_Row]] = {}
        unreadable = {k for k, f in old_origin.items() if f in unreadable_files}
        needed = {*cfg.key, *self._columns(), *([cfg.actor] if cfg.actor else [])}
        for name, sheet in sheets.items():
            file = str(folder / name)
            for number in sheet.blank_rows:
                spot = {"file": file, "sheet": sheet.name, "row": number}
                result.notices.append(Notice(f"row {number} is blank, between data rows", spot))
            for number, cells in sheet.rows:
                result.rows_read += 1
                leftovers = [(c, r) for c, r in sheet.merged.get(number, []) if c in needed]
                try:
                    # A merged key's hidden cells are blank, and "the key is blank" would not say why.
                    keyed = [(c, r) for c, r in leftovers if c in cfg.key]
                    if keyed:
                        raise _merged("key", *keyed[0])
                    key = make_key(cells, cfg.key)
                except MappingError as exc:
                    result.dead.append(self._dead(file, sheet, number, cells, exc))
                    continue
                try:
                    if leftovers:
                        column, rng = leftovers[0]
                        names = [s.name for s in cfg.mapping.specs if s.column == column]
                        raise _merged(names[0] if names else column, column, rng)
                    fields = cfg.mapping.apply(cells)
                    line = cfg.lines.apply(cells) if cfg.lines else None
                    ts = ts_of(cfg.ts, cells.get(cfg.ts.column or ""), cfg.timezone) if cfg.ts else None
                except MappingError as exc:
                    result.dead.append(self._dead(file, sheet, number, cells, exc))
                    unreadable.add(key)
                    # Still a copy of its key: the key's other rows are not to be trusted either.
                    found.setdefault(key, []).append(_Row(name, sheet.name, number, None, None))
                    continue
                actor = cells.get(cfg.actor) if cfg.actor else None
                actor_text = str(actor).strip() if actor not in (None, "") else None
                found.setdefault(key, []).append(_Row(name, sheet.name, number, fields, actor_text, ts, line))
        if cfg.lines is not None:
            found = {key: [self._order(key, rows, result)] for key, rows in found.items()}
        for key, rows in found.items():
            if len(rows) > 1:
                # Which copy is right is unknowable: emit none, report all.
                places = [f"{r.file}:{r.number}" if len(sheets) > 1 else str(r.number) for r in rows]
                where: dict[str, Any] = {
                    "file": str(folder / rows[1].file),
                    "sheet": rows[1].sheet,
                    "row": rows[1].number,
                    "rows": [r.number for r in rows],
                    "column": ":".join(cfg.key),
                    "text": key,
                }
                if len(sheets) > 1:
                    where["files"] = [r.file for r in rows]
                reason = f"duplicate key {key!r} in rows {', '.join(places)}"
                result.dead.append(DeadLetter(reason, "key", key, cfg.id, where=where))
                unreadable.add(key)
        good = {k: rows[0] for k, rows in found.items() if len(rows) == 1}
        mtime = self._mtime(sheets, folder)
        snapshot: dict[str, dict[str, Any]] = {}
        origin: dict[str, str] = {}
        for key, row in sorted(good.items(), key=lambda item: (item[1].file, item[1].number)):
            if row.fields is None:
                continue  # its only row does not map: reported, and kept as it was below
            snapshot[key], origin[key] = row.fields, row.file
            old = old_rows.get(key)
            if old == row.fields:
                continue
            changed = None
            if old is not None:
                changed = {
                    f: (old.get(f), row.fields.get(f))
                    for f in {**old, **row.fields}
                    if old.get(f) != row.fields.get(f)
                }
            seq = snapshot_no * SEQ_ROWS + row.number
            result.records.append(
                self._record(key, "upsert", row.fields, seq, row.ts or mtime, changed, row.actor)
            )
        for key, fields in old_rows.items():
            if key in unreadable:
                # Still in the file, just unreadable now: not a delete.
                snapshot[key] = fields
                if key in old_origin:
                    origin[key] = old_origin[key]
            elif key not in good:
                seq = snapshot_no * SEQ_ROWS
                result.records.append(self._record(key, "delete", fields, seq, mtime))
        result.bookmark = {"snapshot": snapshot_no, "rows": snapshot, "origin": origin}
        return result

    def _order(self, key: str, rows: list[_Row], result: PollResult) -> _Row:
        """The rows of one key as one order: header fields from its first row, a line per row
        (`fields.lines`); a header field that differs in a later row is reported, the first
        row's value kept. A row that does not map leaves the order unreadable (None fields)."""
        first = rows[0]
        if any(r.fields is None for r in rows) or first.fields is None:
            return _Row(first.file, first.sheet, first.number, None, None)
        fields = dict(first.fields)
        for row in rows[1:]:
            for name, value in (row.fields or {}).items():
                if value != fields.get(name):
                    where = {"file": row.file, "sheet": row.sheet, "row": row.number, "key": key}
                    result.notices.append(Notice(
                        f"order {key!r}: {name} is {value!r} in row {row.number} but {fields.get(name)!r} "
                        f"in row {first.number}; the first row's value is kept", where))
        fields["lines"] = [r.line or {} for r in rows]
        stamps = [r.ts for r in rows if r.ts is not None]
        actor = next((r.actor for r in rows if r.actor), None)
        return _Row(first.file, first.sheet, first.number, fields, actor, max(stamps) if stamps else None)

    def _origin(self, bookmark: dict[str, Any]) -> dict[str, str]:
        """Which file each key of the snapshot came from."""
        origin = bookmark.get("origin")
        if origin is None:  # a bookmark written before folders were watched: one file
            return {key: self.config.path.name for key in bookmark.get("rows") or {}}
        return dict(origin)

    def _mtime(self, sheets: dict[str, Sheet], folder: Path) -> datetime:
        stamps = [(folder / name).stat().st_mtime_ns for name in sheets] or [time.time_ns()]
        return datetime.fromtimestamp(max(stamps) / 1e9, UTC)

    def recover(self, records: list[ChangeRecord]) -> None:
        """Fold records published after the last saved snapshot into it (the bookmark)."""
        rows: dict[str, Any] = dict(self.bookmark.get("rows") or {})
        snapshot = int(self.bookmark.get("snapshot", 0))
        newer = [r for r in records if isinstance(r.seq, int) and r.seq // SEQ_ROWS > snapshot]
        if not newer:
            return
        for record in newer:
            if record.op == "delete":
                rows.pop(record.key, None)
            else:
                rows[record.key] = dict(record.fields)
        top = max(int(r.seq) // SEQ_ROWS for r in newer)
        self.bookmark = {**self.bookmark, "rows": rows, "snapshot": top, "files": None}

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

    def _dead(
        self, file: str, sheet: Sheet, number: int, cells: dict[str, Any], exc: MappingError
    ) -> DeadLetter:
        where = {
            "file": file,
            "sheet": sheet.name,
            "row": number,
            "column": exc.column,
            "text": exc.text,
        }
        payload = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                   for k, v in cells.items()}
        return DeadLetter(str(exc), exc.field, payload, self.config.id, where=where)


def _merged(field: str, column: str, rng: str) -> MappingError:
    return MappingError(
        field, column, "",
        f"cell is part of merged range {rng}: its value sits in the range's "
        "first cell; unmerge so that each row holds its own value",
    )
