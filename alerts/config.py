"""The alerts YAML: owners, receivers, the routing tree, inhibition, templates, delivery, API tokens.

Loaded and validated once; every mistake is reported as `file:line:col:
message` (all of them, not only the first). `${ENV_VAR}` is substituted in
values so that webhook tokens and passwords stay out of the file. See
the README (Alerts) for the reference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.inhibit import InhibitRule, parse_inhibit_rules
from alerts.notify import Receiver, parse_receiver
from alerts.owners import LANGUAGES, Directory, parse_directory
from alerts.route import Route, parse_route
from alerts.template import Template, parse_templates
from alerts.timeinterval import TimeInterval, parse_time_intervals
from alerts.yamlcheck import (
    Problems,
    as_list,
    as_map,
    check_keys,
    get_choice,
    get_duration,
    get_int,
    get_str,
    get_str_list,
    pos_at,
    substitute_env,
)
from engine import calendar as calendars
from orderwatch.yamlsrc import Map, Pos, SourceError, load_file

_KEYS = {"owners", "language", "timezone", "external_url", "api", "receivers", "route", "inhibit_rules",
         "templates", "delivery", "console", "time_intervals", "mute_time_intervals", "calendars"}
CONSOLE_SECRET_ENV = "ORDERWATCH_CONSOLE_SECRET"  # the console's signing secret when the file has none
MIN_SECRET = 32


@dataclass(frozen=True)
class Delivery:
    """How often the dispatcher runs and how the outbox retries."""

    interval: float = 1.0  # seconds between dispatch passes (and outbox sweeps)
    retry_initial: float = 10.0  # first retry delay; doubles each attempt
    retry_max: float = 600.0  # the longest delay between attempts
    give_up_after: float = 7 * 86400.0  # an undelivered notification is kept but no longer retried
    failing_after: int = 3  # attempts before its alerts show delivery "failing"
    concurrency: int = 8  # notifications sent at the same time


SCOPES = ("read", "write")  # read: every GET; write: every state-changing call (ack, resolve, silences)


@dataclass(frozen=True)
class ApiToken:
    name: str  # recorded as who acted (acknowledged, silenced…)
    token: str
    # A token written without `scopes` (files from before scopes existed) keeps doing what it
    # did: read and write. `write` includes `read`: acting on an alert needs seeing it.
    scopes: frozenset[str] = frozenset(SCOPES)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "write" in self.scopes


@dataclass(frozen=True)
class ConsoleSettings:
    """The owners' console (console/): the secret that signs sign-in links and sessions, and lifetimes."""

    secret: str = ""  # empty: nobody signs in (API tokens still work)
    link_ttl: float = 7 * 86400.0  # how long a sign-in link in a notification stays valid
    session_ttl: float = 12 * 3600.0  # how long a session started by a link lasts
    # source id → the order's address in that ERP, `{key}` and the order's fields substituted
    order_links: dict[str, str] = field(default_factory=dict)


@dataclass
class AlertsConfig:
    path: str = ""
    directory: Directory = field(default_factory=Directory)
    receivers: dict[str, Receiver] = field(default_factory=dict)
    route: Route | None = None  # None: nothing is routed (store and console only)
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)
    delivery: Delivery = field(default_factory=Delivery)
    tokens: list[ApiToken] = field(default_factory=list)
    external_url: str = ""
    language: str = "en"
    timezone: str = "UTC"
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    time_intervals: dict[str, tuple[TimeInterval, ...]] = field(default_factory=dict)


def _owners(doc: Map, base: Path, problems: Problems, language: str, zone: str) -> Directory:
    if "owners" not in doc:
        return Directory(default_language=language)
    node = doc["owners"]
    if isinstance(node, str):
        # A separate owners file (HR keeps it; IT keeps routing).
        path = Path(node) if Path(node).is_absolute() else base / node
        try:
            node = load_file(path)
        except SourceError as exc:
            for pos, msg in exc.problems:
                problems.add(pos, msg)
            return Directory(default_language=language)
        substitute_env(node, problems)
        if node is None:
            return Directory(default_language=language)
    owners = as_map(node, doc.at("owners"), "owners", problems)
    return parse_directory(owners, problems, language, zone) if owners is not None else Directory(default_language=language)


