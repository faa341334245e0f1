"""The text of an sql connector's `query:`: one SELECT, read as the database's own lexer reads it.

The connector reads a query as a subquery, `SELECT … FROM (<query>) AS src`. Before
any of it is sent, the query is split into tokens the way its server splits them:
quoted strings, quoted identifiers, PostgreSQL's dollar quotes and E'' strings,
MariaDB's backticks and `#` comments, `--` and `/* */` comments. So a `;` or a `)`
inside a string or a comment is told from one that would end the statement or
the parentheses around it. Where servers, or settings of one server, read the same
text differently (a backslash before a quote, nested comments, MariaDB's executable
`/*! */` comments), the query is refused rather than guessed at.

This check is the first guard; the second is the read-only session the connector
opens (sql.py), which the database enforces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

# Dialects whose lexer is followed here; any other is read by the strictest rules of all.
DIALECTS = ("postgresql", "mysql", "sqlite")
# Words that write or lock in some dialect even inside a SELECT: a data-modifying WITH
# (PostgreSQL), SELECT … INTO (a new table, or a file on MariaDB), FOR UPDATE.
WRITING_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO"})
_SPACE = " \t\n\r\f\v"
_WORD_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]+")
_PG_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")  # ASCII: '٣' is a letter to it
_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_PARAM = re.compile(r"\$[0-9]+")
# Servers end some comments at a NUL and some lines at a lone CR: neither belongs in a query.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


class QueryError(ValueError):
    """The query is not a single SELECT, or cannot be read for certain."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, quoted (a string or a quoted identifier), symbol, other
    text: str
    start: int


def dialect_of(url: str | sa.URL) -> str:
    """The lexer to read a query for `url` with: postgresql, mysql, sqlite or other."""
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        return "other"
    backend = "mysql" if backend == "mariadb" else backend
    return backend if backend in DIALECTS else "other"


def select_body(query: str, dialect: str) -> str:
    """The query without its trailing `;` and comments; QueryError unless it is a single
    SELECT (or WITH … SELECT) whose parentheses pair up and that writes nothing."""
    bad = _CONTROL.search(query)
    if bad:
        raise QueryError(f"the query holds a control character ({bad[0]!r}) at {_at(query, bad.start())}")
    found = tokens(query, dialect)
    while found and found[-1].text == ";":
        found.pop()
    if not found:
        raise QueryError("the query is empty")
    first = next((t for t in found if t.text != "("), found[0])
    if first.kind != "word" or first.text.upper() not in ("SELECT", "WITH"):
        raise QueryError("the query must be a single SELECT (or WITH … SELECT) statement; it starts "
                         f"with {_snippet(query, first.start)!r}")
    opened: list[Token] = []
    for token in found:
        if token.text == ";" and token.kind == "symbol":
            raise QueryError(f"a ';' ends the statement before {_near(query, token, after=True)}: only a "
                             "single SELECT is read (a ';' at the very end is fine)")
        if token.text == "(" and token.kind == "symbol":
            opened.append(token)
        elif token.text == ")" and token.kind == "symbol":
            if not opened:
                raise QueryError(f"the ')' at {_near(query, token)} closes a parenthesis the query did not "
                                 "open: the query is read inside parentheses, which it may not end")
            opened.pop()
        elif token.kind == "word" and token.text.upper() in WRITING_WORDS:
            raise QueryError(f"{token.text.upper()} at {_near(query, token)} writes or locks rows, and the "
                             "query may only read (a column of that name must be quoted)")
    if opened:
        raise QueryError(f"the '(' at {_near(query, opened[-1])} is never closed")
    end = found[-1].start + len(found[-1].text)
    return query[:end]


def subquery_text(query: str, dialect: str) -> str:
    """A checked query as the text of a subquery (QueryError if it fails the check)."""
    # Colons escaped so that '10:30' or ::casts in the user's SQL are not bind params; the
    # newline is there so that nothing after the query could belong to a comment of it.
    return select_body(query, dialect).replace(":", "\\:") + "\n"


