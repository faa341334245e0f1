"""`orderwatch alerts list|show|ack|resolve|silence|hash-password`: people acting on the alert store directly.

The commands open the store named by --store (or the config file's, or the
SQLite file in --datadir), so they work with or without a running worker:
the dispatcher sees acknowledgements and silences on its next pass.
Alerts are named by fingerprint or a unique prefix of at least 4 characters,
or by order with `--order ENTITY:KEY`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alerts import notifytest, routetest
from alerts.states import STATES


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML settings file (its `store` and `datadir` are used)")
    p.add_argument("--store", help="SQLAlchemy URL of the alert store (default: SQLite in --datadir)")
    p.add_argument("--datadir", help="folder of the default SQLite store (default: .orderwatch)")
    p.add_argument("--alerts", help="the alerts YAML file, for people's names, language and time zone "
                   "(default: the config file's `alerts`, else alerts.yaml in --datadir if there is one)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `alerts` and its verbs to the `orderwatch` command's subparsers."""
    alerts = subparsers.add_parser("alerts", help="list, acknowledge, resolve and silence alerts",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = alerts.add_subparsers(dest="alerts_cmd", required=True)

    p = verbs.add_parser("list", help="list alerts")
    _common(p)
    p.add_argument("--state", choices=STATES, action="append", help="only alerts in this state (repeatable)")
    p.add_argument("--open", action="store_true", help="only open alerts (firing, acknowledged, silenced)")
    for name in ("rule", "owner", "severity", "entity", "key"):
        p.add_argument(f"--{name}", help=f"only alerts with this {name}")
    p.add_argument("--filter", action="append", default=[], metavar="MATCHERS",
                   help='label matchers like supplier="Acme" or \'{family=~"delay|stock",severity="critical"}\' '
                        "(repeatable)")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("show", help="one alert with its full history (transitions, notifications, who)")
    _common(p)
    p.add_argument("id", help="fingerprint or a unique prefix")
    p.set_defaults(func=cmd_show)

    for verb, text in (("ack", "acknowledge: stops reminders and escalation"), ("resolve", "close by hand")):
        p = verbs.add_parser(verb, help=text)
        _common(p)
        p.add_argument("ids", nargs="*", help="fingerprints or unique prefixes")
        p.add_argument("--order", action="append", default=[], metavar="ENTITY:KEY",
                       help="every open alert of this order, e.g. purchase_order:PO-2025-0042 (repeatable)")
        p.add_argument("--by", default=None, help="who acts (default: your login name)")
        p.add_argument("--comment", "-m", default=None, help="why, for the history")
        p.set_defaults(func=cmd_act, verb=verb)

    p = verbs.add_parser("check", help="validate an alerts file; print file:line:col: problem")
    p.add_argument("file", help="the alerts YAML file (owners, receivers, route, …)")
    p.set_defaults(func=cmd_check)

    p = verbs.add_parser("hash-password", help="read a password (not echoed) and print its argon2id hash for "
                         "a person's password_hash in the owners directory (console sign-in)")
    p.set_defaults(func=cmd_hash_password)

    routetest.register(verbs)
    notifytest.register(verbs)

    silence = verbs.add_parser("silence", help="mute alerts by label matchers for a while")
    sverbs = silence.add_subparsers(dest="silence_cmd", required=True)
    p = sverbs.add_parser("add", help="create a silence")
    _common(p)
    p.add_argument("matchers", nargs="+", metavar="MATCHERS",
                   help='e.g. supplier="Acme Bearings" rule=po-delivery-overdue, or \'{rule="x",severity="warning"}\'')
    p.add_argument("--duration", "-d", help="how long, e.g. 2h, 3d (default 2h unless --end)")
    p.add_argument("--start", help="ISO 8601 time with offset (default: now)")
    p.add_argument("--end", help="ISO 8601 time with offset")
    p.add_argument("--by", default=None, help="author (default: your login name)")
    p.add_argument("--comment", "-m", required=True, help="why (required)")
    p.set_defaults(func=cmd_silence_add)
    p = sverbs.add_parser("list", help="list silences")
    _common(p)
    p.add_argument("--state", choices=["active", "pending", "expired"])
    p.set_defaults(func=cmd_silence_list)
    p = sverbs.add_parser("expire", help="end a silence now")
    _common(p)
    p.add_argument("id")
    p.set_defaults(func=cmd_silence_expire)
    return alerts


def _store(args: argparse.Namespace) -> Any:
    import sqlalchemy as sa

    from alerts.store import AlertStore
    from orderwatch.config import SettingError, load_settings

    url = load_settings(args.config, {"store": args.store, "datadir": args.datadir}).store_url
    parsed = sa.make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        # Not created here: a mistyped --datadir would otherwise show an empty store.
        raise SettingError(f"no alert store at {parsed.database}: start a worker first, or point "
                           "--datadir or --store at the store a worker writes")
    return AlertStore(url)


def _now() -> datetime:
    from alerts.clock import from_env, now_of

    return now_of(from_env())


def _people(args: argparse.Namespace) -> Any:
    """The alerts file (for people's names, the language and time zone), if one is known."""
    from alerts.config import AlertsConfig, load_alerts_config
    from orderwatch.config import load_settings

    settings = load_settings(args.config, {"datadir": args.datadir})
    path = getattr(args, "alerts", None) or settings.alerts
    beside = Path(settings.datadir) / "alerts.yaml"  # the demo writes its own there
    if not path and beside.exists():
        path = str(beside)
    return load_alerts_config(path) if path else AlertsConfig()


def _when(moment: datetime, cfg: Any) -> str:
    """A stored time in the alerts file's time zone (else this machine's), to the minute."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(cfg.timezone) if cfg.path else None
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _texts(a: Any, cfg: Any, now: datetime) -> tuple[str, str]:
    from alerts.console import stored_texts

    return stored_texts(a, cfg.language, cfg.timezone, now)


def _print_alerts(alerts: list[Any], fmt: str, cfg: Any, now: datetime) -> None:
    from tabulate import tabulate

    from alerts.escalation import SEVERITY_RANK
    from alerts.texts import entity_name

    if fmt == "json":
        for a in alerts:
            print(json.dumps(a.to_dict(), ensure_ascii=False))
        return
    # The most severe first, then the oldest: what needs somebody first is on top.
    alerts = sorted(alerts, key=lambda a: (-SEVERITY_RANK.get(a.severity, -1), a.starts_at, a.fingerprint))
    rows = []
    for a in alerts:
        title, summary = _texts(a, cfg, now)
        state = a.state + (f" ({cfg.directory.display(a.acked_by)})" if a.acked_by else "")
        state += " delivery failing" if a.delivery == "failing" else ""
        rows.append([a.fingerprint, a.severity, state, _when(a.starts_at, cfg),
                     f"{entity_name(a.entity, cfg.language)} {a.key}",
                     cfg.directory.display(a.owner, cfg.language), summary or title])
    if rows:
        print(tabulate(rows, headers=["id", "severity", "state", "since", "order", "owner", "summary"],
                       tablefmt="simple", disable_numparse=True))
    print(f"{len(alerts)} alert(s)")


def cmd_list(args: argparse.Namespace) -> int:
    from alerts import matchers as m
    from alerts.labels import row_labels
    from alerts.states import OPEN_STATES

    try:
        filters = [x for f in args.filter for x in m.parse_list(f)]
    except ValueError as exc:
        print(f"alerts list: {exc}", file=sys.stderr)
        return 2
    states = list(OPEN_STATES) if args.open else args.state
    alerts = _store(args).list(state=states, rule=args.rule, severity=args.severity,
                               entity=args.entity, key=args.key)
    cfg = _people(args)
    if args.owner:  # the person, by any of their names
        alerts = [a for a in alerts if cfg.directory.canonical(a.owner) == cfg.directory.canonical(args.owner)]
    d = cfg.directory
    chosen = [a for a in alerts if m.match_all(filters, {**row_labels(a), "owner": d.canonical(a.owner) or ""})]
    _print_alerts(chosen, args.format, cfg, _now())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    found, missing = store.resolve_ids([args.id])
    if missing:
        print(f"alerts show: no alert (or no unique one) matches {args.id!r}", file=sys.stderr)
        return 1
    alert, events = store.get(found[0]), store.events(found[0])
    if args.format == "json":
        print(json.dumps({**alert.to_dict(), "history": [e.to_dict() for e in events]}, ensure_ascii=False))
        return 0
    cfg = _people(args)
    title, summary = _texts(alert, cfg, _now())
    print(f"{alert.fingerprint}  {title}\n  {summary}")
    print(f"  state {alert.state}  severity {alert.severity}  owner {cfg.directory.display(alert.owner, cfg.language)}  "
          f"{alert.entity}:{alert.key}  since {_when(alert.starts_at, cfg)}  delivery {alert.delivery or '-'}")
    if alert.delivery_error:
        print(f"  last delivery error: {alert.delivery_error}")
    for e in events:
        what = e.state
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items() if k in ("receiver", "recipient", "level", "to",
                                                                            "silence", "error", "attempts"))
        who = cfg.directory.display(e.actor) if cfg.directory.person(e.actor) else e.actor
        by = f"{who} ({e.actor})" if who != e.actor else e.actor
        print(f"  {_when(e.at, cfg)}  {what:<13} by {by}" + (f"  {detail}" if detail else "")
              + (f"  — {e.comment}" if e.comment else ""))
    return 0


def cmd_act(args: argparse.Namespace) -> int:
    from alerts.states import OPEN_STATES

    store = _store(args)
    found, missing = store.resolve_ids(args.ids)
    for order in args.order:
        entity, sep, key = order.partition(":")
        if not sep:
            print(f"alerts {args.verb}: --order is ENTITY:KEY, not {order!r}", file=sys.stderr)
            return 2
        found += [a.fingerprint for a in store.list(state=list(OPEN_STATES), entity=entity, key=key)]
    if not found and not missing:
        if not args.order:
            print(f"alerts {args.verb}: name alerts by fingerprint or --order ENTITY:KEY", file=sys.stderr)
            return 2
        print(f"alerts {args.verb}: no open alert for {', '.join(args.order)}", file=sys.stderr)
        return 1  # nothing changed
    act = store.acknowledge if args.verb == "ack" else store.resolve
    changed = act(found, args.by or getpass.getuser(), args.comment, _now())
    if args.format == "json":
        print(json.dumps({"changed": changed, "unchanged": sorted(set(found) - set(changed)), "not_found": missing}))
    else:
        done = "acknowledged" if args.verb == "ack" else "resolved"
        for fp in changed:
            print(f"{done} {fp}")
        for fp in sorted(set(found) - set(changed)):
            print(f"unchanged {fp} (state {store.get(fp).state})")
        for ident in missing:
            print(f"not found {ident}", file=sys.stderr)
    return 0 if changed and not missing else 1


def cmd_check(args: argparse.Namespace) -> int:
    from alerts.config import load_alerts_config
    from orderwatch.yamlsrc import SourceError

    try:
        cfg = load_alerts_config(args.file)
    except SourceError as exc:
        for pos, msg in exc.problems:
            print(f"{pos}: {msg}")
        return 1
    routes = len(cfg.route.walk()) if cfg.route else 0
    print(f"{args.file}: OK: {len(cfg.directory.people)} people, {len(cfg.directory.teams)} teams, "
          f"{len(cfg.receivers)} receivers, {routes} routes, {len(cfg.inhibit_rules)} inhibit rules, "
          f"{len(cfg.time_intervals)} time intervals")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    """At a terminal the password is asked twice without echo; from a pipe, its first line is read."""
    from console.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. 2025-03-05T08:00:00+08:00")
    return dt


def cmd_silence_add(args: argparse.Namespace) -> int:
    from alerts import matchers as m
    from alerts.silence import SilenceError, Silences
    from alerts.yamlcheck import parse_duration

    now = _now()
    try:
        parsed = [x for text in args.matchers for x in m.parse_list(text)]
        starts = _time(args.start, now)
        ends = _time(args.end, now) if args.end else starts + timedelta(seconds=parse_duration(args.duration or "2h"))
        silence = Silences(_store(args)).add(parsed, starts, ends, args.by or getpass.getuser(), args.comment, now)
    except (ValueError, SilenceError) as exc:
        print(f"alerts silence add: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(silence.to_dict(now), ensure_ascii=False))
    else:
        print(f"silence {silence.id} {silence.status(now)} until {silence.ends_at.isoformat()}: "
              f"{' '.join(str(x) for x in silence.matchers)}")
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    from alerts.silence import Silences

    now = _now()
    found = Silences(_store(args)).list(now, args.state)
    for s in found:
        if args.format == "json":
            print(json.dumps(s.to_dict(now), ensure_ascii=False))
        else:
            print(f"{s.id}  {s.status(now):<8} {s.starts_at.isoformat()} → {s.ends_at.isoformat()}  "
                  f"{' '.join(str(x) for x in s.matchers)}  by {s.created_by}: {s.comment}")
    if args.format != "json":
        print(f"{len(found)} silence(s)")
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from alerts.silence import Silences

    now = _now()
    silence = Silences(_store(args)).expire(args.id, now)
    if silence is None:
        print(f"alerts silence expire: no silence {args.id}", file=sys.stderr)
        return 1
    print(json.dumps(silence.to_dict(now)) if args.format == "json" else f"expired {silence.id}")
    return 0
