"""The sql connector only reads: one SELECT per query, checked at load, in sessions the database
keeps read-only. Tried as someone who can edit the connectors file would try to write."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.config import build_connector, load_config
from connectors.mapping import FieldMapping, FieldSpec
from connectors.sql import SqlConfig, SqlConnector
from connectors.sqltext import QueryError
from orderwatch.yamlsrc import SourceError
from tests.dbservers import server_url, unique_name

URLS = {"postgresql": "postgresql+psycopg2://u@db/erp", "mariadb": "mysql+pymysql://u@db/erp",
        "sqlite": "sqlite:///erp.sqlite", "other": "mssql+pyodbc://u@db/erp"}
# The query: its ')' ends the subquery the connector wraps it in, and the rest runs.
ESCAPE = "SELECT * FROM po) AS src; COMMIT; DROP TABLE victim; SELECT * FROM (SELECT * FROM po"


def entry(id_: str, url: str, query: str, lines_query: str | None = None) -> str:
    """A connectors-file entry whose `query:` is on its 3rd line (JSON is YAML: any text fits)."""
    text = (f"  - id: {id_}\n    type: sql\n    query: {json.dumps(query)}\n    url: {url}\n"
            "    entity: purchase_order\n    key: po_number\n    cursor: updated_at\n"
            "    fields: {supplier: supplier}\n")
    if lines_query is not None:
        text += (f"    lines:\n      query: {json.dumps(lines_query)}\n      parent: po_number\n"
                 "      fields: {sku: sku}\n")
    return text


def load_problems(tmp_path: Path, entries: list[str]) -> list[tuple[int, str]]:
    path = tmp_path / "connectors.yaml"
    path.write_text("connectors:\n" + "".join(entries), encoding="utf-8")
    try:
        load_config(path)
    except SourceError as exc:
        assert all(pos.file == str(path) for pos, _ in exc.problems)
        return [(pos.line, message) for pos, message in exc.problems]
    return []


# (dialect, query, what the message says), each a way out of the one SELECT.
REFUSED = [
    ("postgresql", ESCAPE, "closes a parenthesis the query did not open"),
    ("mariadb", ESCAPE, "closes a parenthesis the query did not open"),
    ("sqlite", ESCAPE, "closes a parenthesis the query did not open"),
    ("postgresql", "SELECT * FROM po; COMMIT; DROP TABLE victim", "a ';' ends the statement before col 18"),
    ("postgresql", "SELECT * FROM po WHERE note = ';' ; DROP TABLE victim;", "a ';' ends the statement"),
    ("postgresql", "SELECT * FROM (SELECT * FROM po", "is never closed"),
    ("postgresql", "DROP TABLE victim", "must be a single SELECT (or WITH … SELECT) statement"),
    ("postgresql", "WITH gone AS (DELETE FROM victim RETURNING *) SELECT * FROM gone", "DELETE at col 15"),
    ("postgresql", "SELECT * INTO copy FROM po", "INTO at col 10"),
    ("postgresql", "SELECT * FROM po FOR UPDATE", "UPDATE at col 22"),
    # A comment or string that ends where the server says, not where a naive reader does.
    ("postgresql", "SELECT * FROM po -- x\r) AS src; DROP TABLE victim; SELECT (1", "closes a parenthesis"),
    ("postgresql", "SELECT a$q$ FROM po) AS src; DROP TABLE victim; -- $q$", "closes a parenthesis"),
    ("mariadb", "SELECT * FROM po --1) AS src; DROP TABLE victim; SELECT (1", "closes a parenthesis"),
    ("sqlite", "SELECT $v('x) FROM po) AS src; DROP TABLE victim; SELECT (') -- '", "closes a parenthesis"),
    # Text the servers (or their settings) read differently is refused, not guessed at.
    ("mariadb", "SELECT * FROM po WHERE s = 'x\\') AS src; DROP TABLE victim; -- '", "a backslash before a quote"),
    ("postgresql", "SELECT * FROM po WHERE s = 'x\\') AS src; DROP TABLE victim; -- '", "a backslash before a quote"),
    # '٣' is a letter to PostgreSQL: ٣E is a name and the string after it a plain one, not E'…'.
    ("postgresql", "SELECT ٣E'\\') AS src; DROP TABLE victim; --' FROM po", "a backslash before a quote"),
    ("mariadb", "SELECT /*!50000 1) AS src; DROP TABLE victim; SELECT (1 */", "one MariaDB/MySQL executes"),
    ("mariadb", "SELECT * FROM po /* /* */ ; DROP TABLE victim; */", "holds another '/*'"),
    ("other", "SELECT [a] FROM po", "quotes differently in different databases"),
    ("postgresql", "SELECT * FROM po WHERE s = 'open", "has no closing '"),
]


def test_a_query_that_is_not_one_select_is_refused_at_load_on_its_line(tmp_path: Path) -> None:
    entries = [entry(f"e{i}", URLS[dialect], query) for i, (dialect, query, _) in enumerate(REFUSED)]
    found = load_problems(tmp_path, entries)
    lines = [2 + 8 * i + 2 for i in range(len(REFUSED))]  # each entry is 8 lines; query: its 3rd
    assert [line for line, _ in found] == lines
    for (dialect, query, fragment), (_, message) in zip(REFUSED, found, strict=True):
        assert message.startswith("query: ") and fragment in message, (dialect, query, message)


def test_the_connector_refuses_the_query_however_it_is_built() -> None:
    cfg = SqlConfig(id="x", entity="purchase_order", url=URLS["postgresql"], key=("po_number",),
                    cursor="updated_at", mapping=FieldMapping(()), query=ESCAPE)
    with pytest.raises(QueryError) as info:
        SqlConnector(cfg)
    assert str(info.value) == (
        "the ')' at col 17 (') AS src; COMMIT; DROP TABLE victim; SEL…') closes a parenthesis the query "
        "did not open: the query is read inside parentheses, which it may not end")


def test_lines_queries_and_presets_are_checked_too_and_the_shipped_presets_pass(tmp_path: Path) -> None:
    """Each shipped preset's queries as its own database reads them (Odoo runs on PostgreSQL,
    ERPNext on MariaDB); a query given over a preset, and a lines query, are checked alike."""
    from connectors.presets import presets

    shipped = [
        f"  - id: {name.replace('.', '-')}\n    type: sql\n    preset: {name}\n    url: "
        + ("postgresql://u@db/odoo" if name.startswith("odoo.") else "mysql+pymysql://u@db/erpnext") + "\n"
        for name in sorted(presets())
    ]
    assert len(shipped) == 9
    override = ("  - id: odoo\n    type: sql\n    preset: odoo.purchase_order\n    url: postgresql://u@db/odoo\n"
                f"    query: {json.dumps(ESCAPE)}\n")
    lines = entry("erp", URLS["mariadb"], "SELECT * FROM po;", lines_query="SELECT * FROM line; DROP TABLE victim")
    found = load_problems(tmp_path, [*shipped, lines, override])
    start = 2 + 4 * len(shipped)
    assert [(line, message.split(":")[0]) for line, message in found] == [(start + 9, "query"), (start + 16, "query")]
    assert "a ';' ends the statement" in found[0][1] and "closes a parenthesis" in found[1][1]


@pytest.mark.integration
def test_connectors_check_refuses_the_query_and_leaves_the_database_alone(tmp_path: Path) -> None:
    """The issue's query, run by `connectors check` against a real PostgreSQL: refused before any
    connection, file:line printed, the victim table still there."""
    db = Server.open("postgresql")
    try:
        query = ESCAPE.replace("victim", db.victim).replace("po", db.po)
        path = tmp_path / "connectors.yaml"
        path.write_text("connectors:\n" + entry("erp", db.url, query), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "orderwatch", "connectors", "check", str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith(f"{path}:4:5: query: the ')' at col"), done.stdout
        assert "Traceback" not in done.stderr
        assert db.victim_rows() == 0
    finally:
        db.close()


@dataclass
class Server:
    """A real database with an order table `po` and a table `victim` no query may touch."""

    name: str
    url: str
    admin: sa.Engine
    po: str
    victim: str

    @classmethod
    def open(cls, name: str, tmp_path: Path | None = None) -> Server:
        if name == "sqlite":
            assert tmp_path is not None
            url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
        else:
            url = server_url(name)
        server = cls(name, url, sa.create_engine(url), unique_name("ow_po"), unique_name("ow_victim"))
        with server.admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {server.po} (po_number VARCHAR(20), supplier VARCHAR(50), "
                                 "updated_at INTEGER)")
            conn.exec_driver_sql(f"INSERT INTO {server.po} VALUES ('PO-1', 'it''s );', 1), ('PO-2', 'b', 2)")
            conn.exec_driver_sql(f"CREATE TABLE {server.victim} (x INTEGER)")
        return server

    def victim_rows(self) -> int:
        """Rows in the victim table (it must still exist: a dropped one fails the query)."""
        with self.admin.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {self.victim}").scalar_one())

    def close(self) -> None:
        with self.admin.begin() as conn:
            for table in (self.po, self.victim):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        self.admin.dispose()


SERVERS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("mariadb", marks=pytest.mark.integration),
]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    db = Server.open(request.param, tmp_path)
    try:
        yield db
    finally:
        db.close()


# Queries whose ';' and ')' sit in strings, quoted names and comments: each reads both rows.
ACCEPTED = {
    "all": [
        "SELECT * FROM {po} WHERE supplier <> ');' -- ) ; a comment\n;",
        "SELECT * FROM {po} /* ) ; */ WHERE supplier NOT IN (')', ';', '(')  ;  -- done",
        "WITH x AS (SELECT * FROM {po} WHERE supplier <> 'it''s (') SELECT * FROM x;\n/* the end */",
        'SELECT po_number AS "po_number", supplier AS "a;)", updated_at, supplier FROM {po}',
    ],
    "postgresql": [
        "SELECT * FROM {po} WHERE supplier <> $q$ ); DROP $q$ AND supplier <> E'\\');'",
        "SELECT * FROM {po} /* outer /* inner ) */ ; still a comment */ WHERE updated_at::int > 0",
    ],
    "mariadb": [
        "SELECT `po_number`, supplier AS `a;)`, updated_at, supplier FROM {po} # ); a comment\n",
        "SELECT * FROM {po} WHERE supplier <> 'x\\\\' -- a backslash, then the quote that ends it",
    ],
    "sqlite": [
        "SELECT po_number, supplier AS [a;)], updated_at, supplier FROM {po}",
    ],
}


def test_semicolons_and_parentheses_in_strings_and_comments_are_read_as_written(
        server: Server, tmp_path: Path) -> None:
    queries = ACCEPTED["all"] + ACCEPTED[server.name]
    path = tmp_path / "connectors.yaml"
    path.write_text("connectors:\n" + "".join(
        entry(f"q{i}", server.url, query.format(po=server.po)) for i, query in enumerate(queries)),
        encoding="utf-8")
    for cfg in load_config(path):
        conn = build_connector(cfg)
        try:
            result = conn.poll()
        finally:
            conn.close()
        assert [(r.key, r.fields["supplier"]) for r in result.records] == [("PO-1", "it's );"), ("PO-2", "b")], cfg


# The error each database gives for a write in a read-only session.
REFUSAL = {"postgresql": "read-only transaction", "mariadb": "READ ONLY transaction",
           "sqlite": "readonly database"}


def test_every_session_of_the_connector_refuses_to_write(server: Server) -> None:
    """Were the check fooled, the database itself refuses: writes run on the connector's own
    engine (no READ ONLY transaction asked for), a fresh and a pooled connection, and after a
    COMMIT that ends whatever transaction there was."""
    cfg = SqlConfig(id="erp", entity="purchase_order", url=server.url, key=("po_number",),
                    cursor="updated_at", mapping=FieldMapping((FieldSpec("supplier", "supplier"),)),
                    table=server.po)
    conn = SqlConnector(cfg)
    writes = [f"INSERT INTO {server.victim} VALUES (1)", f"DROP TABLE {server.victim}",
              f"CREATE TABLE {server.victim}_new (x INTEGER)"]
    try:
        assert len(conn.poll().records) == 2
        for write in writes:
            for commit_first in (False, True):
                with conn.engine.connect() as c:
                    if commit_first:
                        if server.name == "sqlite":
                            c.exec_driver_sql("BEGIN")  # sqlite3 starts none for us to end
                        c.exec_driver_sql("COMMIT")
                    with pytest.raises(sa.exc.DBAPIError, match=REFUSAL[server.name]):
                        c.exec_driver_sql(write)
                        c.commit()
        assert len(conn.poll().records) == 2
    finally:
        conn.close()
    assert server.victim_rows() == 0


@pytest.mark.integration
@pytest.mark.parametrize("name", ["postgresql", "mariadb"])
def test_a_commit_then_a_write_in_one_call_is_refused(name: str) -> None:
    """The issue's trick sent as one string, as a fooled check would let it through: PostgreSQL's
    session stays read-only after the COMMIT; on MariaDB one call runs one statement, even with
    the multi-statement flag asked for in the URL."""
    db = Server.open(name)
    url = db.url + ("?client_flag=65536" if name == "mariadb" else "")  # CLIENT.MULTI_STATEMENTS
    cfg = SqlConfig(id="erp", entity="purchase_order", url=url, key=("po_number",), cursor="updated_at",
                    mapping=FieldMapping(()), table=db.po)
    conn = SqlConnector(cfg)
    try:
        for write in (f"DROP TABLE {db.victim}", f"INSERT INTO {db.victim} VALUES (1)"):
            with conn.engine.connect() as c, pytest.raises(sa.exc.DBAPIError):
                c.exec_driver_sql(f"SELECT 1; COMMIT; {write}; SELECT 1")
                c.commit()
        assert db.victim_rows() == 0
    finally:
        conn.close()
        db.close()


def test_an_sqlite_uri_written_by_hand_is_read_only_too(tmp_path: Path) -> None:
    """A `file:` URI is used as written (no mode=ro added): `PRAGMA query_only` still refuses."""
    db = Server.open("sqlite", tmp_path)
    url = f"sqlite:///file:{tmp_path / 'erp.sqlite'}?uri=true"
    cfg = SqlConfig(id="erp", entity="purchase_order", url=url, key=("po_number",), cursor="updated_at",
                    mapping=FieldMapping(()), table=db.po)
    conn = SqlConnector(cfg)
    try:
        assert len(conn.poll().records) == 2
        with conn.engine.connect() as c, pytest.raises(sa.exc.DBAPIError, match="readonly database"):
            c.exec_driver_sql(f"DROP TABLE {db.victim}")
    finally:
        conn.close()
    assert db.victim_rows() == 0
    db.close()
