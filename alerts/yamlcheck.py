"""Validation helpers for the alerts YAML: typed getters that record `file:line:col` problems.

Every reader collects problems instead of stopping at the first one, so a
person fixing a file sees all of its mistakes at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orderwatch.yamlsrc import Map, Pos, Seq, SourceError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NOWHERE = Pos("<alerts>", 1, 1)


class Problems:
    """Problems found in one file, each with where it is."""

    def __init__(self) -> None:
        self.items: list[tuple[Pos, str]] = []

    def add(self, pos: Pos, message: str) -> None:
        self.items.append((pos, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SourceError(sorted(self.items, key=lambda p: (p[0].file, p[0].line, p[0].col)))


def parse_duration(text: Any) -> float:
    """`90s`, `15m`, `2h`, `1d`, `1w`, `1h30m` → seconds; ValueError says why."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d, 1h30m)")  # noqa: TRY004
    if isinstance(text, (int, float)):
        return float(text)
    compact = text.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d, 1h30m)")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest exact `1d2h`-style spelling of a duration."""
    rest = int(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def pos_at(node: Any, key: str | int | None = None, default: Pos = NOWHERE) -> Pos:
    """Where a key of a mapping, an item of a list, or the node itself is."""
    if isinstance(node, Map) and isinstance(key, str):
        return node.at(key)
    if isinstance(node, Seq) and isinstance(key, int) and key < len(node.item_pos):
        return node.item_pos[key]
    return getattr(node, "pos", default)


def check_keys(node: Map, allowed: Iterable[str], problems: Problems, what: str,
               required: Iterable[str] = ()) -> None:
    """Unknown keys and missing required keys are problems (no silent defaults for typos)."""
    allowed = set(allowed)
    for key in node:
        if key not in allowed:
            problems.add(node.at(key), f"unknown key '{key}' in {what}; known: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in node:
            problems.add(node.pos, f"{what} needs '{key}'")


def as_map(node: Any, pos: Pos, what: str, problems: Problems) -> Map | None:
    if isinstance(node, Map):
        return node
    problems.add(pos, f"{what} is a mapping (key: value lines)")
    return None


def as_list(node: Any, pos: Pos, what: str, problems: Problems) -> Seq | None:
    if isinstance(node, Seq):
        return node
    problems.add(pos, f"{what} is a list")
    return None


def get_str(node: Map, key: str, problems: Problems, default: str | None = None) -> str | None:
    value = node.get(key, default)
    if value is None or value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        problems.add(node.at(key), f"{key} is a text value")
        return default
    return str(value)


def get_bool(node: Map, key: str, problems: Problems, default: bool) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        problems.add(node.at(key), f"{key} is true or false")
        return default
    return value


def get_int(node: Map, key: str, problems: Problems, default: int) -> int:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(node.at(key), f"{key} is a whole number")
        return default
    return value


def get_duration(node: Map, key: str, problems: Problems, default: float | None) -> float | None:
    if key not in node:
        return default
    try:
        return parse_duration(node[key])
    except ValueError as exc:
        problems.add(node.at(key), f"{key}: {exc}")
        return default


def get_choice(node: Map, key: str, choices: Iterable[str], problems: Problems, default: str) -> str:
    choices = list(choices)
    value = node.get(key, default)
    if value not in choices:
        problems.add(node.at(key), f"{key} is one of {', '.join(choices)}; not {value!r}")
        return default
    return str(value)


def get_str_list(node: Map, key: str, problems: Problems) -> list[str]:
    """A list of text values; a single text value counts as a list of one."""
    value = node.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                              for v in value):
        problems.add(node.at(key), f"{key} is a list of text values")
        return []
    return [str(v) for v in value]


def substitute_env(node: Any, problems: Problems, env: Mapping[str, str] | None = None) -> None:
    """Replace `${NAME}` in every string value, in place: secrets stay out of the file."""
    env = os.environ if env is None else env
    if isinstance(node, Map):
        slots: list[tuple[Any, Pos]] = [(k, node.at(k)) for k in node]
    elif isinstance(node, Seq):
        slots = [(i, node.item_pos[i]) for i in range(len(node))]
    else:
        return
    for slot, pos in slots:
        value = node[slot]
        if not isinstance(value, str):
            substitute_env(value, problems, env)
            continue

        def replace(match: re.Match[str], pos: Pos = pos) -> str:
            name = match[1]
            if not _ENV_NAME.fullmatch(name):
                problems.add(pos, f"${{{name}}} is not an environment variable name")
                return match[0]
            if name not in env:
                problems.add(pos, f"environment variable {name} is not set")
                return match[0]
            return env[name]

        node[slot] = _ENV.sub(replace, value)
