"""Message text in the recipient's language (zh or en), from small `{name}` templates.

Rendered when a message is sent (a retry or a reminder renders again): each
alert's title and summary come from its stored facts (alerts/texts.py), times
in the recipient's time zone and locale (alerts/locale.py). The built-in
templates can be replaced per language in the alerts YAML
(`templates: {zh: {subject: ..., alert: ..., footer: ...}}`); a language without
an override keeps the built-in one. As everywhere in orderwatch, only `{name}`
placeholders are substituted; nothing is evaluated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode

from alerts import locale
from alerts.matchers import Matcher
from alerts.message import AlertItem, Notification, alert_url
from alerts.texts import alert_texts, entity_name, localize  # noqa: F401  (localize: re-exported)
from alerts.yamlcheck import Problems, as_map, check_keys, get_str
from orderwatch.yamlsrc import Pos

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

SUBJECT_FIELDS = {"status", "count", "firing", "resolved", "title", "escalated", "recipient", "receiver"}
ALERT_FIELDS = {"status", "title", "summary", "entity", "key", "owner", "severity", "since", "ended",
                "fingerprint", "rule", "state", "level", "ago", "outcome"}
FOOTER_FIELDS = {"url", "ack"}
LINK_FOOTER_FIELDS = {"links"}
# (label, url) → how one link is written: plain text (email), markdown (DingTalk, WeCom, Teams), Slack.
LinkStyle = Callable[[str, str], str]
Linker = Callable[[Notification, AlertItem | None], str]  # the console page's address for this reader


def plain_link(label: str, url: str) -> str:
    return f"{label}: {url}"


def markdown_link(label: str, url: str) -> str:
    return f"[{label}]({url})"


@dataclass(frozen=True)
class Template:
    subject: str
    alert: str
    footer: str
    words: dict[str, str]
    link_footer: str = "{links}"  # with the console: each firing alert's personal link


_ZH_WORDS = {"firing": "告警", "resolved": "已恢复", "escalated": "[升级] ", "warning": "警告", "critical": "严重",
             "info": "提示", "acknowledged": "已确认", "silenced": "已静默", "no_owner": "无负责人", "unknown": "(未知)",
             "for": "致", "ended": " | 结束: ", "outcome": "\n结果: "}
_EN_WORDS = {"firing": "FIRING", "resolved": "RESOLVED", "escalated": "[ESCALATED] ", "warning": "warning",
             "critical": "critical", "info": "info", "acknowledged": "acknowledged", "silenced": "silenced",
             "no_owner": "no owner", "unknown": " (unknown)", "for": "for", "ended": " | ended: ", "outcome": "\nOutcome: "}

BUILTIN = {
    "zh": Template(
        subject="{escalated}[{status} {count}] {title}",
        alert="【{status}】{title}\n{summary}{outcome}\n对象: {entity} {key} | 负责人: {owner} | 级别: {severity} | "
              "开始: {since}({ago}){ended}",
        footer="确认(停止提醒和升级): orderwatch alerts ack {ack}{url}",
        words=_ZH_WORDS,
        link_footer="在控制台确认、备注或暂停提醒(确认后停止提醒和升级):\n{links}",
    ),
    "en": Template(
        subject="{escalated}[{status}:{count}] {title}",
        alert="[{status}] {title}\n{summary}{outcome}\n{entity} {key} | owner: {owner} | severity: {severity} | "
              "since: {since} ({ago}){ended}",
        footer="Acknowledge (stops reminders and escalation): orderwatch alerts ack {ack}{url}",
        words=_EN_WORDS,
        link_footer="Acknowledge, comment or snooze on the console (acknowledging stops reminders and "
                    "escalation):\n{links}",
    ),
}


def fill(template: str, values: dict[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


def local_time(iso: str | None, zone: str, language: str = "en") -> str:
    """A stored ISO time in the reader's time zone and locale."""
    moment = locale.as_time(iso) if iso else None
    if not isinstance(moment, datetime):
        return iso or ""
    return locale.datetime_text(moment, language, zone)