def _calendars(doc: Map, base: Path, problems: Problems) -> dict[str, calendars.BusinessCalendar]:
    """The shipped calendars, plus the file's own `calendars:` (inline, or a file holding `calendars:`)."""
    found: dict[str, calendars.BusinessCalendar] = {n: c for n in calendars.SHIPPED if (c := calendars.shipped(n))}
    node = doc.get("calendars")
    if node is None:
        return found
    where = doc.at("calendars")
    if isinstance(node, str):
        path = Path(node) if Path(node).is_absolute() else base / node
        try:
            loaded = load_file(path)
        except SourceError as exc:
            for pos, msg in exc.problems:
                problems.add(pos, msg)
            return found
        node = loaded.get("calendars") if isinstance(loaded, Map) else None
        where = loaded.at("calendars") if isinstance(loaded, Map) and "calendars" in loaded else Pos(str(path), 1, 1)
        if node is None:
            problems.add(where, f"{path} has no `calendars:` mapping")
            return found
    spec = as_map(node, where, "calendars", problems)
    own: dict[str, calendars.BusinessCalendar] = {}
    for name, item in (spec or {}).items():
        entry = as_map(item, spec.at(name) if spec else where, f"calendar {name}", problems)
        if entry is None:
            continue
        try:
            own[name] = calendars.parse_calendar(str(name), entry, own)
        except ValueError as exc:
            problems.add(spec.at(name) if spec else where, str(exc))
    return {**found, **own}


def _tokens(doc: Map, problems: Problems) -> list[ApiToken]:
    api = as_map(doc["api"], doc.at("api"), "api", problems) if "api" in doc else None
    if api is None:
        return []
    check_keys(api, {"tokens"}, problems, "api")
    items: list[Any] = as_list(api.get("tokens", []), api.at("tokens"), "api.tokens", problems) or []
    out = []
    for i, item in enumerate(items):
        entry = as_map(item, pos_at(items, i), "an API token", problems)
        if entry is None:
            continue
        check_keys(entry, {"name", "token", "scopes"}, problems, "an API token", required=("name", "token"))
        name, token = get_str(entry, "name", problems), get_str(entry, "token", problems)
        scopes = _scopes(entry, problems)
        if token is not None and len(token) < 16:
            problems.add(entry.at("token"), "an API token needs at least 16 characters")
        elif name and token and scopes:
            out.append(ApiToken(name, token, scopes))
    return out


def _scopes(entry: Map, problems: Problems) -> frozenset[str] | None:
    """The token's scopes; None after a problem (the token is left out rather than widened)."""
    if "scopes" not in entry:
        return frozenset(SCOPES)
    raw = entry.get("scopes")
    if not isinstance(raw, list) or not raw:
        problems.add(entry.at("scopes"), f"scopes is a list of one or both of {', '.join(SCOPES)} (e.g. [read])")
        return None
    wanted = get_str_list(entry, "scopes", problems)
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        problems.add(entry.at("scopes"), f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}")
    return frozenset(wanted) if wanted and not unknown else None


def _delivery(doc: Map, problems: Problems) -> Delivery:
    node = as_map(doc["delivery"], doc.at("delivery"), "delivery", problems) if "delivery" in doc else None
    if node is None:
        return Delivery()
    d = Delivery()
    check_keys(node, set(d.__dataclass_fields__), problems, "delivery")
    return Delivery(
        interval=get_duration(node, "interval", problems, d.interval) or d.interval,
        retry_initial=get_duration(node, "retry_initial", problems, d.retry_initial) or d.retry_initial,
        retry_max=get_duration(node, "retry_max", problems, d.retry_max) or d.retry_max,
        give_up_after=get_duration(node, "give_up_after", problems, d.give_up_after) or d.give_up_after,
        failing_after=get_int(node, "failing_after", problems, d.failing_after),
        concurrency=max(1, get_int(node, "concurrency", problems, d.concurrency)),
    )


