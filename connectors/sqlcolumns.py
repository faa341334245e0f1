"""Which columns a table or query lacks: one sentence instead of the database's error.

A mapping naming a column the source does not have makes the database refuse
the SELECT, and its error names one column and quotes the whole statement.
When a read fails, the sql connector asks the source which columns it has and
reports every missing one by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from connectors.sqltext import subquery_text


class MissingColumns(RuntimeError):
    """The source lacks columns the connector reads."""


def columns_of(conn: sa.Connection, table: str | None, query: str | None, dialect: str) -> list[str] | None:
    """The columns of the table or query as the database names them; None if not knowable."""
    try:
        if query is not None:
            text = f"SELECT * FROM ({subquery_text(query, dialect)}) AS q WHERE 1 = 0"
            return list(conn.execute(sa.text(text)).keys())
        schema, _, name = (table or "").rpartition(".")
        return [c["name"] for c in sa.inspect(conn).get_columns(name, schema=schema or None)]
    except sa.exc.NoSuchTableError:
        return []
    except (sa.exc.DBAPIError, ValueError):
        return None


def check_columns(conn: sa.Connection, table: str | None, query: str | None, dialect: str,
                  needed: Sequence[str], what: str = "") -> None:
    """Raise MissingColumns naming every column of `needed` the source lacks (after a failed
    read; the failed transaction is rolled back first)."""
    conn.rollback()
    present = columns_of(conn, table, query, dialect)
    conn.rollback()
    if present is None:
        return
    source = f"table {table!r}" if query is None else "the query"
    if not present and query is None:
        raise MissingColumns(f"{what}there is no table {table!r} (or it has no columns)")
    missing = [c for c in dict.fromkeys(needed) if c not in present]
    if missing:
        raise MissingColumns(f"{what}{source} has no column(s) {', '.join(map(repr, missing))}; "
                             f"it has: {', '.join(map(repr, present))}")
