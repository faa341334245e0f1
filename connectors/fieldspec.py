"""One field of a connector's `fields:` as written in the connectors file, checked into a FieldSpec.

    order_date: {column: OrderDate, type: date, format: "%m/%d/%Y"}
    created_at: {column: Created, type: datetime, monthfirst: true}
    status:     {column: StatusCode, map: {1: draft, 2: approved, 3: closed}, default: open}
    warehouse:  {value: WH1}

Every value a map or a constant gives is converted to the field's type here,
at load, so that a wrong one is a `file:line:col` problem and not a dead
letter per row.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from connectors.dates import ORDERS, DateStyle, check_format
from connectors.mapping import FIELD_TYPES, FieldSpec, convert
from orderwatch.yamlsrc import Map, Pos, Seq, short

DATE_TYPES = ("date", "datetime")
DATE_KEYS = ("format", *ORDERS)
FIELD_KEYS = ("column", "type", *DATE_KEYS, "map", "default", "value")


def read_date_style(m: Map, within: str, problems: list[tuple[Pos, str]]) -> DateStyle | None:
    """`format` (one strptime pattern or a list) and `monthfirst`/`dayfirst` of a mapping;
    None when it gives none of them. Problems are recorded (and the style left out)."""
    before = len(problems)
    formats: tuple[str, ...] = ()
    raw = m.get("format")
    if raw is not None:
        items = list(raw) if isinstance(raw, Seq) else [raw]
        if not items or not all(isinstance(f, str) and f.strip() for f in items):
            problems.append((m.at("format"), f"{within}: format is a strptime pattern like '%m/%d/%Y' or a list of them"))
        else:
            for fmt in items:
                why = check_format(fmt)
                if why:
                    problems.append((m.at("format"), f"{within}: {why}"))
            formats = tuple(items)
    orders = [o for o in ORDERS if o in m]
    for o in orders:
        if m[o] is not True:
            problems.append((m.at(o), f"{within}: {o} is true or absent, got {short(m[o])}"))
    if len(orders) > 1:
        problems.append((m.at(orders[1]), f"{within}: give monthfirst or dayfirst, not both"))
    if len(problems) > before:
        return None
    if not formats and not orders:
        return None
    return DateStyle(formats, orders[0] if orders else None)


class FieldReader:
    """Checks one field given as a mapping ({column, type, …}); problems go to `problems`."""

    def __init__(self, name: str, m: Map, tz: tzinfo, problems: list[tuple[Pos, str]]) -> None:
        self.name, self.m, self.tz, self.problems = name, m, tz, problems
        self.ok = True

    def fail(self, key: str | None, message: str, pos: Pos | None = None) -> None:
        where = pos or (self.m.at(key) if key else self.m.pos)
        self.problems.append((where, f"field {self.name!r}: {message}"))
        self.ok = False

    def spec(self, declared_type: str | None, dates: DateStyle | None) -> FieldSpec | None:
        """The FieldSpec, or None when the field has problems (all recorded). `declared_type`:
        the custom field's declared type; `dates`: the connector's date style."""
        m = self.m
        extra = sorted(set(m) - set(FIELD_KEYS))
        if extra:
            self.fail(extra[0], f"unknown key {extra[0]!r}; known: {', '.join(FIELD_KEYS)}")
            return None
        type_ = self._type(declared_type)
        style = dates
        if any(k in m for k in DATE_KEYS):
            own = read_date_style(m, f"field {self.name!r}", self.problems)
            # The field's own keys win; what it does not say, the connector's `dates:` says.
            style = own and DateStyle(own.formats or (dates.formats if dates else ()),
                                      own.order or (dates.order if dates else None))
            if own is None:
                self.ok = False
            elif type_ not in DATE_TYPES:
                self.fail(next(k for k in DATE_KEYS if k in m), f"format, monthfirst and dayfirst are for "
                          f"date and datetime fields; this one is {type_} (add type: date)")
        if type_ not in DATE_TYPES:
            style = None
        column = m.get("column")
        if "value" in m:
            for clash in ("column", "map", "default"):
                if clash in m:
                    self.fail(clash, f"'value' is a constant: give it without {clash!r}")
            constant = self._convert(m["value"], type_, style, "value")
            return FieldSpec(self.name, None, type_, value=constant) if self.ok else None
        if not isinstance(column, str) or not column.strip():
            self.fail("column" if "column" in m else None, "needs 'column', the source column name (or 'value', a constant)")
            return None
        table = self._map(type_, style)
        has_default = "default" in m
        if has_default and "map" not in m:
            self.fail("default", "'default' is the value for what 'map' lacks: give 'map' too")
        default = self._convert(m["default"], type_, style, "default") if has_default else None
        if not self.ok:
            return None
        return FieldSpec(self.name, column.strip(), type_, style, table, default, has_default)

    def _type(self, declared_type: str | None) -> str:
        type_ = self.m.get("type", declared_type or "string")
        if type_ not in FIELD_TYPES:
            self.fail("type", f"unknown type {short(type_)}; known: {', '.join(FIELD_TYPES)}")
            return "string"
        if declared_type is not None and type_ != declared_type:
            self.fail("type", f"declared as {declared_type} under fields:, mapped as {type_} here")
        return str(type_)

    def _map(self, type_: str, style: DateStyle | None) -> dict[str, Any] | None:
        if "map" not in self.m:
            return None
        table = self.m["map"]
        if not isinstance(table, Map) or not table:
            self.fail("map", "map is a mapping of source value → canonical value: {1: draft, 2: approved}")
            return None
        out: dict[str, Any] = {}
        for source, target in table.items():
            if source in ("True", "False"):
                # YAML reads yes, on, true… as true: the source value is lost. Quoted, it is kept.
                self.fail(None, f"map key {source} was read by YAML as yes/no; write the source value "
                          "in quotes ('yes', 'on', 'true')", table.at(source))
                continue
            if source.strip() != source or not source:
                self.fail(None, f"map key {source!r} has blanks around it; cells are compared trimmed",
                          table.at(source))
                continue
            if isinstance(target, (Map, Seq)):
                self.fail(None, f"map value for {source!r} is a single value, got {short(target)}",
                          table.at(source))
                continue
            try:
                out[source] = convert(target, type_, self.tz, style)
            except ValueError as exc:
                self.fail(None, f"map value for {source!r}: {exc}", table.at(source))
        return out

    def _convert(self, value: Any, type_: str, style: DateStyle | None, key: str) -> Any:
        if isinstance(value, (Map, Seq)):
            self.fail(key, f"{key} is a single value, got {short(value)}")
            return None
        try:
            return convert(value, type_, self.tz, style)
        except ValueError as exc:
            self.fail(key, f"{key}: {exc}")
            return None