class Renderer:
    """Renders notifications with the built-in or configured templates, at the time of sending."""

    def __init__(self, templates: dict[str, Template] | None = None, clock: Callable[[], float] = time.time,
                 linker: Linker | None = None) -> None:
        self.templates = dict(BUILTIN)
        self.templates.update(templates or {})
        self.clock = clock  # when the message goes out: what {overdue_days} and "3 days ago" count to
        self.linker = linker  # with the console configured: personal signed links instead of commands

    def links(self, n: Notification) -> list[tuple[str, str]]:
        """(label, address) of each firing alert's console page, signed for this notification's
        reader (with several alerts, "my exceptions" comes last); empty without the console."""
        if self.linker is None or not n.firing:
            return []
        out = [(f"{entity_name(a.entity, n.language)} {a.key}: {self.texts(n, a)[0]}", self.linker(n, a))
               for a in n.firing]
        if len(out) > 1:
            out.append(("我的异常" if n.language == "zh" else "My exceptions", self.linker(n, None)))
        return out

    def _t(self, n: Notification) -> Template:
        return self.templates.get(n.language) or self.templates["en"]

    def texts(self, n: Notification, a: AlertItem) -> tuple[str, str, str]:
        """(title, summary, outcome) of one alert for this notification's reader."""
        t = alert_texts(a, n.language, n.timezone, self.clock())
        return t.title, t.summary, t.outcome

    def subject(self, n: Notification) -> str:
        t = self._t(n)
        titles = sorted({self.texts(n, a)[0] for a in n.alerts})
        title = titles[0] if len(titles) == 1 else " / ".join(titles[:3]) + (" …" if len(titles) > 3 else "")
        return fill(t.subject, {
            "status": t.words[n.status], "count": len(n.firing) or len(n.resolved), "firing": len(n.firing),
            "resolved": len(n.resolved), "title": title, "escalated": t.words["escalated"] if n.level else "",
            "recipient": (n.recipient or {}).get("name", ""), "receiver": n.receiver,
        })

    def alert(self, n: Notification, a: AlertItem) -> str:
        t = self._t(n)
        words = {**BUILTIN.get(n.language, BUILTIN["en"]).words, **t.words}
        title, summary, outcome = self.texts(n, a)
        ended = words["ended"] + local_time(a.ends_at, n.timezone, n.language) if a.ends_at else ""
        started = locale.as_time(a.starts_at)
        now = datetime.fromtimestamp(self.clock(), UTC)
        ago = locale.relative(started, now, n.language) if isinstance(started, datetime) else ""
        return fill(t.alert, {
            "status": t.words.get(a.status, a.status), "title": title,
            "summary": summary or title, "entity": entity_name(a.entity, n.language), "key": a.key,
            "owner": a.owner_name or (f"{a.owner}{t.words['unknown']}" if a.owner else t.words["no_owner"]),
            "severity": t.words.get(a.severity, a.severity),
            "since": local_time(a.starts_at, n.timezone, n.language), "ago": ago,
            "ended": ended, "outcome": words["outcome"] + outcome if outcome else "",
            "fingerprint": a.fingerprint, "rule": a.rule, "state": t.words.get(a.state, a.state), "level": a.level,
        })

    def footer(self, n: Notification, style: LinkStyle = plain_link) -> str:
        firing = n.firing
        if not firing:
            return ""
        found = self.links(n)
        if found:
            return fill(self._t(n).link_footer, {"links": "\n".join(style(label, url) for label, url in found)})
        url = f"\n{_link(n)}" if n.external_url else ""
        return fill(self._t(n).footer, {"ack": " ".join(a.fingerprint for a in firing), "url": url})

    def body(self, n: Notification) -> str:
        """Plain text: one paragraph per alert, firing first, then the footer."""
        blocks = [self.alert(n, a) for a in n.firing + n.resolved]
        footer = self.footer(n)
        return "\n\n".join(blocks + ([footer] if footer else []))


def parse_templates(node: Any, pos: Pos, problems: Problems) -> dict[str, Template]:
    """`templates: {zh: {subject, alert, footer}, en: {...}}`; unknown placeholders are problems."""
    doc = as_map(node, pos, "templates", problems)
    out: dict[str, Template] = {}
    for lang, entry in (doc or {}).items():
        if lang not in BUILTIN:
            problems.add(doc.at(lang), f"templates: language {lang!r} is not one of {', '.join(BUILTIN)}")  # type: ignore[union-attr]
            continue
        spec = as_map(entry, doc.at(lang), f"templates.{lang}", problems)  # type: ignore[union-attr]
        if spec is None:
            continue
        check_keys(spec, {"subject", "alert", "footer", "link_footer"}, problems, f"templates.{lang}")
        tpl = BUILTIN[lang]
        for key, allowed in (("subject", SUBJECT_FIELDS), ("alert", ALERT_FIELDS), ("footer", FOOTER_FIELDS),
                             ("link_footer", LINK_FOOTER_FIELDS)):
            text = get_str(spec, key, problems)
            if text is None:
                continue
            unknown = {g for g in _PLACEHOLDER.findall(text) if g and g not in allowed}
            if unknown:
                problems.add(spec.at(key), f"templates.{lang}.{key}: unknown placeholder(s) "
                             f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}")
            tpl = replace(tpl, **cast(dict[str, Any], {key: text}))
        out[lang] = tpl
    return out


def _link(n: Notification) -> str:
    """The API address of what a message is about: the alert, or its group's firing alerts."""
    if len(n.firing) == 1:
        return alert_url(n.external_url, n.firing[0].fingerprint)
    group = [("state", "firing")] + [("filter", str(Matcher(k, "=", v))) for k, v in sorted(n.group_labels.items())]
    return f"{alert_url(n.external_url)}?{urlencode(group)}"
