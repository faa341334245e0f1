"""Source columns → canonical field names, with type conversion.

A mapping turns one source row (a dict keyed by column name) into the
canonical `fields` dict of a ChangeRecord. Every output value is JSON-native
(str, int, float, bool or None; dates as ISO strings) so that a connector can
keep it in its bookmark and compare it after a JSON round trip.

A field reads one column (converted to its type, dates in the column's
DateStyle), or translates the column's values through a `map` (source value
→ canonical value, with an optional default), or is a constant (`value`).
Nothing here evaluates user text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.dates import DateStyle, parse_date, parse_datetime, readings, to_iso
from connectors.observe import Observed

FIELD_TYPES = ("string", "number", "integer", "date", "datetime", "bool")

_TRUE = {"true", "t", "yes", "y", "1", "on", "是", "对", "√", "✓"}
_FALSE = {"false", "f", "no", "n", "0", "off", "否", "错", "×", "✗"}
# Currency marks people type into amount cells; stripped before parsing.
_CURRENCY = re.compile(
    r"^(?:[¥$€£₩]|CNY|RMB|USD|EUR|HKD)\s*|\s*(?:元|CNY|RMB|USD|EUR|HKD)$", re.IGNORECASE
)
_PLAIN_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GROUPED_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_MAX_EXACT_INT = 2**53  # beyond this a float no longer holds every integer


class MappingError(ValueError):
    """A cell that could not become its canonical field."""

    def __init__(self, field: str, column: str, text: str, reason: str) -> None:
        super().__init__(f"field {field!r} (column {column!r}): {reason}")
        self.field = field
        self.column = column
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One canonical field, read from one source column, or a constant (`column` None).

    `map` holds source texts (see `map_key`) and the canonical values they stand for, already
    of the field's type; `default` (when `has_default`) stands for a text the map lacks."""

    name: str
    column: str | None
    type: str = "string"
    dates: DateStyle | None = None
    map: Mapping[str, Any] | None = None
    default: Any = None
    has_default: bool = False
    value: Any = None  # the constant of a field without column, of the field's type

    @property
    def plain(self) -> bool:
        """A column converted to its type, nothing more (the reader's shortcuts apply)."""
        return self.column is not None and self.map is None


Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """The canonical fields of one connector; `default_tz` applies to naive times."""

    specs: tuple[FieldSpec, ...]
    default_tz: tzinfo = UTC
    # `connectors check` sets it to learn what the columns hold (date orders, unmapped values).
    observed: Observed | None = field(default=None, compare=False)
    # One converter per spec, built once: mapping runs for every cell of every row.
    _converters: tuple[Converter, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        convs = tuple(cell_converter(s, self.default_tz, self.observed) for s in self.specs)
        object.__setattr__(self, "_converters", convs)

    def columns(self) -> list[str]:
        """Source columns this mapping reads, in order, without repeats."""
        return list(dict.fromkeys(spec.column for spec in self.specs if spec.column is not None))

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Map one row; raise MappingError naming the first cell that does not convert."""
        out: dict[str, Any] = {}
        first: MappingError | None = None
        for spec, conv in zip(self.specs, self._converters, strict=True):
            if spec.column is None:
                out[spec.name] = spec.value
                continue
            try:
                value = row[spec.column]
            except KeyError:
                raise MappingError(spec.name, spec.column, "", "the source has no such column") from None
            if self.observed is None:
                out[spec.name] = conv(value)
                continue
            try:  # a check sees every cell of a row, also after one that fails
                out[spec.name] = conv(value)
            except MappingError as exc:
                first = first or exc
        if first is not None:
            raise first
        return out

    def reader(self, columns: Sequence[str]) -> Callable[[Sequence[Sequence[Any]]], list[dict[str, Any] | MappingError]]:
        """`apply` for a batch of rows given as tuples of `columns` (a database cursor's rows):
        per row its fields, or the MappingError `apply` raises for it.

        It works a column at a time: the common cells of a type (see `_COLUMN`) convert in
        one comprehension, the others one by one; a call per cell was a fifth of a row's cost."""
        index = {column: i for i, column in enumerate(columns)}
        if any(spec.column is not None and spec.column not in index for spec in self.specs):
            def each(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any] | MappingError]:
                out: list[dict[str, Any] | MappingError] = []
                for row in rows:
                    try:
                        out.append(self.apply(dict(zip(columns, row, strict=True))))
                    except MappingError as exc:  # the first cell that does not convert
                        out.append(exc)
                return out

            return each
        names = [spec.name for spec in self.specs]
        plan = [(index[spec.column] if spec.column is not None else 0,
                 _COLUMN.get(spec.type, _none_common) if spec.plain else _common_of(spec), conv)
                for spec, conv in zip(self.specs, self._converters, strict=True)]

        def read(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any] | MappingError]:
            if not plan:
                return [{} for _ in rows]
            if not rows:
                return []
            cells = list(zip(*rows, strict=True))
            failed: dict[int, MappingError] = {}
            converted = []
            for i, common, conv in plan:
                column = cells[i]
                values = common(column)
                if _OTHER in values:
                    for j, value in enumerate(values):
                        if value is _OTHER:
                            try:
                                values[j] = conv(column[j])
                            except MappingError as exc:
                                failed.setdefault(j, exc)  # specs in order: the first one, as apply
                                values[j] = None
                converted.append(values)
            out: list[dict[str, Any] | MappingError] = [dict(zip(names, v, strict=True)) for v in zip(*converted)]
            for j, error in failed.items():
                out[j] = error
            return out

        return read


