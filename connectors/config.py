"""Load and validate the connectors file; build connectors from it.

Every problem is reported at once, each as `file:line:col: message`. String
values may hold `${ENV_VAR}` (e.g. a database password); relative paths
resolve against the folder of the connectors file. An sql entry may name a
`preset` (presets.py) whose keys it then only needs to override. An sql
`query:` (and a `lines:` query) must be a single SELECT as its database reads
it (sqltext.py). A top-level `fields:` declares the site's custom fields (or
names a file that does, engine/fields.py); a mapped name that is neither
canonical nor declared is a problem.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors import sqltext
from connectors.base import Connector
from connectors.debezium import DebeziumConfig, DebeziumConnector
from connectors.lines import LinesConfig
from connectors.mapping import FieldMapping
from connectors.presets import apply_preset
from connectors.spreadsheet import DEFAULT_PATTERNS, SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector, lookback_of
from connectors.validate import ID_PATTERN, Entry
from connectors.webhook import AUTH_MODES, WebhookConfig, WebhookConnector
from engine.fields import NONE as NO_FIELDS
from engine.fields import parse_declared
from orderwatch.yamlsrc import Map, Pos, Seq, SourceError, load_file, pos_of

ConnectorConfig = SqlConfig | SpreadsheetConfig | DebeziumConfig | WebhookConfig

# The keys each connector type accepts; anything else is a typo and an error.
REQUIRED = {
    "sql": ("id", "type", "entity", "key", "fields", "url", "cursor"),
    "spreadsheet": ("id", "type", "entity", "key", "fields", "path"),
    "debezium": ("id", "type", "entity", "key", "fields", "topic"),
    "webhook": ("id", "type", "auth"),
}
OPTIONAL = {
    "sql": ("table", "query", "batch_size", "actor", "timezone", "lookback", "reconcile",
            "lines", "preset", "dates", "ts"),
    "spreadsheet": ("encoding", "delimiter", "actor", "timezone", "sheet", "header_row",
                    "pattern", "settle", "dates", "ts", "lines"),
    "debezium": ("bootstrap", "start", "batch_size", "actor", "timezone", "dates", "op"),
    "webhook": ("entity", "key", "fields", "actor", "timezone", "listen", "path", "secret",
                "token", "signature_header", "max_bytes", "seq", "op", "ts", "dates"),
}
LINES_KEYS = ("table", "query", "parent", "match", "order_by", "fields")
_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Context:
    """What connectors need from the process running them."""

    bootstrap: str | None = None  # the orderwatch broker (debezium's default)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> list[ConnectorConfig]:
    """Read a connectors file; raise SourceError listing every problem with its position."""
    path = Path(path)
    doc = load_file(path)
    problems: list[tuple[Pos, str]] = []
    _substitute(doc, os.environ if env is None else env, problems)
    top = Pos(str(path), 1, 1)
    if not isinstance(doc, Map) or not isinstance(doc.get("connectors"), Seq):
        raise SourceError([(pos_of(doc, top), "expected a mapping with a 'connectors:' list")])
    for extra in sorted(doc.keys() - {"connectors", "fields"}):
        problems.append((doc.at(extra), f"unknown key {extra!r}; known: connectors, fields"))
    declared = NO_FIELDS
    if "fields" in doc:
        declared = parse_declared(doc["fields"], doc.at("fields"), path.resolve().parent, problems)
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
        if "preset" in entry:
            entry = apply_preset(entry, problems)
            if entry is None:
                continue
        cfg = _build(Entry(entry, path.resolve().parent, problems, declared))
        if cfg is not None:
            configs.append(cfg)
    if problems:
        raise SourceError(sorted(problems, key=lambda p: (p[0].file != str(path), p[0].line, p[0].col)))
    return configs


def build_connector(
    cfg: ConnectorConfig, bookmark: dict[str, Any] | None = None, context: Context | None = None
) -> Connector:
    """The connector for one config entry, resuming from `bookmark`."""
    if isinstance(cfg, SqlConfig):
        return SqlConnector(cfg, bookmark)
    if isinstance(cfg, SpreadsheetConfig):
        return SpreadsheetConnector(cfg, bookmark)
    if isinstance(cfg, DebeziumConfig):
        return DebeziumConnector(cfg, bookmark, (context or Context()).bootstrap)
    return WebhookConnector(cfg, bookmark)


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


def _build(e: Entry) -> ConnectorConfig | None:
    kind = e.m.get("type")
    if kind not in REQUIRED:
        where = "type" if "type" in e.m else None
        e.fail(where, f"type must be one of {', '.join(REQUIRED)}, got {kind!r}")
        return None
    e.known(REQUIRED[kind], OPTIONAL[kind], f"type {kind}", f"{kind} connector")
    common: dict[str, Any] = {
        "id": e.text("id", pattern=ID_PATTERN),
        "entity": e.entity(),
        "key": e.columns("key"),
        "actor": e.text("actor"),
        "timezone": e.timezone(),
    }
    e.dates = e.date_style()
    mapping = e.fields(common["timezone"], common["entity"], dates=e.dates)
    builders = {"sql": _sql, "spreadsheet": _spreadsheet, "debezium": _debezium, "webhook": _webhook}
    return builders[kind](e, common, mapping)


def _complete(e: Entry, values: dict[str, Any], required: tuple[str, ...]) -> bool:
    return e.ok and all(values.get(k) is not None for k in required)


def _sql(e: Entry, common: dict[str, Any], mapping: Any) -> SqlConfig | None:
    if "table" not in e.m and "query" not in e.m:
        e.fail(None, "sql connector needs 'table' or 'query'")
    elif "table" in e.m and "query" in e.m:
        e.fail("query", "give 'table' or 'query', not both")
    url = _sql_url(e)
    values: dict[str, Any] = {
        **common,
        "mapping": mapping,
        "table": e.text("table"),
        "query": _query(e, url),
        "url": url,
        "cursor": e.text("cursor"),
        "batch_size": e.positive_int("batch_size", 1000),
        "reconcile": e.seconds("reconcile"),
        "lookback": _lookback(e),
        "lines": _lines(e, common, url),
        "ts": e.ts(common["timezone"]),
    }
    if not _complete(e, values, ("id", "entity", "key", "mapping", "url", "cursor")):
        return None
    return SqlConfig(**values)


def _query(e: Entry, url: str | None) -> str | None:
    """The entry's query, checked to be a single SELECT as the URL's database reads it (with a
    URL that does not parse, that problem is reported and this check waits for a good one)."""
    query = e.text("query")
    if query is not None and url is not None:
        try:
            sqltext.select_body(query, sqltext.dialect_of(url))
        except sqltext.QueryError as exc:
            e.fail("query", f"query: {exc}")
    return query


def _lookback(e: Entry) -> Any:
    value = e.m.get("lookback")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value in (0, ""):
        e.fail("lookback", f"lookback is a duration (10m) or a number of ids (1000), got {value!r}")
        return None
    try:
        return lookback_of(value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        e.fail("lookback", f"lookback: {exc}")
        return None


def _lines(e: Entry, common: dict[str, Any], url: str | None) -> LinesConfig | None:
    sub = e.sub("lines")
    if sub is None:
        return None
    optional = tuple(k for k in LINES_KEYS if k not in ("parent", "fields"))
    sub.known(("parent", "fields"), optional, "lines", "lines")
    if ("table" in sub.m) == ("query" in sub.m):
        sub.fail(None, "lines needs 'table' or 'query' (one of them)")
    order_by = sub.columns("order_by") or ()
    key = common.get("key") or ()
    values: dict[str, Any] = {
        "parent": sub.text("parent"),
        "match": sub.text("match") or (key[0] if key else None),
        "mapping": sub.fields(common["timezone"], common["entity"], line=True, dates=e.dates),
        "table": sub.text("table"),
        "query": _query(sub, url),
        "order_by": order_by,
    }
    if not sub.ok:
        e.ok = False
        return None
    if not _complete(sub, values, ("parent", "match", "mapping")):
        return None
    return LinesConfig(**values)


def _sheet_lines(e: Entry, common: dict[str, Any]) -> FieldMapping | None:
    """A spreadsheet's `lines: {fields: …}`: rows sharing a key are one order, these its line fields."""
    sub = e.sub("lines")
    if sub is None:
        return None
    sub.known(("fields",), (), "lines of a spreadsheet", "lines")
    mapping = sub.fields(common["timezone"], common["entity"], line=True, dates=e.dates)
    if not sub.ok:
        e.ok = False
    return mapping


