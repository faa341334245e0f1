"""Arithmetic between fields (`qty * 0.95`, `on_hand + inbound_qty - safety_stock`).

A tiny parser, not `eval`: numbers, field names, + - * /, unary minus and
parentheses. The tree compiles to durable_rules' `$add/$sub/$mul/$div`
expressions, and can be computed in Python where durable_rules cannot (for
order lines, whose items cannot be compared with each other there).

An expression is at most MAX_CHARS characters, MAX_OPERATORS operators and
MAX_PARENS nested parentheses, and its numbers are finite: the parser
recurses, and durable_rules receives the tree as nested JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")
_DR = {"+": "$add", "-": "$sub", "*": "$mul", "/": "$div"}
MAX_CHARS = 256
MAX_OPERATORS = 32
MAX_PARENS = 16


@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclass(frozen=True, slots=True)
class Bin:
    op: str
    left: Expr
    right: Expr


Expr = Num | Field | Bin


class ExprError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing blanks are left
            break
        number, name, other = match.groups()
        if number is not None:
            value = float(number)
            if not math.isfinite(value):
                raise ExprError(f"number {number[:12]}… in expression is too large")
            out.append(("num", value))
        elif name is not None:
            out.append(("name", name))
        elif other in "+-*/()":
            out.append(("op", other))
        else:
            raise ExprError(f"unexpected {other!r} in expression {text!r} (allowed: numbers, fields, + - * / and parentheses)")
        pos = match.end()
    return out


_DATE = re.compile(r"^\s*\d{4}-\d{1,2}(?:-\d{1,2})?\s*$")  # 2025-03-01, 2025-03


def looks_like_expression(text: str) -> bool:
    """True when a string names a field or puts numbers together with operators (`100 * 2`);
    a date (`2025-03-01`) stays a literal."""
    try:
        tokens = _tokens(text)
    except ExprError:
        return False
    if any(kind == "name" for kind, _ in tokens):
        return True
    return any(kind == "op" for kind, _ in tokens) and not _DATE.match(text)


def parse_expr(text: str) -> Expr:
    """Parse an expression; raises ExprError saying what is wrong."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression of {len(text):,} characters; at most {MAX_CHARS} (split the rule)")
    tokens = _tokens(text)
    operators, depth = 0, 0
    for kind, value in tokens:
        if kind != "op":
            continue
        operators += value in "+-*/"
        depth += {"(": 1, ")": -1}.get(value, 0)
        if depth > MAX_PARENS:
            raise ExprError(f"parentheses nested more than {MAX_PARENS} deep in expression {text[:40]!r}…")
    if operators > MAX_OPERATORS:
        raise ExprError(f"expression with {operators} operators; at most {MAX_OPERATORS} (split the rule)")
    pos = 0

    def peek() -> tuple[str, Any] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal pos
        if pos >= len(tokens):
            raise ExprError(f"expression {text!r} ends too early")
        pos += 1
        return tokens[pos - 1]

    def sum_() -> Expr:
        left = product()
        while (tok := peek()) is not None and tok[1] in ("+", "-") and tok[0] == "op":
            take()
            left = _bin(tok[1], left, product())
        return left

    def product() -> Expr:
        left = unary()
        while (tok := peek()) is not None and tok[1] in ("*", "/") and tok[0] == "op":
            take()
            left = _bin(tok[1], left, unary())
        return left

    def unary() -> Expr:
        kind, value = take()
        if kind == "op" and value == "-":
            return _bin("-", Num(0.0), unary())
        if kind == "op" and value == "(":
            inner = sum_()
            if take() != ("op", ")"):
                raise ExprError(f"missing ')' in expression {text!r}")
            return inner
        if kind == "num":
            return Num(value)
        if kind == "name":
            return Field(value)
        raise ExprError(f"unexpected {value!r} in expression {text!r}")

    tree = sum_()
    if pos != len(tokens):
        raise ExprError(f"unexpected {tokens[pos][1]!r} in expression {text!r}")
    return tree


def _bin(op: str, left: Expr, right: Expr) -> Expr:
    """A binary node; constants are folded so that durable_rules sees plain numbers."""
    if isinstance(left, Num) and isinstance(right, Num):
        value = compute(Bin(op, left, right), {})
        if value is None:
            raise ExprError("division by zero in expression")
        if not math.isfinite(value):
            raise ExprError("a constant in the expression is too large")
        return Num(value)
    return Bin(op, left, right)


def fields_of(expr: Expr) -> set[str]:
    if isinstance(expr, Field):
        return {expr.name}
    if isinstance(expr, Bin):
        return fields_of(expr.left) | fields_of(expr.right)
    return set()


def divides_by_field(expr: Expr) -> bool:
    """True when the expression divides by something that is not a constant.

    durable_rules divides integers as C does: by zero it kills the process
    (SIGFPE), so such expressions are computed by the engine instead.
    """
    if not isinstance(expr, Bin):
        return False
    if expr.op == "/" and not isinstance(expr.right, Num):
        return True
    return divides_by_field(expr.left) or divides_by_field(expr.right)


def to_durable(expr: Expr, ref: Callable[[str], Any]) -> Any:
    """durable_rules JSON for an expression; `ref(name)` spells a field reference."""
    if isinstance(expr, Num):
        # Always a float: durable_rules divides two integers as integers (7 / 2 = 3).
        return expr.value
    if isinstance(expr, Field):
        return ref(expr.name)
    return {_DR[expr.op]: {"$l": to_durable(expr.left, ref), "$r": to_durable(expr.right, ref)}}


def compute(expr: Expr, values: dict[str, Any]) -> float | None:
    """The value of an expression over `values`; None when a field is missing or not a number."""
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Field):
        value = values.get(expr.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    left, right = compute(expr.left, values), compute(expr.right, values)
    if left is None or right is None:
        return None
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    return None if right == 0 else left / right


def show(expr: Expr) -> str:
    if isinstance(expr, Num):
        return f"{expr.value:g}"
    if isinstance(expr, Field):
        return expr.name
    return f"({show(expr.left)} {expr.op} {show(expr.right)})"