def _common_of(spec: FieldSpec) -> Callable[[Sequence[Any]], list[Any]]:
    """The reader's column shortcut for a spec that is not plain: constants are the constant,
    the rest go cell by cell."""
    if spec.column is None:
        value = spec.value
        return lambda cells: [value] * len(cells)
    return _none_common


def map_key(value: Any) -> str:
    """A source value as a `map:` key: whole numbers as their digits (1, 1.0, Decimal 1 and
    "1" are one key), anything else its trimmed text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            if value == int(value):
                return str(int(value))
        except (ValueError, OverflowError):
            pass
    return cell_text(value)


def cell_converter(spec: FieldSpec, default_tz: tzinfo, observed: Observed | None = None) -> Converter:
    """`convert` for the cells of one spec, raising MappingError; the common database types
    (str, Decimal, int, date) take a shortcut. `observed` learns what `connectors check`
    reports: the day/month order of date texts, values a map lacks."""
    name, column, type_, style = spec.name, spec.column or "", spec.type, spec.dates
    if spec.column is None:
        constant = spec.value
        return lambda _value: constant
    if spec.map is not None:
        return _map_converter(spec, observed)
    watch_dates = observed is not None and type_ in ("date", "datetime")

    def general(value: Any) -> Any:
        if watch_dates and observed is not None:
            seen = readings(value)
            if seen is not None:
                observed.date_text(name, column, cell_text(value), seen, style)
        try:
            return convert(value, type_, default_tz, style)
        except ValueError as exc:
            raise MappingError(name, column, cell_text(value), str(exc)) from None

    def string(value: Any) -> Any:
        return (value.strip() or None) if type(value) is str else general(value)

    def number(value: Any) -> Any:
        kind = type(value)
        if kind is Decimal and value.is_finite():
            if value == value.to_integral_value():
                whole = int(value)
                return whole if -_MAX_EXACT_INT < whole < _MAX_EXACT_INT else float(value)
            return float(value)
        if kind is float and math.isfinite(value):  # what general() makes of it, faster
            return int(value) if value.is_integer() and -_MAX_EXACT_INT < value < _MAX_EXACT_INT else value
        return value if kind is int else general(value)

    def integer(value: Any) -> Any:
        return value if type(value) is int else general(value)

    def day(value: Any) -> Any:
        return value.isoformat() if type(value) is date else general(value)

    shortcuts = {"string": string, "number": number, "integer": integer, "date": day}
    return shortcuts.get(type_, general)


def _map_converter(spec: FieldSpec, observed: Observed | None) -> Converter:
    table = dict(spec.map or {})
    name, column = spec.name, spec.column or ""
    known = ", ".join(repr(k) for k in list(table)[:10]) + (", …" if len(table) > 10 else "")

    def mapped(value: Any) -> Any:
        if is_blank(value):
            return None
        text = map_key(value)
        if text in table:
            return table[text]
        if observed is not None:
            observed.unmapped(name, column, text, spec.has_default)
        if spec.has_default:
            return spec.default
        raise MappingError(name, column, text,
                           f"{text!r} is not in the field's map (it has {known}); add it to map: or give default:")

    return mapped


# Column shortcuts of cell_converter's: the cells of the common database types converted in one
# comprehension, _OTHER where the cell needs its converter.
_OTHER: Any = object()
_INF = math.inf


def _strings(cells: Sequence[Any]) -> list[Any]:
    return [(v.strip() or None) if type(v) is str else _OTHER for v in cells]


def _days(cells: Sequence[Any]) -> list[Any]:
    return [v.isoformat() if type(v) is date else _OTHER for v in cells]


def _numbers(cells: Sequence[Any]) -> list[Any]:
    return [(int(v) if v.is_integer() and -_MAX_EXACT_INT < v < _MAX_EXACT_INT else v)
            if type(v) is float and -_INF < v < _INF else v if type(v) is int else _OTHER for v in cells]


def _integers(cells: Sequence[Any]) -> list[Any]:
    return [v if type(v) is int else _OTHER for v in cells]


def _none_common(cells: Sequence[Any]) -> list[Any]:
    return [_OTHER] * len(cells)


_COLUMN: dict[str, Callable[[Sequence[Any]], list[Any]]] = {
    "string": _strings, "date": _days, "number": _numbers, "integer": _integers,
}


def convert(value: Any, type_: str, default_tz: tzinfo = UTC, style: DateStyle | None = None) -> Any:
    """Convert one cell to a JSON-native value of `type_`; blank → None. `style` reads the
    texts of date and datetime cells."""
    if is_blank(value):
        return None
    if type_ == "string":
        return to_iso(value) if isinstance(value, date) else cell_text(value)
    if type_ == "number":
        return _number(value)
    if type_ == "integer":
        number = _number(value)
        if isinstance(number, float):
            raise ValueError(f"not a whole number: {cell_text(value)!r}")
        return number
    if type_ == "date":
        parsed = parse_date(value, default_tz, style)
        # A datetime in a date column (Excel's "2025/3/5 0:00") keeps only its day.
        return to_iso(parsed.date() if isinstance(parsed, datetime) else parsed)
    if type_ == "datetime":
        return to_iso(parse_datetime(value, default_tz, style))
    if type_ == "bool":
        return _bool(value)
    raise ValueError(f"unknown field type {type_!r}; known: {', '.join(FIELD_TYPES)}")


def ts_of(spec: FieldSpec, value: Any, default_tz: tzinfo) -> datetime | None:
    """A connector's `ts:` cell as the instant its change happened (naive = `default_tz`);
    None for a blank cell (the connector's own time applies); MappingError if unreadable."""
    if is_blank(value):
        return None
    try:
        return parse_datetime(value, default_tz, spec.dates)
    except ValueError as exc:
        raise MappingError("ts", spec.column or "", cell_text(value), str(exc)) from None


def make_key(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """The business key: the key columns' text joined with ':'; a blank part is an error."""
    parts = []
    for column in columns:
        value = row.get(column)
        if is_blank(value):
            raise MappingError("key", column, cell_text(value), "the key column is blank")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 1001.0 from a numeric cell is key "1001"
        parts.append(to_iso(value) if isinstance(value, date) else cell_text(value))
    return ":".join(parts)


def key_reader(columns: Sequence[str], names: Sequence[str]) -> Callable[[Sequence[Any]], str]:
    """`make_key` for rows given as tuples of `names`."""
    index = [names.index(column) for column in columns]
    if len(index) == 1:
        (i,), (column,) = index, columns

        def single(row: Sequence[Any]) -> str:
            value = row[i]
            if type(value) is str and (text := value.strip()):
                return text  # what make_key makes of a text key, without the detour
            return make_key({column: value}, columns)

        return single
    return lambda row: make_key({column: row[i] for column, i in zip(columns, index, strict=True)}, columns)


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: Any) -> str:
    """A cell as a person would read it (for messages and string fields)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value).strip()


def jsonable(value: Any) -> Any:
    """A source value in a form json.dumps accepts (for dead-letter payloads)."""
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, date):
        return to_iso(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    return cell_text(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")  # noqa: TRY004 - a dead letter, not a bug
    if isinstance(value, (int, float, Decimal)):
        # str() first: Decimal(0.1) would carry the float's binary noise.
        exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        return _normalise(exact, value)
    text = unicodedata.normalize("NFKC", cell_text(value)).replace(" ", "")
    negative = text.startswith("(") and text.endswith(")")  # accounting style (1,234.00)
    if negative:
        text = text[1:-1]
    sign, text = _split_sign(text)
    text = _CURRENCY.sub("", text)
    if not sign:  # ¥-12.50 puts the sign after the currency mark
        sign, text = _split_sign(text)
    negative = negative != (sign == "-")
    if _GROUPED_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    elif not _PLAIN_NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {cell_text(value)!r}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {cell_text(value)!r}") from None
    return _normalise(-number if negative else number, value)


def _split_sign(text: str) -> tuple[str, str]:
    return (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)


def _normalise(number: Decimal, shown: Any) -> int | float:
    if not number.is_finite():
        raise ValueError(f"not a finite number: {cell_text(shown)!r}")
    # Whole numbers stay ints so that "100" and 100 compare equal after JSON.
    if number == number.to_integral_value() and abs(number) < _MAX_EXACT_INT:
        return int(number)
    return float(number)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    text = unicodedata.normalize("NFKC", cell_text(value)).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {cell_text(value)!r}")
