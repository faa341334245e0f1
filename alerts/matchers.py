"""Label matchers as in Alertmanager: `name="value"`, `name!=value`, `name=~"re"`, `name!~"re"`.

The text form (braces, comma lists, quoting, escapes) is read by
`alerts.matcher_syntax`, as Alertmanager's UTF-8 matchers parser reads it.
Regular expressions are RE2 (the `re2` module of the google-re2 package, the
engine and syntax Alertmanager uses through Go's regexp), anchored as
Alertmanager anchors them, `^(?:re)$`, so they must match the whole value and
take time linear in the value's length whatever the pattern. A missing label
matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from alerts import matcher_syntax as syntax
from alerts.yamlcheck import Problems, get_str_list, pos_at
from orderwatch.yamlsrc import Map

OPS = syntax.OPERATORS
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the user, not logged to stderr by RE2


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: Any = field(default=None, compare=False, repr=False)  # a compiled re2 pattern

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        found = self.regex.search(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        """Alertmanager's form: names that need quoting and their values in Go quoting; else the name
        bare and the value quoted with only backslash, newline and double quote escaped."""
        if any(syntax.is_reserved(ch) for ch in self.name):
            return f"{go_quote(self.name)}{self.op}{go_quote(self.value)}"
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def to_dict(self) -> dict[str, Any]:
        """Alertmanager API v2 shape."""
        return {"name": self.name, "value": self.value, "isRegex": self.op in ("=~", "!~"),
                "isEqual": self.op in ("=", "=~")}


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """A Go double-quoted string literal of `text` (what Go's strconv.Quote writes)."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def compile_regex(pattern: str) -> Any:
    """RE2, anchored like Alertmanager; ValueError with RE2's reason if it is not a valid pattern."""
    try:
        return re2.compile(f"^(?:{pattern})$", _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"bad regular expression {pattern!r}: {reason}") from None


def make(name: str, op: str, value: str) -> Matcher:
    """A matcher; ValueError if the operator or regular expression is invalid."""
    if op not in OPS:
        raise ValueError(f"operator {op!r} is not one of {', '.join(OPS)}")
    return Matcher(name, op, value, compile_regex(value) if op in ("=~", "!~") else None)


def _text(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f'a matcher is text like severity="critical", not {text!r}')  # noqa: TRY004
    return text


def parse(text: Any) -> Matcher:
    """Exactly one matcher (`{…}` and a trailing comma allowed); ValueError saying where and why."""
    try:
        return syntax.parse_one(_text(text), make)
    except syntax.SyntaxProblem as exc:
        raise ValueError(f"bad matcher {text!r}: {exc}") from None


def parse_list(text: Any) -> list[Matcher]:
    """Zero or more matchers: `a="1",b=~"x|y"` or `{a="1", b=~"x|y"}`; ValueError saying where and why."""
    try:
        return syntax.parse_all(_text(text), make)
    except syntax.SyntaxProblem as exc:
        raise ValueError(f"bad matchers {text!r}: {exc}") from None


def from_dict(data: Mapping[str, Any]) -> Matcher:
    """From Alertmanager API v2's {name, value, isRegex, isEqual}."""
    name, value = data.get("name"), data.get("value")
    if not isinstance(name, str) or not valid_label_name(name):
        raise ValueError(f"matcher name must be a label name (non-empty UTF-8 text), not {name!r}")
    if not isinstance(value, str):
        raise ValueError(f"matcher value must be text, not {value!r}")  # noqa: TRY004
    regex, equal = bool(data.get("isRegex", False)), bool(data.get("isEqual", True))
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
    return make(name, op, value)


def parse_items(doc: Map, key: str, problems: Problems) -> list[Matcher]:
    """A YAML list of matcher texts (`matchers:`, `source_matchers:`…), each text one or more matchers
    as in Alertmanager; each mistake is a problem at its item."""
    out: list[Matcher] = []
    for i, text in enumerate(get_str_list(doc, key, problems)):
        try:
            out.extend(parse_list(text))
        except ValueError as exc:
            problems.add(pos_at(doc.get(key), i, doc.at(key)), f"{key}: {exc}")
    return out


def parse_map(doc: Map, key: str, op: str, problems: Problems) -> list[Matcher]:
    """Alertmanager's older `match:` / `match_re:` form (label: value, label: regex)."""
    node = doc.get(key)
    if node is None:
        return []
    if not isinstance(node, Map):
        problems.add(doc.at(key), f"{key} is a mapping of label: {'regex' if '~' in op else 'value'}")
        return []
    out: list[Matcher] = []
    for name, value in node.items():
        if not isinstance(value, str) or not valid_label_name(str(name)):
            problems.add(node.at(name), f"{key}: {name!r}: {value!r} must be a label name and a text value")
            continue
        try:
            out.append(make(str(name), op, value))
        except ValueError as exc:
            problems.add(node.at(name), f"{key}: {exc}")
    return out


def valid_label_name(name: str) -> bool:
    """Alertmanager's UTF-8 label names: any non-empty text that is valid UTF-8."""
    return bool(name) and not _SURROGATE.search(name)


_SURROGATE = re.compile("[\ud800-\udfff]")


def match_all(matchers: list[Matcher] | tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