def _sql_url(e: Entry) -> str | None:
    url = e.text("url")
    if url is None:
        return None
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        e.fail("url", f"not an SQLAlchemy URL: {exc}")
        return None
    db = parsed.database or ""
    # A relative SQLite file is relative to this file, not to wherever orderwatch runs.
    is_file = db not in ("", ":memory:") and not db.startswith("file:")
    if parsed.drivername.startswith("sqlite") and is_file and not Path(db).is_absolute():
        parsed = parsed.set(database=str(e.base / db))
    return _with_driver(e, parsed).render_as_string(hide_password=False)


# The installable extra per database, the drivers it brings, and their URL names.
EXTRAS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "postgresql": ("postgres", (("psycopg2", "psycopg2"), ("psycopg", "psycopg"))),
    "mysql": ("mysql", (("pymysql", "pymysql"), ("MySQLdb", "mysqldb"))),
    "mariadb": ("mysql", (("pymysql", "pymysql"), ("MySQLdb", "mysqldb"))),
}


def _with_driver(e: Entry, url: sa.URL) -> sa.URL:
    """The URL with a driver that is installed: a URL without one (`postgresql://`) gets the
    installed one; a missing driver is one sentence naming the extra that installs it (for the
    databases orderwatch has extras for; others fail on connecting, naming the module)."""
    backend, _, driver = url.drivername.partition("+")
    if backend not in EXTRAS:
        return url
    try:
        url.get_dialect().import_dbapi()
        return url
    except ImportError as exc:
        missing = exc.name or str(exc)
    except sa.exc.NoSuchModuleError as exc:
        e.fail("url", f"url: unknown driver {url.drivername!r}: {exc}")
        return url
    extra, drivers = EXTRAS[backend]
    if not driver:
        for module, name in drivers:
            try:
                __import__(module)
            except ImportError:
                continue
            return url.set(drivername=f"{backend}+{name}")
    if driver and driver != drivers[0][1]:
        hint = f"install it, or use {backend}+{drivers[0][1]}:// with: pip install 'orderwatch[{extra}]'"
    else:
        hint = f"install it with: pip install 'orderwatch[{extra}]'"
    e.fail("url", f"url: the database driver {missing!r} is not installed; {hint}")
    return url


