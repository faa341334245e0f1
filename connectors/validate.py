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

from connectors.dates import DateStyle
from connectors.fieldspec import DATE_KEYS, DATE_TYPES, FieldReader, read_date_style
from connectors.mapping import FieldMapping, FieldSpec
from engine.fields import NONE as NO_FIELDS
from engine.fields import Declared, FieldDecl
from engine.schema import canonical_fields, canonical_line_fields
from orderwatch.record import ENTITIES
from orderwatch.yamlsrc import Map, Pos

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names the bookmark file
_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Entry:
    """Validates one mapping of the connectors file, collecting problems."""

    def __init__(self, m: Map, base: Path, problems: list[tuple[Pos, str]],
                 declared: Declared = NO_FIELDS) -> None:
        self.m, self.base, self.problems = m, base, problems
        self.declared = declared  # the file's custom fields (engine/fields.py)
        self.dates: DateStyle | None = None  # the entry's `dates:`, once read
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

    def fields(self, tz: tzinfo, entity: str | None, key: str = "fields", line: bool = False,
               dates: DateStyle | None = None) -> FieldMapping | None:
        """The mapping under `key`: canonical or declared names of `entity` (of its line with
        `line`) → a column, a `map:` of a column, or a constant `value:`."""
        value = self.m.get(key)
        if value is None:
            return None
        if not isinstance(value, Map) or not value:
            self.fail(key, f"{key} maps canonical names to columns: {{supplier: 供应商, …}}")
            return None
        specs = []
        for name, spec in value.items():
            where = value.at(name)
            decl = self._field_name(name, where, entity, line)
            declared_type = decl.type if decl is not None else None
            if isinstance(spec, str) and spec.strip():
                type_ = declared_type or "string"
                specs.append(FieldSpec(name, spec.strip(), type_, dates if type_ in DATE_TYPES else None))
                continue
            if not isinstance(spec, Map):
                self.problems.append((where, f"field {name!r}: give a column name or {{column: …, type: …}}"))
                self.ok = False
                continue
            built = FieldReader(name, spec, tz, self.problems).spec(declared_type, dates)
            if built is None:
                self.ok = False
            else:
                specs.append(built)
        return FieldMapping(tuple(specs), tz)

    def _field_name(self, name: str, where: Pos, entity: str | None, line: bool) -> FieldDecl | None:
        """The declaration of a custom field name; a name neither canonical nor declared is
        a problem (a typo must not pass: `delivery_date` would map to nothing a rule reads)."""
        if entity is None or entity not in ENTITIES:
            return None  # the entity's own problem is reported
        declared = self.declared.of(entity, line)
        canonical = canonical_line_fields(entity) if line else canonical_fields(entity)
        if name in canonical:
            return None
        if name in declared:
            return declared[name]
        scope = f"a line of {entity}" if line else entity
        names = sorted(canonical | set(declared))
        where_to = f"fields: {{{entity}: {{lines: {{{name}: …}}}}}}" if line else f"fields: {{{entity}: {{{name}: …}}}}"
        message = (f"{name!r} is not a field of {scope}; known: {', '.join(names)} "
                   f"(a field of your own is declared first: {where_to})")
        self.problems.append((where, message))
        self.ok = False
        return None

    def ts(self, tz: tzinfo) -> FieldSpec | None:
        """`ts:` — the column saying when a row's change happened (a name, or {column, format,
        monthfirst|dayfirst}); read as a datetime in the connector's `dates:` and timezone."""
        value = self.m.get("ts")
        if value is None:
            return None
        if isinstance(value, str) and value.strip():
            return FieldSpec("ts", value.strip(), "datetime", self.dates)
        if not isinstance(value, Map) or "value" in value or "map" in value:
            self.fail("ts", "ts is a column name, or {column: …, format: …}: when the row changed")
            return None
        spec = FieldReader("ts", value, tz, self.problems).spec("datetime", self.dates)
        if spec is None:
            self.ok = False
        return spec

    def date_style(self, key: str = "dates") -> DateStyle | None:
        """The connector's `dates:` ({format, monthfirst|dayfirst}): its date fields' default."""
        value = self.m.get(key)
        if value is None:
            return None
        if not isinstance(value, Map):
            self.fail(key, f"{key} is a mapping: {{format: '%m/%d/%Y', monthfirst: true}}")
            return None
        before = len(self.problems)
        for k in sorted(set(value) - set(DATE_KEYS)):
            self.problems.append((value.at(k), f"{key}: unknown key {k!r}; known: {', '.join(DATE_KEYS)}"))
        style = read_date_style(value, key, self.problems)
        if len(self.problems) > before:
            self.ok = False
        return style

    def sub(self, key: str) -> Entry | None:
        """A nested mapping (e.g. `lines:`) checked the same way, into the same problems."""
        value = self.m.get(key)
        if value is None:
            return None
        if not isinstance(value, Map):
            self.fail(key, f"{key} is a mapping")
            return None
        child = Entry(value, self.base, self.problems, self.declared)
        return child
