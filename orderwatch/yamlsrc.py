"""YAML loading that remembers where every value came from.

Configuration and rule files are validated once at load; every problem is
reported as `file:line:col: message` so that a person can go and fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Pos:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SourceError(Exception):
    """One or more problems in a YAML source file, each with its position."""

    def __init__(self, problems: list[tuple[Pos, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{pos}: {msg}" for pos, msg in problems))


class Map(dict[str, Any]):
    """A YAML mapping; `pos` is where it starts, `key_pos[k]` where key k is."""

    pos: Pos
    key_pos: dict[str, Pos]

    def at(self, key: str) -> Pos:
        return self.key_pos.get(key, self.pos)


class Seq(list[Any]):
    """A YAML sequence; `pos` is where it starts, `item_pos[i]` where item i is."""

    pos: Pos
    item_pos: list[Pos]


def pos_of(value: Any, default: Pos) -> Pos:
    return getattr(value, "pos", default)


def _pos(node: yaml.Node, file: str) -> Pos:
    return Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    file = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Map:
    out = Map()
    out.pos = _pos(node, loader.file)
    out.key_pos = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            raise SourceError([(_pos(key_node, loader.file), "mapping keys must be plain scalars")])
        key = str(key)
        if key in out:
            raise SourceError([(_pos(key_node, loader.file), f"duplicate key {key!r}")])
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_pos[key] = _pos(key_node, loader.file)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Seq:
    out = Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.pos = _pos(node, loader.file)
    out.item_pos = [_pos(child, loader.file) for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
# Dates stay strings: the engine parses them with its own, documented formats.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become SourceError with the position."""
    loader = _Loader(text)
    loader.file = file
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = ""
        if exc.context and exc.context_mark:
            where = exc.context_mark
            context = f" ({exc.context} at {where.line + 1}:{where.column + 1})"
            if "end of stream" in (exc.problem or ""):
                mark = where  # an unclosed quote or bracket: the end of the file is not where to look
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError([(Pos(file, line, col), f"YAML syntax: {exc.problem or exc}{context}")]) from None
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError([(Pos(str(path), 1, 1), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise SourceError([(Pos(str(path), 1, 1), f"not UTF-8: {exc.reason}")]) from None
    return load_text(text, str(path))
