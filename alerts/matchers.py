"""Label matchers in Alertmanager's syntax: `name="value"`, `name!=value`, `name=~"re"`, `name!~"re"`.

Regular expressions are anchored (they must match the whole value) and a
missing label matches as the empty string, as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')
OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{_escape(self.value)}"'

    def to_dict(self) -> dict[str, Any]:
        """Alertmanager API v2 shape."""
        return {"name": self.name, "value": self.value, "isRegex": self.op in ("=~", "!~"),
                "isEqual": self.op in ("=", "=~")}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        body = text[1:-1]
        out, i = [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append(body[i + 1])
                i += 2
                continue
            if body[i] == '"':
                raise ValueError(f"unescaped quote in {text}")
            out.append(body[i])
            i += 1
        return "".join(out)
    if '"' in text:
        raise ValueError(f"quote the whole value: {text}")
    return text


def make(name: str, op: str, value: str) -> Matcher:
    """A matcher; ValueError if the operator or regular expression is invalid."""
    if op not in OPS:
        raise ValueError(f"operator {op!r} is not one of {', '.join(OPS)}")
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from None
    return Matcher(name, op, value, regex)


def parse(text: Any) -> Matcher:
    """Parse one matcher; ValueError with a sentence saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f'a matcher is text like severity="critical", not {text!r}')  # noqa: TRY004
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f'not a matcher: {text!r} (write name="value", name!=value, name=~"regex" or name!~"regex")')
    return make(m.group(1), m.group(2), _unquote(m.group(3)))


def from_dict(data: Mapping[str, Any]) -> Matcher:
    """From Alertmanager API v2's {name, value, isRegex, isEqual}."""
    name, value = data.get("name"), data.get("value")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"matcher name must be a label name, not {name!r}")
    if not isinstance(value, str):
        raise ValueError(f"matcher value must be text, not {value!r}")  # noqa: TRY004
    regex, equal = bool(data.get("isRegex", False)), bool(data.get("isEqual", True))
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
    return make(name, op, value)


def match_all(matchers: list[Matcher] | tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
