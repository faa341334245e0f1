"""`orderwatch alerts notify-test RECEIVER [--person P | --team T]`: one clearly marked test message.

The message goes through the receiver's own integration (the code the outbox
calls for real alerts: same templates, same SMTP or HTTP request), addressed
to the person or team given (a receiver that needs an address, like email,
needs one). Its title says TEST; its single alert is no alert of the store
(rule `orderwatch.notify-test`, label `test="true"`) and nothing is recorded
in the store. Exit 0 when the endpoint took it, 1 when it refused it (the
answer is printed), 2 for a mistake in the command or the file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

TEST_RULE = "orderwatch.notify-test"
TITLE = {"en": "[TEST] orderwatch test notification: please ignore", "zh": "【测试】orderwatch 测试通知，请忽略"}
SUMMARY = {
    "en": "Sent by `orderwatch alerts notify-test` to check that receiver {receiver} reaches {who}. No alert is open.",
    "zh": "由 `orderwatch alerts notify-test` 发送，用于检查接收端 {receiver} 能否送达 {who}。没有未处理的告警。",
}


def register(verbs: Any) -> None:
    """Add `notify-test` to the `alerts` verbs."""
    p = verbs.add_parser("notify-test", help="send one clearly marked test message through a receiver",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("receiver", help="the receiver's name in the alerts file")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--person", help="address it to this person of the owners directory")
    who.add_argument("--team", help="address it to this team of the owners directory")
    p.add_argument("--alerts", metavar="FILE", help="the alerts file (default: the `alerts` setting of --config)")
    p.add_argument("--config", help="YAML settings file (its `alerts` is used)")
    p.set_defaults(func=cmd_notify_test)


def test_notification(cfg: Any, receiver: str, recipient: Any | None) -> Any:
    """The test message for `receiver`, addressed to `recipient` (a Recipient or None)."""
    from alerts.message import AlertItem, Notification

    now = datetime.now(UTC).isoformat()
    who = recipient.ref if recipient is not None else receiver
    texts = {"title": dict(TITLE), "summary": {k: v.format(receiver=receiver, who=who) for k, v in SUMMARY.items()}}
    item = AlertItem(
        fingerprint="0" * 16, rule=TEST_RULE, entity="test", key="TEST", status="firing", state="firing",
        severity="info", title=TITLE["en"], summary=texts["summary"]["en"], owner=None, labels={"test": "true"},
        starts_at=now, facts={"texts": texts})
    return Notification(
        receiver=receiver, group_key=f"{TEST_RULE}|{{}}", group_labels={"test": "true"},
        recipient=recipient.to_dict() if recipient is not None else None,
        language=recipient.language if recipient is not None else cfg.language,
        timezone=recipient.timezone if recipient is not None else cfg.timezone,
        level=0, alerts=[item], created_at=now, external_url=cfg.external_url, extra={"test": True})


async def send(cfg: Any, notification: Any) -> None:
    """Deliver through the receiver's integration; raises DeliveryError (or TimeoutError) if not taken."""
    import aiohttp

    from alerts.notify import SendContext
    from alerts.template import Renderer

    receiver = cfg.receivers[notification.receiver]
    async with aiohttp.ClientSession() as http:
        ctx = SendContext(http=http, renderer=Renderer(cfg.templates, time.time))
        await asyncio.wait_for(receiver.send(notification, ctx), receiver.timeout + 5)


def _recipient(cfg: Any, args: argparse.Namespace) -> Any:
    d = cfg.directory
    if args.person:
        person = d.people.get(args.person)
        if person is None:
            raise ValueError(f"no person {args.person!r} in the owners directory; known: "
                             f"{', '.join(sorted(d.people)) or '(none)'}")
        return person.recipient()
    if args.team:
        team = d.teams.get(args.team)
        if team is None:
            raise ValueError(f"no team {args.team!r} in the owners directory; known: "
                             f"{', '.join(sorted(d.teams)) or '(none)'}")
        return d.team_recipient(team)
    return None


def cmd_notify_test(args: argparse.Namespace) -> int:
    from alerts.config import load_alerts_config
    from alerts.notify import DeliveryError
    from alerts.routetest import alerts_file, mistake
    from orderwatch.yamlsrc import SourceError

    try:
        cfg = load_alerts_config(alerts_file(args))
        if args.receiver not in cfg.receivers:
            raise ValueError(f"no receiver {args.receiver!r}; known: {', '.join(sorted(cfg.receivers)) or '(none)'}")
        recipient = _recipient(cfg, args)
        receiver = cfg.receivers[args.receiver]
        if not receiver.reaches(recipient.to_dict() if recipient is not None else None):
            raise ValueError(f"receiver {args.receiver} ({receiver.type}) needs a recipient with "
                             f"{receiver.needs or 'an address'}: name one with --person or --team")
    except (ValueError, SourceError) as exc:
        return mistake("alerts notify-test", exc)
    notification = test_notification(cfg, args.receiver, recipient)
    to = f" to {recipient.ref}" if recipient is not None else ""
    try:
        asyncio.run(send(cfg, notification))
    except DeliveryError as exc:
        print(f"alerts notify-test: {args.receiver}{to}: not delivered: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"alerts notify-test: {args.receiver}{to}: no answer within {receiver.timeout:.0f}s", file=sys.stderr)
        return 1
    print(f"test message sent through {args.receiver} ({receiver.type}){to}")
    return 0
