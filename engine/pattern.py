"""`matches` and `contains`: patterns run by durable_rules' own regex engine.

durable_rules compiles a pattern to a finite automaton when the ruleset is
created (matching is linear, no backtracking), always matches the whole
value, and spells escapes with `%` (`%d`, `%.`). Rule authors write the
familiar subset of regular expressions instead; this module translates it
and rejects what durable_rules cannot do, with a sentence saying why.

Supported: literals, `.`, `[a-z]`, `[^…]`, `* + ? {n} {n,m} {n,}`, `( )`, `|`,
`\\d \\s \\w`, backslash escapes of special characters, a leading `(?i)` for
case-insensitive matching, and `^`/`$` at the ends (patterns are anchored
anyway).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

import durable_rules_engine as dre

_DURABLE_SPECIAL = set(".|?*+()[]{}%")
_CLASSES = {"d": "%d", "s": "%s", "w": "%w"}
_LITERAL_ESCAPES = set(".|?*+()[]{}\\%^$-/ ")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A translated pattern: `text` in durable_rules syntax, as the user wrote it in `source`."""

    text: str
    ignore_case: bool
    source: str


def _escape_char(c: str) -> str:
    return f"%{c}" if c in _DURABLE_SPECIAL else c


def literal(text: str) -> str:
    """durable_rules syntax matching `text` literally."""
    return "".join(_escape_char(c) for c in text)


def contains(text: str) -> Pattern:
    """The pattern of `contains: text` (a substring anywhere in the value)."""
    return Pattern(f".*{literal(text)}.*", False, text)


def translate(source: str, check: bool = True) -> Pattern:
    """Translate a user pattern; raises ValueError saying what is not supported.

    `check=False` skips asking durable_rules (which runs on one thread only); call
    `durable_rejects(pattern.text)` on that thread later."""
    text = source
    ignore_case = text.startswith("(?i)")
    if ignore_case:
        text = text[4:]
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"bad pattern {source!r}: {exc}") from None
    text = text.removeprefix("^")
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    out: list[str] = []
    i, in_class = 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt in _CLASSES:
                out.append(_CLASSES[nxt])
            elif nxt and nxt in _LITERAL_ESCAPES:
                out.append(_escape_char(nxt))
            else:
                raise ValueError(f"pattern {source!r}: '\\{nxt}' is not supported (use \\d, \\s, \\w or escape a special character)")
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append("%%" if c == "%" else c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            if text[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
        elif c in "^$":
            raise ValueError(f"pattern {source!r}: '{c}' only at the start/end (patterns always match the whole value)")
        elif c == "(" and text[i + 1 : i + 2] == "?":
            raise ValueError(f"pattern {source!r}: '(?' groups are not supported")
        elif c in "*+?}" and text[i + 1 : i + 2] == "?":
            raise ValueError(f"pattern {source!r}: lazy quantifiers are not supported (and not needed: the whole value is matched)")
        elif c == "%":
            out.append("%%")
        else:
            out.append(c)
        i += 1
    pattern = Pattern("".join(out), ignore_case, source)
    why = durable_rejects(pattern.text) if check else None
    if why:
        raise ValueError(f"pattern {source!r}: {why}")
    return pattern


@functools.lru_cache(maxsize=1024)
def durable_rejects(text: str) -> str | None:
    """Why durable_rules cannot compile this pattern, or None (checked by compiling it)."""
    name = f"orderwatch.pattern-check.{abs(hash(text))}"
    definition = {"r": {"all": [{"m": {"$mt": {"v": text}}}]}}
    try:
        handle = dre.create_ruleset(name, json.dumps(definition, ensure_ascii=False))
    except Exception:  # noqa: BLE001 - the engine reports only an error code
        return "durable_rules cannot compile it (unsupported construct or too many states)"
    dre.delete_ruleset(handle)
    return None
