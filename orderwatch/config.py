"""Worker settings: defaults, then the YAML config file, then ORDERWATCH_* env, then CLI flags.

Every key is documented in the README's configuration reference. An unknown
key in the file is an error with its position, never silently ignored.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orderwatch.yamlsrc import Map, SourceError, load_file

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_RULES = REPO_ROOT / "rules"


@dataclass(frozen=True)
class Settings:
    broker: str = "embedded"  # or kafka://host:port[,host:port]
    store: str = ""  # SQLAlchemy URL; default sqlite:///<datadir>/alerts.sqlite
    rules: tuple[str, ...] = (str(SHIPPED_RULES),)
    connectors: str = ""  # a connectors YAML file run inside this process
    fields: str = ""  # the file declaring custom fields (default: the connectors file's `fields:`)
    alerts: str = ""  # the alerts YAML file: owners, routes, receivers, silences, API token
    app_id: str = "orderwatch"
    topic_prefix: str = "orderwatch"
    partitions: int = 4
    datadir: str = ".orderwatch"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_url: str = ""  # how the other workers reach this one's web server (default: see advertised_url)
    tick_seconds: float = 5.0
    batch_max: int = 2000  # input messages handled together (one evaluation per partition)
    batch_wait: float = 0.005  # seconds to wait for a batch to fill
    history_limit: int = 20
    session_timeout: float = 10.0
    stall_deadline: float = 120.0  # seconds a worker may hold partitions whose input waits unread
    console: bool = True
    log_level: str = "warn"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{Path(self.datadir).resolve() / 'alerts.sqlite'}"

    @property
    def advertised_url(self) -> str:
        """How the other workers of the group reach this worker's web server (the console's pages
        that gather every worker's share): `web_url`, else web_host:web_port, with this machine's
        address when web_host listens on every interface (0.0.0.0 names no machine to another)."""
        if self.web_url:
            return self.web_url.rstrip("/")
        host = self.web_host
        if host in ("", "0.0.0.0", "::"):  # every interface: no address another machine can use
            try:
                host = socket.gethostbyname(socket.gethostname())
            except OSError:
                host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    @property
    def fields_file(self) -> str:
        """Where the custom fields are declared: `fields`, else the connectors file (if any)."""
        return self.fields or self.connectors

    @property
    def changes_topic(self) -> str:
        return f"{self.topic_prefix}-changes"

    @property
    def derived_topic(self) -> str:
        """Contributions to derived entities (stock, customer accounts), keyed by their entity key."""
        return f"{self.topic_prefix}-derived"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}-alerts"

    @property
    def deadletter_topic(self) -> str:
        return f"{self.topic_prefix}-deadletter"


_KEYS = {f.name for f in fields(Settings)} - {"extra"}


class SettingError(ValueError):
    """A setting that cannot be used: a bad environment value, a store that is not there
    (mistakes in the config file are SourceErrors, with their line)."""


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings, name, None) if name != "rules" else ()
    if name == "rules":
        if isinstance(value, str):
            return tuple(v for v in value.split(",") if v)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError("rules is a list of files or folders")
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} is a string")  # noqa: TRY004 - the loader reports every ValueError as a config mistake
    return value


def load_settings(path: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from file, environment and overrides (None values are ignored)."""
    values: dict[str, Any] = {}
    base = Path.cwd()
    if path:
        doc = load_file(path)
        base = Path(path).resolve().parent
        if doc is not None and not isinstance(doc, Map):
            raise SourceError([(doc.pos, "the config file is a mapping of settings")])
        problems = []
        for key, value in (doc.items() if doc is not None else ()):
            assert doc is not None
            if key not in _KEYS:
                problems.append((doc.at(key), f"unknown setting '{key}'; known: {', '.join(sorted(_KEYS))}"))
                continue
            try:
                values[key] = _coerce(key, value)
            except (TypeError, ValueError) as exc:
                problems.append((doc.at(key), f"{key}: {exc}"))
        if problems:
            raise SourceError(problems)
        for key in ("datadir", "connectors", "alerts", "fields"):
            if key in values and values[key] and not Path(values[key]).is_absolute():
                values[key] = str(base / values[key])
        if "rules" in values:
            values["rules"] = tuple(str(base / r) if not Path(r).is_absolute() else r for r in values["rules"])
    for key in _KEYS:
        name = f"ORDERWATCH_{key.upper()}"
        env = os.environ.get(name)
        if env is not None:
            try:
                values[key] = _coerce(key, env)
            except (TypeError, ValueError) as exc:
                raise SettingError(f"{name}={env!r}: {exc}") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value)
    if "app_id" in values and "topic_prefix" not in values:
        values["topic_prefix"] = values["app_id"]  # each app its own topics, unless told otherwise
    return replace(Settings(), **values)