def _spreadsheet(e: Entry, common: dict[str, Any], mapping: Any) -> SpreadsheetConfig | None:
    encoding = e.text("encoding") or "auto"
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            e.fail("encoding", f"unknown encoding {encoding!r}; use auto, utf-8, gb18030, …")
    delimiter = e.text("delimiter") or ","
    if len(delimiter) != 1:
        e.fail("delimiter", f"delimiter is one character, got {delimiter!r}")
    path = e.text("path")
    patterns = e.columns("pattern") or DEFAULT_PATTERNS
    settle = e.m.get("settle", 2)
    if isinstance(settle, bool) or not isinstance(settle, (int, float)) or settle < 0:
        e.fail("settle", f"settle is a number of seconds (0 or more), got {settle!r}")
        settle = 2
    values: dict[str, Any] = {
        **common,
        "mapping": mapping,
        "path": e.base / path if path else None,
        "encoding": encoding,
        "delimiter": delimiter,
        "sheet": e.text("sheet"),
        "header_row": e.positive_int("header_row", 1),
        "pattern": patterns,
        "settle": float(settle),
        "ts": e.ts(common["timezone"]),
        "lines": _sheet_lines(e, common),
    }
    if not _complete(e, values, ("id", "entity", "key", "mapping", "path")):
        return None
    return SpreadsheetConfig(**values)


def _debezium(e: Entry, common: dict[str, Any], mapping: Any) -> DebeziumConfig | None:
    values: dict[str, Any] = {
        **common,
        "mapping": mapping,
        "topic": e.text("topic"),
        "bootstrap": e.text("bootstrap"),
        "start": e.choice("start", ("earliest", "latest"), "earliest"),
        "batch_size": e.positive_int("batch_size", 1000),
        "op": e.choice("op", ("upsert", "reject"), "upsert"),
    }
    if not _complete(e, values, ("id", "entity", "key", "mapping", "topic")):
        return None
    return DebeziumConfig(**values)


def _webhook(e: Entry, common: dict[str, Any], mapping: Any) -> WebhookConfig | None:
    auth = e.choice("auth", AUTH_MODES, "hmac")
    secret, token = e.text("secret"), e.text("token")
    if auth == "hmac" and secret is None:
        e.fail("auth", "auth: hmac needs 'secret' (e.g. secret: ${WEBHOOK_SECRET})")
    if auth == "bearer" and token is None:
        e.fail("auth", "auth: bearer needs 'token' (e.g. token: ${WEBHOOK_TOKEN})")
    listen = e.text("listen") or "127.0.0.1:8099"
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        e.fail("listen", f"listen is host:port (e.g. 127.0.0.1:8099), got {listen!r}")
        port = "0"
    path = e.text("path") or "/ingest"
    if not path.startswith("/"):
        e.fail("path", f"path starts with '/', got {path!r}")
    seq = e.text("seq")
    if mapping is not None:
        # Rows to map, not canonical records: the mapping's companions are needed too.
        for needed in ("entity", "key", "seq"):
            if e.m.get(needed) is None:
                e.fail("fields", f"a webhook with 'fields' maps rows and needs {needed!r} too")
    elif any(k in e.m for k in ("key", "seq", "op", "ts", "actor")):
        e.fail(None, "key, seq, op, ts and actor map rows: give 'fields' too, or send canonical records")
    values: dict[str, Any] = {
        **common,
        "mapping": mapping,
        "host": host.strip("[]"),
        "port": int(port),
        "path": path,
        "auth": auth,
        "secret": secret,
        "token": token,
        "signature_header": e.text("signature_header") or "X-Orderwatch-Signature",
        "max_bytes": e.positive_int("max_bytes", 1024 * 1024),
        "seq": seq,
        "op": e.text("op"),
        "ts": e.text("ts"),
    }
    if not _complete(e, values, ("id",)):
        return None
    return WebhookConfig(**values)