def tokens(query: str, dialect: str) -> list[Token]:
    """The query's tokens as `dialect`'s server reads them (comments and spaces left out);
    QueryError for text that does not end (a string, a comment) or that servers read apart."""
    return _Lexer(query, dialect).run()


class _Lexer:
    def __init__(self, text: str, dialect: str) -> None:
        self.text, self.dialect = text, dialect
        self.out: list[Token] = []

    def run(self) -> list[Token]:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c in _SPACE:
                i += 1
            elif (c == "#" and self.dialect == "mysql") or (text.startswith("--", i) and self._dash_comment(i)):
                i = self._line_comment(i)
            elif text.startswith("/*", i):
                i = self._block_comment(i)
            elif c in "'\"":
                i = self._quoted(i, c, self._backslash(i, c))
            elif c == "`" and self.dialect != "postgresql":
                self._ambiguous(c, i, "a backtick")
                i = self._quoted(i, c, "none")
            elif c == "[" and self.dialect == "sqlite":
                end = text.find("]", i + 1)
                if end < 0:
                    raise QueryError(f"the identifier at {self._at(i)} has no closing ']'")
                i = self._emit("quoted", i, end + 1)
            elif c == "$" and self.dialect == "postgresql":
                i = self._dollar(i)
            elif c in "$@:#" and self.dialect == "sqlite":
                i = self._sqlite_variable(i)
            elif self.dialect == "postgresql" and (number := _PG_NUMBER.match(text, i)):
                i = self._emit("other", i, number.end())
            elif (word := _WORD.match(text, i)) and (self.dialect != "postgresql" or _WORD_START.match(c)):
                i = self._emit("word", i, word.end())
            else:
                if self.dialect == "other" and c in "[]$#\\":
                    self._ambiguous(c, i, repr(c))
                i = self._emit("symbol", i, i + 1)
        return self.out

    def _emit(self, kind: str, start: int, end: int) -> int:
        self.out.append(Token(kind, self.text[start:end], start))
        return end

    def _dash_comment(self, i: int) -> bool:
        """Whether the `--` at i starts a comment: MariaDB wants a space or control after it."""
        follower = self.text[i + 2:i + 3]
        if self.dialect in ("postgresql", "sqlite"):
            return True
        if follower == "" or follower in _SPACE or ord(follower) < 32 or follower == "\x7f":
            return True
        if self.dialect == "other":
            raise QueryError(f"'--' at {self._at(i)} is a comment for some databases and two minus "
                             "signs for others: write '-- ' with a space, or '- -'")
        return False

    def _line_comment(self, i: int) -> int:
        """The end of the comment at i: its line's end (for PostgreSQL a CR ends it too)."""
        text = self.text
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        cr = text.find("\r", i, end)
        if cr >= 0 and self.dialect == "postgresql":
            return cr + 1
        if cr >= 0 and cr != end - 1 and self.dialect == "other":  # a CR alone, not a CRLF
            raise QueryError(f"the comment at {self._at(i)} holds a carriage return, which ends it "
                             "for some databases and not for others")
        return end + 1

    def _block_comment(self, i: int) -> int:
        text = self.text
        if self.dialect in ("mysql", "other") and (text.startswith("/*!", i) or text.startswith("/*M!", i)):
            raise QueryError(f"the comment at {self._at(i)} is one MariaDB/MySQL executes: leave it out")
        depth, j = 1, i + 2
        while depth:
            close, nested = text.find("*/", j), text.find("/*", j)
            if close < 0:
                raise QueryError(f"the comment at {self._at(i)} is never closed ('*/')")
            if 0 <= nested < close:
                if self.dialect != "postgresql":
                    raise QueryError(f"the comment at {self._at(i)} holds another '/*': some databases "
                                     "nest comments and others do not")
                depth, j = depth + 1, nested + 2
            else:
                depth, j = depth - 1, close + 2
        return j

    def _backslash(self, i: int, quote: str) -> str:
        """How a backslash inside the quotes at i reads: `escape` it escapes the next character,
        `none` it is a character, `reject` it escapes or not depending on server settings."""
        if self.dialect == "sqlite" or (quote == '"' and self.dialect == "postgresql"):
            return "none"
        if self.dialect == "postgresql":
            before = self.out[-1] if self.out else None
            joined = before is not None and before.start + len(before.text) == i
            if joined and before is not None and before.kind == "word" and before.text in ("E", "e"):
                return "escape"  # E'…': always escapes
            return "reject"  # '…': escapes only with standard_conforming_strings off
        return "reject"  # MariaDB: unless sql_mode has NO_BACKSLASH_ESCAPES

    def _quoted(self, i: int, quote: str, backslash: str) -> int:
        """A string or quoted identifier from i; a doubled quote stands for one."""
        text, j = self.text, i + 1
        while True:
            quote_at = text.find(quote, j)
            slash_at = text.find("\\", j) if backslash != "none" else -1
            if quote_at < 0:
                raise QueryError(f"the quoted text at {self._at(i)} has no closing {quote}")
            if 0 <= slash_at < quote_at:
                if backslash == "reject" and text[slash_at + 1:slash_at + 2] == quote:
                    raise QueryError(f"a backslash before a quote (near {self._at(slash_at)}) reads "
                                     "differently depending on server settings: double the quote instead")
                j = slash_at + 2
            elif text[quote_at + 1:quote_at + 2] == quote:
                j = quote_at + 2
            else:
                return self._emit("quoted", i, quote_at + 1)

    def _dollar(self, i: int) -> int:
        """PostgreSQL: $tag$ … $tag$, or a parameter $1."""
        delimiter = _DOLLAR_QUOTE.match(self.text, i)
        if delimiter is None:
            param = _PARAM.match(self.text, i)
            return self._emit("other", i, param.end() if param else i + 1)
        end = self.text.find(delimiter[0], delimiter.end())
        if end < 0:
            raise QueryError(f"the dollar-quoted text at {self._at(i)} has no closing {delimiter[0]}")
        return self._emit("quoted", i, end + len(delimiter[0]))

    def _sqlite_variable(self, i: int) -> int:
        """SQLite: $name, @name, :name, #name, with TCL's `::` parts and a `(…)` suffix."""
        text, j, letters = self.text, i + 1, 0
        while j < len(text):
            c = text[j]
            if _WORD.match(c):
                letters, j = letters + 1, j + 1
            elif c == "(" and letters:
                k = j + 1
                while k < len(text) and text[k] not in _SPACE and text[k] != ")":
                    k += 1
                if text[k:k + 1] != ")":
                    raise QueryError(f"the variable at {self._at(i)} has no closing ')'")
                j = k + 1
                break
            elif text.startswith("::", j):
                j += 2
            else:
                break
        return self._emit("other", i, j)

    def _ambiguous(self, c: str, i: int, what: str) -> None:
        if self.dialect == "other":
            raise QueryError(f"{what} at {self._at(i)} quotes differently in different databases, and "
                             "this one's rules are not known here: leave it out or read a table or view")

    def _at(self, i: int) -> str:
        return _at(self.text, i)


def _at(query: str, i: int) -> str:
    return _near(query, Token("other", "", i))


def _near(query: str, token: Token, after: bool = False) -> str:
    """Where `token` is, as a person finds it: line and column in the query, and the text there."""
    start = token.start + (len(token.text) if after else 0)
    line = query.count("\n", 0, start) + 1
    col = start - (query.rfind("\n", 0, start) + 1) + 1
    snippet = _snippet(query, start)
    where = f"line {line} col {col} of the query" if "\n" in query.strip() else f"col {col}"
    return f"{where} ({snippet!r})" if snippet else where


def _snippet(query: str, start: int) -> str:
    snippet = " ".join(query[start:start + 40].split())
    return snippet + "…" if len(query) - start > 40 else snippet