def _console(doc: Map, problems: Problems, env: Mapping[str, str]) -> ConsoleSettings:
    node = as_map(doc["console"], doc.at("console"), "console", problems) if "console" in doc else None
    d = ConsoleSettings()
    if node is None:
        secret = env.get(CONSOLE_SECRET_ENV, "")
        if secret and len(secret) < MIN_SECRET:
            problems.add(Pos("(environment)", 1, 1), f"{CONSOLE_SECRET_ENV} needs at least {MIN_SECRET} characters")
            secret = ""
        return ConsoleSettings(secret=secret)
    check_keys(node, {"secret", "link_ttl", "session_ttl", "order_links"}, problems, "console")
    order_links = as_map(node["order_links"], node.at("order_links"), "console.order_links", problems) \
        if "order_links" in node else None
    for source, url in (order_links or {}).items():
        if not str(url).startswith(("http://", "https://")):
            problems.add(order_links.at(source), f"console.order_links.{source}: an http:// or https:// URL "  # type: ignore[union-attr]
                         "template like https://erp.example.com/app/purchase-order/{key}")
    secret = get_str(node, "secret", problems, "") or env.get(CONSOLE_SECRET_ENV, "")
    if secret and len(secret) < MIN_SECRET:
        problems.add(node.at("secret") if "secret" in node else doc.at("console"),
                     f"the console secret needs at least {MIN_SECRET} characters (e.g. `openssl rand -hex 32`)")
        secret = ""
    return ConsoleSettings(secret=secret,
                           link_ttl=get_duration(node, "link_ttl", problems, d.link_ttl) or d.link_ttl,
                           session_ttl=get_duration(node, "session_ttl", problems, d.session_ttl) or d.session_ttl,
                           order_links={str(k): str(v) for k, v in (order_links or {}).items()})


def _console_from_env() -> ConsoleSettings:
    problems = Problems()
    settings = _console(Map(), problems, os.environ)
    problems.raise_if_any()
    return settings


def parse_config(doc: Any, path: str, base: Path) -> AlertsConfig:
    """Validate a parsed alerts document; raise SourceError listing every problem."""
    problems = Problems()
    if doc is None:
        return AlertsConfig(path=path, console=_console_from_env())
    if not isinstance(doc, Map):
        raise SourceError([(getattr(doc, "pos", Pos(path, 1, 1)), "the alerts file is a mapping")])
    substitute_env(doc, problems)
    check_keys(doc, _KEYS, problems, "the alerts file")
    language = get_choice(doc, "language", LANGUAGES, problems, "en")
    zone = get_str(doc, "timezone", problems, "UTC") or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        # Reported here, once: people and teams without their own zone inherit it.
        problems.add(doc.at("timezone"), f"unknown time zone {zone!r} (use an IANA name like Asia/Shanghai)")
        zone = "UTC"
    directory = _owners(doc, base, problems, language, zone)
    receivers: dict[str, Receiver] = {}
    items: list[Any] | None = as_list(doc["receivers"], doc.at("receivers"), "receivers", problems) \
        if "receivers" in doc else []
    for i, item in enumerate(items or []):
        receiver = parse_receiver(item, pos_at(items, i), problems, base)
        if receiver is None:
            continue
        if receiver.name in receivers:
            problems.add(pos_at(items, i), f"receiver name {receiver.name!r} is used twice")
        receivers[receiver.name] = receiver
    # Names of receivers that failed validation still count as defined: one problem, not two.
    names = set(receivers) | {str(it.get("name")) for it in (items or []) if isinstance(it, Map)}
    people, teams = set(directory.people), set(directory.teams)
    preferred = [(p.id, p.receivers) for p in directory.people.values()]
    preferred += [(t.id, t.receivers) for t in directory.teams.values()]
    for who, wanted in preferred:
        for name in wanted:
            if name not in names:
                problems.add(doc.at("owners"), f"{who}: receiver {name!r} is not defined; known: "
                             f"{', '.join(sorted(names)) or '(none)'}")
    intervals = parse_time_intervals(doc, problems, _calendars(doc, base, problems))
    route = parse_route(doc["route"], doc.at("route"), problems, names, people, teams,
                        intervals=set(intervals)) if "route" in doc else None
    inhibit = parse_inhibit_rules(doc["inhibit_rules"], doc.at("inhibit_rules"), problems) \
        if "inhibit_rules" in doc else []
    templates = parse_templates(doc["templates"], doc.at("templates"), problems) if "templates" in doc else {}
    external_url = get_str(doc, "external_url", problems, "") or ""
    if external_url and not external_url.startswith(("http://", "https://")):
        problems.add(doc.at("external_url"), "external_url must start with http:// or https://")
    config = AlertsConfig(path, directory, receivers, route, inhibit, templates, _delivery(doc, problems),
                          _tokens(doc, problems), external_url, language, zone,
                          _console(doc, problems, os.environ), intervals)
    problems.raise_if_any()
    return config


def load_alerts_config(path: str | Path | None) -> AlertsConfig:
    """Read the alerts YAML file (an empty path: nothing configured, store and console only)."""
    if not path:
        return AlertsConfig(console=_console_from_env())
    doc = load_file(path)
    return parse_config(doc, str(path), Path(path).resolve().parent)
