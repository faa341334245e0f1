"""Message text in the recipient's language (zh or en), from small `{name}` templates.

The built-in templates can be replaced per language in the alerts YAML
(`templates: {zh: {subject: ..., alert: ..., footer: ...}}`). As everywhere in
orderwatch, only `{name}` placeholders are substituted; nothing is evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from alerts.matchers import Matcher
from alerts.message import AlertItem, Notification, alert_url
from alerts.yamlcheck import Problems, as_map, check_keys, get_str
from orderwatch.yamlsrc import Pos

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CJK = re.compile(r"[\u3400-\u9fff]")

SUBJECT_FIELDS = {"status", "count", "firing", "resolved", "title", "escalated", "recipient", "receiver"}
ALERT_FIELDS = {"status", "title", "summary", "entity", "key", "owner", "severity", "since", "ended",
                "fingerprint", "rule", "state", "level"}
FOOTER_FIELDS = {"url", "ack"}


@dataclass(frozen=True)
class Template:
    subject: str
    alert: str
    footer: str
    words: dict[str, str]


_ZH_WORDS = {"firing": "告警", "resolved": "已恢复", "escalated": "[升级] ", "warning": "警告", "critical": "严重",
             "info": "提示", "acknowledged": "已确认", "silenced": "已静默", "no_owner": "无负责人",
             "for": "致"}
_EN_WORDS = {"firing": "FIRING", "resolved": "RESOLVED", "escalated": "[ESCALATED] ", "warning": "warning",
             "critical": "critical", "info": "info", "acknowledged": "acknowledged", "silenced": "silenced",
             "no_owner": "no owner", "for": "for"}

BUILTIN = {
    "zh": Template(
        subject="{escalated}[{status} {count}] {title}",
        alert="【{status}】{title}\n{summary}\n对象: {entity} {key} | 负责人: {owner} | 级别: {severity} | 开始: {since}{ended}",
        footer="确认(停止提醒和升级): orderwatch alerts ack {ack}{url}",
        words=_ZH_WORDS,
    ),
    "en": Template(
        subject="{escalated}[{status}:{count}] {title}",
        alert="[{status}] {title}\n{summary}\n{entity} {key} | owner: {owner} | severity: {severity} | since: {since}{ended}",
        footer="Acknowledge (stops reminders and escalation): orderwatch alerts ack {ack}{url}",
        words=_EN_WORDS,
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


def localize(title: str, language: str) -> str:
    """Pick the `zh` or `en` half of a bilingual text like `采购到货逾期 / PO delivery overdue`
    (rules written as `{zh: …, en: …}` reach the alert layer joined that way)."""
    parts = [p.strip() for p in title.split(" / ")]
    if len(parts) != 2 or bool(_CJK.search(parts[0])) == bool(_CJK.search(parts[1])):
        return title
    zh, en = (parts[0], parts[1]) if _CJK.search(parts[0]) else (parts[1], parts[0])
    return zh if language == "zh" else en


def local_time(iso: str | None, zone: str) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


class Renderer:
    """Renders notifications with the built-in or configured templates."""

    def __init__(self, templates: dict[str, Template] | None = None) -> None:
        self.templates = dict(BUILTIN)
        self.templates.update(templates or {})

    def _t(self, n: Notification) -> Template:
        return self.templates.get(n.language) or self.templates["en"]

    def subject(self, n: Notification) -> str:
        t = self._t(n)
        titles = sorted({localize(a.title or a.rule, n.language) for a in n.alerts})
        title = titles[0] if len(titles) == 1 else " / ".join(titles[:3]) + (" …" if len(titles) > 3 else "")
        return fill(t.subject, {
            "status": t.words[n.status], "count": len(n.firing) or len(n.resolved), "firing": len(n.firing),
            "resolved": len(n.resolved), "title": title, "escalated": t.words["escalated"] if n.level else "",
            "recipient": (n.recipient or {}).get("name", ""), "receiver": n.receiver,
        })

    def alert(self, n: Notification, a: AlertItem) -> str:
        t = self._t(n)
        ended = ""
        if a.ends_at:
            ended = (" | 结束: " if n.language == "zh" else " | ended: ") + local_time(a.ends_at, n.timezone)
        return fill(t.alert, {
            "status": t.words.get(a.status, a.status), "title": localize(a.title or a.rule, n.language),
            "summary": localize(a.summary, n.language), "entity": a.entity, "key": a.key,
            "owner": a.owner_name or a.owner or t.words["no_owner"],
            "severity": t.words.get(a.severity, a.severity), "since": local_time(a.starts_at, n.timezone),
            "ended": ended, "fingerprint": a.fingerprint, "rule": a.rule,
            "state": t.words.get(a.state, a.state), "level": a.level,
        })

    def footer(self, n: Notification) -> str:
        firing = n.firing
        if not firing:
            return ""
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
        check_keys(spec, {"subject", "alert", "footer"}, problems, f"templates.{lang}")
        tpl = BUILTIN[lang]
        for key, allowed in (("subject", SUBJECT_FIELDS), ("alert", ALERT_FIELDS), ("footer", FOOTER_FIELDS)):
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
