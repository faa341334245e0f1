"""Custom fields: what a site's data holds beyond the canonical fields, declared in configuration.

    fields:
      purchase_order:
        revision: {type: integer, description: revision number of the PO}
        disputed: bool                    # shorthand for {type: bool}
        lines:                            # fields of one order line
          rejected_qty: {type: number, description: quantity the inspection rejected}

The declaration sits in the connectors file (next to `connectors:`) or in a file
of its own that the connectors file names (`fields: fields.yaml`). Connectors
may then map these names, and rules, templates and labels may use them
(`rules check --fields FILE`, the worker's `fields` setting). A name that is
neither canonical nor declared stays an error everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import schema
from orderwatch.yamlsrc import Map, Pos, SourceError, load_file, pos_of, short

TYPES = ("string", "number", "integer", "date", "datetime", "bool")
_NAME = re.compile(r"[^\W\d]\w*")  # as templates read a {name}: letters of any script, digits, '_'
_SPEC_KEYS = ("type", "description")


@dataclass(frozen=True, slots=True)
class FieldDecl:
    """One declared field."""

    name: str
    type: str
    description: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class Declared:
    """Declared fields per entity, and per entity's order line."""

    fields: dict[str, dict[str, FieldDecl]] = field(default_factory=dict)
    lines: dict[str, dict[str, FieldDecl]] = field(default_factory=dict)

    def of(self, entity: str, line: bool = False) -> dict[str, FieldDecl]:
        return (self.lines if line else self.fields).get(entity, {})

    def install(self) -> None:
        """Make exactly these the custom fields rules may name (engine.schema.declare)."""
        schema.declare({e: set(d) for e, d in self.fields.items()},
                       {e: set(d) for e, d in self.lines.items()})


NONE = Declared()


def load_declared(path: str | Path) -> Declared:
    """The `fields:` of a file (a fields file or a connectors file); none if it has no `fields:`.
    Raises SourceError with every problem."""
    path = Path(path)
    doc = load_file(path)
    problems: list[tuple[Pos, str]] = []
    if not isinstance(doc, Map) or "fields" not in doc:
        return NONE
    declared = parse_declared(doc["fields"], doc.at("fields"), path.resolve().parent, problems)
    if problems:
        raise SourceError(problems)
    return declared


def parse_declared(node: Any, pos: Pos, base: Path, problems: list[tuple[Pos, str]],
                   follow: bool = True) -> Declared:
    """A `fields:` value: a mapping of entity → declarations, or (with `follow`) the name of a
    file holding one, relative to `base`."""
    if isinstance(node, str) and follow:
        target = base / node
        try:
            doc = load_file(target)
        except OSError as exc:
            problems.append((pos, f"fields: cannot read {str(target)!r}: {exc.strerror}"))
            return NONE
        except SourceError as exc:
            problems.extend(exc.problems)
            return NONE
        if not isinstance(doc, Map) or "fields" not in doc:
            problems.append((pos, f"fields: {str(target)!r} has no 'fields:' mapping"))
            return NONE
        return parse_declared(doc["fields"], doc.at("fields"), target.resolve().parent, problems, follow=False)
    if not isinstance(node, Map):
        hint = " or the name of a fields file" if follow else ""
        problems.append((pos_of(node, pos), "fields is a mapping of entity → {name: {type, description}}" + hint))
        return NONE
    sources = [e for e in schema.entities() if e not in schema.DERIVED]
    out, lines = {}, {}
    for entity, decls in node.items():
        where = node.at(entity)
        if entity not in sources:
            problems.append((where, f"fields: unknown entity {entity!r}; known: {', '.join(sources)}"))
            continue
        if not isinstance(decls, Map):
            problems.append((where, f"fields of {entity} is a mapping of name → {{type, description}}"))
            continue
        found = _declarations(entity, decls, problems, line=False)
        if found:
            out[entity] = found
        if "lines" in decls:
            sub = decls["lines"]
            if not schema.canonical_line_fields(entity):
                problems.append((decls.at("lines"), f"{entity} has no order lines"))
            elif not isinstance(sub, Map):
                problems.append((decls.at("lines"), "lines is a mapping of name → {type, description}"))
            else:
                found = _declarations(entity, sub, problems, line=True)
                if found:
                    lines[entity] = found
    return Declared(out, lines)


def _declarations(entity: str, decls: Map, problems: list[tuple[Pos, str]], line: bool) -> dict[str, FieldDecl]:
    canonical = schema.canonical_line_fields(entity) if line else schema.canonical_fields(entity)
    scope = f"a line of {entity}" if line else entity
    out: dict[str, FieldDecl] = {}
    for name, spec in decls.items():
        where = decls.at(name)
        if name == "lines" and not line:
            continue  # the line declarations, read by the caller
        if not _NAME.fullmatch(name):
            problems.append((where, f"field name {name!r} may hold letters, digits and '_' (not first a digit)"))
            continue
        if name in canonical:
            problems.append((where, f"{name!r} is already a canonical field of {scope}: declare only new ones"))
            continue
        if isinstance(spec, str):
            spec_map = Map({"type": spec})
            spec_map.pos, spec_map.key_pos = where, {"type": where}
            spec = spec_map
        if spec is None:
            spec = Map()
            spec.pos, spec.key_pos = where, {}
        if not isinstance(spec, Map):
            problems.append((where, f"field {name!r}: give a type or {{type: …, description: …}}, got {short(spec)}"))
            continue
        extra = sorted(set(spec) - set(_SPEC_KEYS))
        if extra:
            problems.append((spec.at(extra[0]), f"field {name!r}: unknown key {extra[0]!r}; known: {', '.join(_SPEC_KEYS)}"))
            continue
        type_ = spec.get("type", "string")
        if type_ not in TYPES:
            problems.append((spec.at("type"), f"field {name!r}: unknown type {short(type_)}; known: {', '.join(TYPES)}"))
            continue
        description = spec.get("description", "")
        if not isinstance(description, str):
            problems.append((spec.at("description"), f"field {name!r}: description is a text"))
            continue
        out[name] = FieldDecl(name, type_, description, where)
    return out
