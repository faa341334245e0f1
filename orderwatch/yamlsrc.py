"""YAML loading that remembers where every value came from.

Configuration and rule files are validated once at load; every problem is
reported as `file:line:col: message` so that a person can go and fix it.

Loading is bounded, so that no file can hang or crash the process that reads
it (a worker reloading its rules, `rules check`): a file is at most
MAX_BYTES, nested at most MAX_DEPTH levels, and its aliases may not expand it
past MAX_VALUES values or MAX_TEXT characters (a "billion laughs" document is
refused while it is composed, before anything is built from it). Numbers are
finite and integers fit in 64 bits.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000  # values in the document with every alias expanded
MAX_TEXT = 16 * 1024 * 1024  # characters of its scalars, aliases expanded
INT_RANGE = (-(2**63), 2**63 - 1)


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


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def short(value: Any) -> str:
    """repr() of a value from a file, cut short: a message must not echo a whole (aliased) list."""
    return _SHORT.repr(value)


def pos_of(value: Any, default: Pos) -> Pos:
    return getattr(value, "pos", default)


def _pos(node: yaml.Node, file: str) -> Pos:
    return Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _limit(mark: yaml.Mark, file: str, msg: str) -> SourceError:
    return SourceError([(Pos(file, mark.line + 1, mark.column + 1), msg)])


class _Loader(yaml.SafeLoader):
    file = "<string>"

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # Per composed node: (values, characters, depth) with its aliases expanded.
        self._sizes: dict[int, tuple[int, int, int]] = {}
        self._values = 0
        self._text = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise _limit(event.start_mark, self.file, f"alias *{event.anchor} refers to a value that contains it")
            self._count(event.start_mark, size, f" (*{event.anchor} stands for {size[0]:,} values)")
            return node
        event = self.peek_event()
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _limit(event.start_mark, self.file, f"nested more than {MAX_DEPTH} levels deep")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            size = (1, len(node.value), 1)
        else:
            children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
            inner = [self._sizes[id(c)] for c in children]
            size = (1 + sum(s[0] for s in inner), len(node.value) + sum(s[1] for s in inner),
                    1 + max((s[2] for s in inner), default=0))
        self._sizes[id(node)] = size
        self._count(event.start_mark, (1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0), "")
        return node

    def _count(self, mark: yaml.Mark, size: tuple[int, int, int], what: str) -> None:
        """Add a value (or an alias's expansion) to the document's totals; refuse past the limits."""
        self._values += size[0]
        self._text += size[1]
        if self._values > MAX_VALUES:
            raise _limit(mark, self.file, f"aliases expand this document past {MAX_VALUES:,} values{what}")
        if self._text > MAX_TEXT:
            raise _limit(mark, self.file, f"aliases expand this document past {MAX_TEXT:,} characters{what}")
        if self._depth + size[2] > MAX_DEPTH:
            raise _limit(mark, self.file, f"nested more than {MAX_DEPTH} levels deep{what}")


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


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    digits = node.value.replace("_", "").lstrip("+-")
    # int() refuses more than 4,300 digits with a bare ValueError, and takes long before that.
    value = None if len(digits) > 24 else loader.construct_yaml_int(node)
    if value is None or not INT_RANGE[0] <= value <= INT_RANGE[1]:
        shown = node.value if len(node.value) <= 24 else f"{node.value[:12]}… ({len(digits):,} digits)"
        raise _limit(node.start_mark, loader.file,
                     f"integer {shown} is out of range (at most 64 bits: ±9,223,372,036,854,775,807); "
                     "write it in quotes if it is a text")
    return value


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        shown = node.value if len(node.value) <= 24 else f"{node.value[:12]}…"
        raise _limit(node.start_mark, loader.file,
                     f"{shown} is not a finite number (infinity and NaN are not allowed); "
                     "write it in quotes if it is a text")
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
# Dates stay strings: the engine parses them with its own, documented formats.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors and exceeded limits become SourceError with the position."""
    if len(text) > MAX_BYTES:
        raise SourceError([(Pos(file, 1, 1), f"larger than {MAX_BYTES // (1024 * 1024)} MiB")])
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
        if path.stat().st_size > MAX_BYTES:
            raise SourceError([(Pos(str(path), 1, 1), f"larger than {MAX_BYTES // (1024 * 1024)} MiB")])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError([(Pos(str(path), 1, 1), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise SourceError([(Pos(str(path), 1, 1), f"not UTF-8: {exc.reason}")]) from None
    return load_text(text, str(path))
