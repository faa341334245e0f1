"""Rendering `{field}` templates (titles, summaries, label values) safely.

Only `{name}` is substituted, from a dict of values; `{{`/`}}` are literal
braces; nothing in a template is evaluated, formatted with format specs, or
looked up by attribute. Numbers print as people write them: no trailing
`.0`, at most two decimals.
"""

from __future__ import annotations

import re
from typing import Any

NAME = r"[^\W\d]\w*"  # a field name: letters of any script (客户), digits, '_'
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(" + NAME + r")\}")


def show(value: Any) -> str:
    """A value as text in a message."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text  # -0.001 rounds to 0, not -0
    return str(value)


def missing(template: str, values: dict[str, Any]) -> list[str]:
    """Placeholders of a template that have no value."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) and values.get(m.group(1)) is None]


def placeholders(template: str) -> list[str]:
    """The names a template's placeholders refer to."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


_COMPILED: dict[str, tuple[tuple[bool, str], ...]] = {}


def _compile(template: str) -> tuple[tuple[bool, str], ...]:
    """(is a placeholder, text) parts of a template, cached: rules have few templates."""
    parts = _COMPILED.get(template)
    if parts is None:
        out: list[tuple[bool, str]] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(template):
            if match.start() > pos:
                out.append((False, template[pos:match.start()]))
            token = match.group(0)
            out.append((False, token[0]) if token in ("{{", "}}") else (True, match.group(1)))
            pos = match.end()
        if pos < len(template):
            out.append((False, template[pos:]))
        parts = _COMPILED[template] = tuple(out)
    return parts


def is_money(name: str) -> bool:
    """Whether a field holds an amount of money."""
    return name == "amount" or name.endswith("_amount") or name == "unit_price"


def render(template: str, values: dict[str, Any], currency: bool = False) -> str:
    """Substitute `{name}` placeholders; a missing value renders as empty text.

    `currency`: amounts carry the record's currency (`8000 EUR`) unless the text names
    `{currency}` itself (a title or a summary; not a label, which is matched on)."""
    parts = _compile(template)
    unit = values.get("currency") if currency and not any(n and t == "currency" for n, t in parts) else None

    def one(text: str) -> str:
        value = values.get(text)
        if unit and is_money(text) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{show(value)} {unit}"
        return show(value)

    return "".join(one(text) if name else text for name, text in parts)
