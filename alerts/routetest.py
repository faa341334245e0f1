"""`orderwatch alerts routes test`: which receivers (and group) an alert with given labels reaches.

Like `amtool config routes test`: the labels go through the dispatcher's own
routing (`dispatch.routing_context`, `Route.match`, `dispatch.grouping`), so
the answer is what a real alert with those labels gets. The first line is the
receivers, comma-separated in route order; `--verify-receivers` compares it
and exits 1 when it differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from alerts import timeinterval


def register(verbs: Any) -> None:
    """Add `routes test` to the `alerts` verbs."""
    routes = verbs.add_parser("routes", help="try the routing tree of an alerts file")
    rverbs = routes.add_subparsers(dest="routes_cmd", required=True)
    p = rverbs.add_parser("test", help="the receivers and groups an alert with these labels reaches",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE",
                   help='the alert\'s labels, e.g. rule=po-delivery-overdue severity=warning owner=li.wei '
                        '(or \'{rule="x",severity="warning"}\')')
    p.add_argument("--alerts", metavar="FILE", help="the alerts file (default: the `alerts` setting of --config)")
    p.add_argument("--config", help="YAML settings file (its `alerts` is used)")
    p.add_argument("--tree", action="store_true", help="print the routing tree, marking the routes that take it")
    p.add_argument("--verify-receivers", metavar="R1,R2",
                   help="exit 1 unless the receivers are exactly these, in this order")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json")
    p.set_defaults(func=cmd_routes_test)


def _labels(texts: list[str]) -> dict[str, str]:
    from alerts import matchers as m

    labels: dict[str, str] = {}
    for text in texts:
        for x in m.parse_list(text):
            if x.op != "=":
                raise ValueError(f"{text!r}: labels are LABEL=VALUE, not {x}")
            labels[x.name] = x.value
    return labels


def alerts_file(args: argparse.Namespace) -> str:
    if args.alerts:
        return str(args.alerts)
    from orderwatch.config import load_settings

    path = load_settings(args.config, {}).alerts
    if not path:
        raise ValueError("name the alerts file with --alerts FILE (or a --config whose `alerts` names it)")
    return path


def mistake(verb: str, exc: Exception) -> int:
    """Print a mistake in the command (one line) or in the file (file:line:col each); exit status 2."""
    for pos, msg in getattr(exc, "problems", None) or [(verb, str(exc))]:
        print(f"{pos}: {msg}", file=sys.stderr)
    return 2


def cmd_routes_test(args: argparse.Namespace) -> int:
    from alerts.config import load_alerts_config
    from alerts.dispatch import grouping, routing_context
    from orderwatch.yamlsrc import SourceError

    try:
        labels = _labels(args.labels)
        cfg = load_alerts_config(alerts_file(args))
    except (ValueError, SourceError) as exc:
        return mistake("alerts routes test", exc)
    if cfg.route is None:
        print(f"alerts routes test: {cfg.path} has no route: nobody is notified", file=sys.stderr)
        return 2
    ctx = routing_context(cfg.directory, labels.get("owner"), labels)
    matched = cfg.route.match(ctx.labels)
    rows: list[dict[str, Any]] = []
    for route in matched:
        key, group_labels = grouping(route, ctx.labels)
        recipients = ctx.resolve(route.to) or ctx.first(route.fallback) if route.to else []
        receivers = list(route.receivers) or list(dict.fromkeys(n for r in recipients for n in r.receivers))
        muted = timeinterval.muted_by(route.mute_time_intervals, route.active_time_intervals, cfg.time_intervals,
                                      datetime.now(UTC))
        rows.append({"route": route.id, "receivers": receivers, "recipients": [r.ref for r in recipients],
                     "group_key": key, "group_labels": group_labels, "group_wait": route.group_wait,
                     "group_interval": route.group_interval, "repeat_interval": route.repeat_interval,
                     "mute_time_intervals": list(route.mute_time_intervals),
                     "active_time_intervals": list(route.active_time_intervals), "muted_now_by": muted})
    found = ",".join(n for row in rows for n in row["receivers"])
    if args.format == "json":
        print(json.dumps({"labels": ctx.labels, "receivers": found.split(",") if found else [], "routes": rows},
                         ensure_ascii=False))
    else:
        print(found)
        for row in rows:
            held = f"  muted now by {', '.join(row['muted_now_by'])}" if row["muted_now_by"] else ""
            print(f"  route {row['route']}: receivers {','.join(row['receivers']) or '-'}"
                  f"  recipients {','.join(row['recipients']) or '-'}  group {row['group_key']}{held}")
        if args.tree:
            _print_tree(cfg.route, {id(r) for r in matched}, 0)
    if args.verify_receivers is not None and args.verify_receivers != found:
        print(f"WARNING: expected receivers {args.verify_receivers!r} did not match resolved receivers {found!r}",
              file=sys.stderr)
        return 1
    return 0


def _print_tree(route: Any, taken: set[int], depth: int) -> None:
    mark = "*" if id(route) in taken else " "
    matchers = "{" + ",".join(str(x) for x in route.matchers) + "}"
    extra = "  continue" if route.cont else ""
    print(f"{mark} {'  ' * depth}{route.id} {matchers}  receivers {','.join(route.receivers) or '-'}{extra}")
    for child in route.routes:
        _print_tree(child, taken, depth + 1)
