"""Order lines: child rows read with their header and carried as `fields.lines`.

An ERP keeps an order's lines in a table of their own (`purchase_order_line`,
`tabPurchase Order Item`). For each batch of header rows the sql connector
reads their lines in the same read-only transaction and maps them with their
own field mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from connectors.mapping import FieldMapping, MappingError
from connectors.sqltext import subquery_text

CHUNK = 500  # parent values per IN (…) list


@dataclass(frozen=True, slots=True)
class LinesConfig:
    """`lines:` of an sql entry: where the lines are and how they map."""

    parent: str  # the line column that refers to the header
    match: str  # the header column it refers to
    mapping: FieldMapping
    table: str | None = None
    query: str | None = None
    order_by: tuple[str, ...] = ()


class LineError(ValueError):
    """A line of an order that does not map; the whole order is a dead letter."""

    def __init__(self, index: int, error: MappingError) -> None:
        super().__init__(f"line {index + 1}: {error}")
        self.index = index
        self.error = error


class LinesReader:
    def __init__(self, cfg: LinesConfig, dialect: str) -> None:
        """`dialect` reads the lines' query (sqltext.dialect_of the source's URL)."""
        self.cfg = cfg
        names = list(dict.fromkeys([cfg.parent, *cfg.order_by, *cfg.mapping.columns()]))
        cols: list[sa.ColumnClause[Any]] = [sa.column(n) for n in names]
        if cfg.query is not None:
            source: sa.FromClause = sa.text(subquery_text(cfg.query, dialect)).columns(*cols).subquery("lines")
        else:
            schema, _, name = (cfg.table or "").rpartition(".")
            source = sa.table(name, *cols, schema=schema or None)
        self._source = source
        self._names = names

    def read(self, conn: sa.Connection, parents: Sequence[Any]) -> dict[Any, list[dict[str, Any]]]:
        """Raw line rows per parent value, in `order_by` order."""
        c = self._source.c
        out: dict[Any, list[dict[str, Any]]] = {}
        unique = list(dict.fromkeys(p for p in parents if p is not None))
        if conn.dialect.name != "sqlite":
            # PostgreSQL refuses text_column = 7; an untyped '7' compares with an integer or a
            # text column alike (and keeps the index). SQLite compares by column affinity.
            unique = [str(p) if type(p) is int else p for p in unique]
        for i in range(0, len(unique), CHUNK):
            stmt = (
                sa.select(*(c[n] for n in self._names))
                .where(c[self.cfg.parent].in_(unique[i : i + CHUNK]))
                .order_by(c[self.cfg.parent], *(c[n] for n in self.cfg.order_by))
            )
            for row in conn.execute(stmt).mappings():
                out.setdefault(_norm(row[self.cfg.parent]), []).append(dict(row))
        return out

    def lines_of(self, parent: Any, rows: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The mapped lines of the header whose `match` column holds `parent`; raise LineError
        for a line that does not map."""
        mapped = []
        for index, row in enumerate(rows.get(_norm(parent), [])):
            try:
                mapped.append(self.cfg.mapping.apply(row))
            except MappingError as exc:
                raise LineError(index, exc) from None
        return mapped


def _norm(value: Any) -> Any:
    # An id read as 7 from one table and "7" or Decimal(7) from the other is one parent.
    return str(value) if value is not None else None
