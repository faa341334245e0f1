"""Load and validate the connectors file; build connectors from it.

Every problem is reported at once, each as `file:line:col: message`. String
values may hold `${ENV_VAR}` (e.g. a database password); relative paths
resolve against the folder of the connectors file.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from connectors.base import Connector
from connectors.mapping import FIELD_TYPES, FieldMapping, FieldSpec
from connectors.spreadsheet import SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector
from orderwatch.record import ENTITIES
from orderwatch.yamlsrc import Map, Pos, Seq, SourceError, load_file, pos_of

ConnectorConfig = SqlConfig | SpreadsheetConfig

# The keys each connector type accepts; anything else is a typo and an error.
REQUIRED = {
    "sql": ("id", "type", "entity", "key", "fields", "url", "cursor"),
    "spreadsheet": ("id", "type", "entity", "key", "fields", "path"),
}
OPTIONAL = {
    "sql": ("table", "query", "batch_size", "actor", "timezone"),
    "spreadsheet": ("encoding", "delimiter", "actor", "timezone"),
}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names the bookmark file
_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> list[ConnectorConfig]:
    """Read a connectors file; raise SourceError listing every problem with its position."""
    path = Path(path)
    doc = load_file(path)
    problems: list[tuple[Pos, str]] = []
    _substitute(doc, os.environ if env is None else env, problems)
    top = Pos(str(path), 1, 1)
    if not isinstance(doc, Map) or not isinstance(doc.get("connectors"), Seq):
        raise SourceError([(pos_of(doc, top), "expected a mapping with a 'connectors:' list")])
    for extra in sorted(doc.keys() - {"connectors"}):
        problems.append((doc.at(extra), f"unknown key {extra!r}; known: connectors"))
    configs: list[ConnectorConfig] = []
    first_seen: dict[str, Pos] = {}
    entries: Seq = doc["connectors"]
    for index, entry in enumerate(entries):
        if not isinstance(entry, Map):
            problems.append((entries.item_pos[index], "each connector is a mapping (id, type, …)"))
            continue
        id_ = entry.get("id")
        if isinstance(id_, str) and id_ in first_seen:
            first = first_seen[id_]
            problems.append((entry.at("id"), f"duplicate id {id_!r} (first at {first})"))
        elif isinstance(id_, str):
            first_seen[id_] = entry.at("id")
        cfg = _Entry(entry, path.resolve().parent, problems).build()
        if cfg is not None:
            configs.append(cfg)
    if problems:
        raise SourceError(sorted(problems, key=lambda p: (p[0].line, p[0].col)))
    return configs


def build_connector(cfg: ConnectorConfig, bookmark: dict[str, Any] | None = None) -> Connector:
    """The connector for one config entry, resuming from `bookmark`."""
    if isinstance(cfg, SqlConfig):
        return SqlConnector(cfg, bookmark)
    return SpreadsheetConnector(cfg, bookmark)


def _substitute(node: Any, env: Mapping[str, str], problems: list[tuple[Pos, str]]) -> None:
    """Replace ${NAME} in every string value, in place (positions survive)."""
    if isinstance(node, Map):
        slots: list[tuple[Any, Pos]] = [(k, node.at(k)) for k in node]
    elif isinstance(node, Seq):
        slots = [(i, node.item_pos[i]) for i in range(len(node))]
    else:
        return
    for slot, pos in slots:
        value = node[slot]
        if not isinstance(value, str):
            _substitute(value, env, problems)
            continue

        def replace(match: re.Match[str], pos: Pos = pos) -> str:
            name = match[1]
            if not _ENV_NAME.fullmatch(name):
                problems.append((pos, f"${{{name}}} is not an environment variable name"))
                return match[0]
            if name not in env:
                problems.append((pos, f"environment variable {name} is not set"))
                return match[0]
            return env[name]

        node[slot] = _ENV.sub(replace, value)


class _Entry:
    """Validates one entry of the `connectors:` list, collecting problems."""

    def __init__(self, m: Map, base: Path, problems: list[tuple[Pos, str]]) -> None:
        self.m, self.base, self.problems = m, base, problems
        self.ok = True

    def fail(self, key: str | None, message: str) -> None:
        self.problems.append((self.m.at(key) if key else self.m.pos, message))
        self.ok = False

    def build(self) -> ConnectorConfig | None:
        kind = self.m.get("type")
        if kind not in REQUIRED:
            where = "type" if "type" in self.m else None
            self.fail(where, f"type must be one of {', '.join(REQUIRED)}, got {kind!r}")
            return None
        known = REQUIRED[kind] + OPTIONAL[kind]
        for key in self.m:
            if key not in known:
                self.fail(key, f"unknown key {key!r} for type {kind}; known: {', '.join(known)}")
        for key in REQUIRED[kind]:
            if key not in self.m:
                self.fail(None, f"{kind} connector needs {key!r}")
        id_ = self.text("id", pattern=_ID)
        entity = self.entity()
        key_columns = self.columns("key")
        actor = self.text("actor")
        tz = self.timezone()
        mapping = self.fields(tz)
        if kind == "sql":
            return self.sql(id_, entity, key_columns, mapping, actor, tz)
        path = self.text("path")
        encoding = self.text("encoding") or "auto"
        if encoding != "auto":
            try:
                codecs.lookup(encoding)
            except LookupError:
                self.fail("encoding", f"unknown encoding {encoding!r}; use auto, utf-8, gb18030, …")
        delimiter = self.text("delimiter") or ","
        if len(delimiter) != 1:
            self.fail("delimiter", f"delimiter is one character, got {delimiter!r}")
        if not self.ok or id_ is None or entity is None or key_columns is None or mapping is None:
            return None
        if path is None:
            return None
        return SpreadsheetConfig(
            id=id_,
            entity=entity,
            path=self.base / path,
            key=key_columns,
            mapping=mapping,
            encoding=encoding,
            delimiter=delimiter,
            actor=actor,
            timezone=tz,
        )

    def sql(
        self,
        id_: str | None,
        entity: str | None,
        key_columns: tuple[str, ...] | None,
        mapping: FieldMapping | None,
        actor: str | None,
        tz: tzinfo,
    ) -> SqlConfig | None:
        if "table" not in self.m and "query" not in self.m:
            self.fail(None, "sql connector needs 'table' or 'query'")
        elif "table" in self.m and "query" in self.m:
            self.fail("query", "give 'table' or 'query', not both")
        table, query = self.text("table"), self.text("query")
        url, cursor = self.sql_url(), self.text("cursor")
        batch = self.m.get("batch_size", 1000)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            self.fail("batch_size", f"batch_size must be a positive integer, got {batch!r}")
        if not self.ok or id_ is None or entity is None or key_columns is None or mapping is None:
            return None
        if url is None or cursor is None:
            return None
        return SqlConfig(
            id=id_,
            entity=entity,
            url=url,
            key=key_columns,
            cursor=cursor,
            mapping=mapping,
            table=table,
            query=query,
            batch_size=batch,
            actor=actor,
            timezone=tz,
        )

    def text(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.m.get(key)
        if value is None:
            return None  # a missing required key was reported by build()
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"{key} must be a non-empty string, got {value!r}")
            return None
        if pattern and not pattern.fullmatch(value):
            self.fail(key, f"{key} {value!r} may only hold letters, digits, '_', '.' and '-'")
        return value

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

    def fields(self, tz: tzinfo) -> FieldMapping | None:
        value = self.m.get("fields")
        if value is None:
            return None
        if not isinstance(value, Map) or not value:
            self.fail("fields", "fields maps canonical names to columns: {supplier: 供应商, …}")
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

    def sql_url(self) -> str | None:
        url = self.text("url")
        if url is None:
            return None
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            self.fail("url", f"not an SQLAlchemy URL: {exc}")
            return None
        db = parsed.database or ""
        # A relative SQLite file is relative to this file, not to wherever orderwatch runs.
        is_file = db not in ("", ":memory:") and not db.startswith("file:")
        if parsed.drivername.startswith("sqlite") and is_file and not Path(db).is_absolute():
            parsed = parsed.set(database=str(self.base / db))
        return parsed.render_as_string(hide_password=False)
