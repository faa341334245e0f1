"""Checks of one connectors-file entry, each problem recorded with its position.

`Entry` wraps one YAML mapping (with positions) and offers typed getters that
record a `file:line:col` problem instead of raising, so that every mistake of
a file is reported at once.
"""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.mapping import FIELD_TYPES, FieldMapping, FieldSpec
from orderwatch.record import ENTITIES
from orderwatch.yamlsrc import Map, Pos

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names the bookmark file
_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Entry:
    """Validates one mapping of the connectors file, collecting problems."""

    def __init__(self, m: Map, base: Path, problems: list[tuple[Pos, str]]) -> None:
        self.m, self.base, self.problems = m, base, problems
        self.ok = True

    def fail(self, key: str | None, message: str) -> None:
        self.problems.append((self.m.at(key) if key else self.m.pos, message))
        self.ok = False

    def known(
        self, required: tuple[str, ...], optional: tuple[str, ...], within: str, who: str
    ) -> None:
        """Report unknown keys (typos) and missing required ones."""
        known = required + optional
        for key in self.m:
            if key not in known:
                self.fail(key, f"unknown key {key!r} for {within}; known: {', '.join(known)}")
        for key in required:
            if key not in self.m:
                self.fail(None, f"{who} needs {key!r}")

    def text(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.m.get(key)
        if value is None:
            return None  # a missing required key was reported by known()
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"{key} must be a non-empty string, got {value!r}")
            return None
        if pattern and not pattern.fullmatch(value):
            self.fail(key, f"{key} {value!r} may only hold letters, digits, '_', '.' and '-'")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.m.get(key, default)
        if value not in options:
            self.fail(key, f"{key} must be one of {', '.join(options)}, got {value!r}")
            return default
        return str(value)

    def positive_int(self, key: str, default: int) -> int:
        value = self.m.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, f"{key} must be a positive integer, got {value!r}")
            return default
        return value

    def seconds(self, key: str) -> float | None:
        """A duration: a number of seconds or text like 30s, 10m, 2h, 1d."""
        value = self.m.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None or int(match[1]) == 0:
            self.fail(key, f"{key} is a duration like 30s, 10m, 2h or 1d, got {value!r}")
            return None
        return float(int(match[1]) * _UNITS[match[2]])

    def entity(self) -> str | None:
        value = self.text("entity")
        if value is not None and value not in ENTITIES:
            self.fail("entity", f"unknown entity {value!r}; known: {', '.join(ENTITIES)}")
        return value

    def columns(self, key: str) -> tuple[str, ...] | None:
        value = self.m.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        names = [v.strip() for v in items if isinstance(v, str) and v.strip()]
        if not items or len(names) != len(items):
            self.fail(key, f"{key} is a column name or a list of column names")
            return None
        return tuple(names)

    def timezone(self) -> tzinfo:
        name = self.m.get("timezone")
        if name is None:
            return UTC
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {name!r}; use an IANA name like Asia/Shanghai"
            self.fail("timezone", msg)
            return UTC

    def fields(self, tz: tzinfo, key: str = "fields") -> FieldMapping | None:
        value = self.m.get(key)
        if value is None:
            return None
        if not isinstance(value, Map) or not value:
            self.fail(key, f"{key} maps canonical names to columns: {{supplier: 供应商, …}}")
            return None
        specs = []
        for name, spec in value.items():
            where = value.at(name)
            if isinstance(spec, str) and spec.strip():
                specs.append(FieldSpec(name, spec.strip()))
                continue
            if not isinstance(spec, Map):
                msg = f"field {name!r}: give a column name or {{column: …, type: …}}"
                self.problems.append((where, msg))
                self.ok = False
                continue
            extra = sorted(spec.keys() - {"column", "type"})
            column, type_ = spec.get("column"), spec.get("type", "string")
            if extra:
                msg = f"field {name!r}: unknown key {extra[0]!r}; known: column, type"
                self.problems.append((spec.at(extra[0]), msg))
            elif not isinstance(column, str) or not column.strip():
                msg = f"field {name!r} needs 'column', the source column name"
                self.problems.append((where, msg))
            elif type_ not in FIELD_TYPES:
                msg = f"field {name!r}: unknown type {type_!r}; known: {', '.join(FIELD_TYPES)}"
                self.problems.append((spec.at("type"), msg))
            else:
                specs.append(FieldSpec(name, column.strip(), type_))
                continue
            self.ok = False
        return FieldMapping(tuple(specs), tz)

    def sub(self, key: str) -> Entry | None:
        """A nested mapping (e.g. `lines:`) checked the same way, into the same problems."""
        value = self.m.get(key)
        if value is None:
            return None
        if not isinstance(value, Map):
            self.fail(key, f"{key} is a mapping")
            return None
        child = Entry(value, self.base, self.problems)
        return child
