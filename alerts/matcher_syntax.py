"""The text form of label matchers, read as Alertmanager's UTF-8 matchers parser reads it.

    {severity="critical", family=~"delay|stock"}      braces optional, commas between matchers
    rule=po-delivery-overdue,severity!=info,          a trailing comma is allowed
    "供应商"="Acme \\"Bearings\\"\\n"                   quoted names and values: Go string escapes

An unquoted name or value is any run of characters other than white space
and ``{ } ! = ~ , \\ " ' ` ``; quote anything else. Quoted text takes the
escapes of a Go string literal (``\\n \\t \\" \\\\ \\xHH \\u… \\U…`` and octal)
and must come out as valid UTF-8. A mistake is a `SyntaxProblem` whose
message starts with the column span (from 0, in characters) of the token at
fault and says what was expected there, in Alertmanager's own words, so that
people who know its messages recognise them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Go's unicode.IsSpace: ASCII white space, NEL, NBSP and Unicode's White_Space characters.
_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                   "\u200a\u2028\u2029\u202f\u205f\u3000")
RESERVED = frozenset("{}!=~,\\\"'`")
OPERATORS = ("=", "!=", "=~", "!~")


class SyntaxProblem(ValueError):
    """A matcher text that cannot be read; the message says where and why."""


def is_reserved(ch: str) -> bool:
    """Characters that end an unquoted name or value."""
    return ch in _SPACE or ch in RESERVED


@dataclass(frozen=True)
class _Token:
    kind: str  # "{", "}", ",", an operator, "quoted", "unquoted"
    text: str
    start: int
    end: int


class _Tokens:
    """The tokens of one text, read ahead; a lexical mistake is kept and raised when it is reached."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[_Token] = []
        self.problem: SyntaxProblem | None = None
        self.end = 0  # the column after the last token taken
        self.i = 0
        self._scan()

    def _scan(self) -> None:
        text, i, n = self.text, 0, len(self.text)
        while i < n:
            ch = text[i]
            if ch in _SPACE:
                i += 1
            elif ch in "{},":
                self.items.append(_Token(ch, ch, i, i + 1))
                i += 1
            elif ch == "=":
                op = "=~" if text.startswith("=~", i) else "="
                self.items.append(_Token(op, op, i, i + len(op)))
                i += len(op)
            elif ch == "!":
                if i + 1 < n and text[i + 1] in "=~":
                    self.items.append(_Token(text[i:i + 2], text[i:i + 2], i, i + 2))
                    i += 2
                    continue
                what = "unexpected end of input" if i + 1 >= n else "!:"
                self.problem = SyntaxProblem(f"{i}:{i + 1}: {what}{',' if i + 1 >= n else ''} expected one of '=~'")
                return
            elif ch == '"':
                j, escaped = i + 1, False
                while j < n and (escaped or text[j] != '"'):
                    escaped = not escaped and text[j] == "\\"
                    j += 1
                if j >= n:
                    self.problem = SyntaxProblem(f"{i}:{n}: {text[i:]}: missing end \"")
                    return
                self.items.append(_Token("quoted", text[i:j + 1], i, j + 1))
                i = j + 1
            elif not is_reserved(ch):
                j = i
                while j < n and not is_reserved(text[j]):
                    j += 1
                self.items.append(_Token("unquoted", text[i:j], i, j))
                i = j
            else:
                self.problem = SyntaxProblem(f"{i}:{i + 1}: {ch}: invalid input")
                return

    def peek(self) -> _Token | None:
        """The next token; None at the end of the input."""
        if self.i < len(self.items):
            return self.items[self.i]
        if self.problem is not None:
            raise self.problem
        return None

    def take(self) -> _Token:
        token = self.items[self.i]
        self.i += 1
        self.end = token.end
        return token


def _wrap(exc: SyntaxProblem, context: str) -> SyntaxProblem:
    return SyntaxProblem(f"{exc}: {context}")


def _expect(tokens: _Tokens, kinds: tuple[str, ...], context: str) -> _Token:
    try:
        token = tokens.peek()
    except SyntaxProblem as exc:
        raise _wrap(exc, context) from None
    if token is None:
        raise SyntaxProblem(f"end of input: {context}")
    if token.kind not in kinds:
        raise SyntaxProblem(f"{token.start}:{token.end}: unexpected {token.text}: {context}")
    return tokens.take()


def go_unquote(token: str) -> str:
    """The value of a Go double-quoted string literal; ValueError if it is not one or not UTF-8."""
    if len(token) < 2 or token[0] != '"' or token[-1] != '"' or "\n" in token:
        raise ValueError("not a quoted string")
    body, out, i = token[1:-1], bytearray(), 0
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
    while i < len(body):
        ch = body[i]
        if ch == '"':
            raise ValueError("unescaped quote")
        if ch != "\\":
            out += ch.encode("utf-8")  # a lone surrogate (not UTF-8) raises UnicodeEncodeError, a ValueError
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in simple:
            out.append(simple[esc])
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("bad hexadecimal escape")
            value = int(digits, 16)
            if esc == "x":
                out.append(value)
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError("not a Unicode code point")
            else:
                out += chr(value).encode("utf-8")
            i += 2 + width
        elif esc and esc in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("bad octal escape")
            out.append(int(digits, 8))
            i += 4
        else:
            raise ValueError("unknown escape")
    return out.decode("utf-8")  # strict: invalid UTF-8 raises UnicodeDecodeError, a ValueError


def _value(token: _Token) -> str:
    if token.kind == "unquoted":
        return token.text
    try:
        return go_unquote(token.text)
    except ValueError:
        raise SyntaxProblem(f"{token.start}:{token.end}: {token.text}: invalid input") from None


def _check_utf8(text: str) -> None:
    """Text from bytes that were not UTF-8 (command-line arguments, JSON escapes) holds surrogates."""
    for i, ch in enumerate(text):
        if "\ud800" <= ch <= "\udfff":
            shown = f"\\x{ord(ch) - 0xDC00:02x}" if ch >= "\udc80" else f"\\u{ord(ch):04x}"
            raise SyntaxProblem(f"{i}:{i + 1}: {shown}: invalid UTF-8")


def parse_all(text: str, build: Callable[[str, str, str], T]) -> list[T]:
    """Zero or more matchers; `build(name, op, value)` makes each (its ValueError is reported as
    `failed to create matcher: …`)."""
    _check_utf8(text)
    tokens = _Tokens(text)
    out: list[T] = []
    first = tokens.peek()
    if first is None:
        return out
    braced = first.kind == "{"
    if braced:
        tokens.take()
    nxt = tokens.peek()
    if nxt is not None and nxt.kind != "}":
        while True:
            name = _value(_expect(tokens, ("quoted", "unquoted"), "expected label name"))
            op = _expect(tokens, OPERATORS, "expected an operator such as '=', '!=', '=~' or '!~'").kind
            value = _value(_expect(tokens, ("quoted", "unquoted"), "expected label value"))
            try:
                out.append(build(name, op, value))
            except ValueError as exc:
                raise SyntaxProblem(f"failed to create matcher: {exc}") from None
            nxt = _peek(tokens, "expected a comma or close brace")
            if nxt is None or nxt.kind == "}":
                break
            if nxt.kind != ",":
                raise SyntaxProblem(f"{nxt.start}:{nxt.end}: unexpected {nxt.text}: expected a comma or close brace")
            tokens.take()
            nxt = _peek(tokens, "expected a matcher or close brace after comma")
            if nxt is None or nxt.kind == "}":
                break
            if nxt.kind not in ("quoted", "unquoted"):
                raise SyntaxProblem(f"{nxt.start}:{nxt.end}: unexpected {nxt.text}: "
                                    "expected a matcher or close brace after comma")
    _close(tokens, braced)
    return out


def _peek(tokens: _Tokens, context: str) -> _Token | None:
    try:
        return tokens.peek()
    except SyntaxProblem as exc:
        raise _wrap(exc, context) from None


def _close(tokens: _Tokens, braced: bool) -> None:
    """A closing brace exactly when there was an opening one, then the end of the input."""
    nxt = tokens.peek()
    if braced:
        if nxt is None:
            raise SyntaxProblem(f"0:{tokens.end}: end of input: expected close brace")
        if nxt.kind != "}":
            raise SyntaxProblem(f"0:{tokens.end}: {nxt.start}:{nxt.end}: unexpected {nxt.text}: "
                                "expected close brace")
        tokens.take()
    elif nxt is not None and nxt.kind == "}":
        tokens.take()
        raise SyntaxProblem(f"0:{tokens.end}: }}: expected opening brace")
    try:
        rest = tokens.peek()
    except SyntaxProblem as exc:
        raise _wrap(exc, "expected end of input") from None
    if rest is not None:
        raise SyntaxProblem(f"{rest.start}:{rest.end}: {rest.text}: expected end of input")


def parse_one(text: str, build: Callable[[str, str, str], T]) -> T:
    """Exactly one matcher (braces and a trailing comma allowed)."""
    found = parse_all(text, build)
    if len(found) != 1:
        raise SyntaxProblem("no matchers" if not found else f"expected 1 matcher, found {len(found)}")
    return found[0]
