"""The database servers that run on development and CI machines, for integration tests.

`server_url("postgresql")` returns a URL that answers, or skips the test
(fails it when CI == "true": on CI a missing server is a broken set-up, not
a reason to pass). Override with ORDERWATCH_TEST_POSTGRES_URL /
ORDERWATCH_TEST_MARIADB_URL.
"""

from __future__ import annotations

import os
import uuid
from typing import NoReturn

import pytest
import sqlalchemy as sa

# The PostgreSQL superuser is `postgres` on Debian's packages and `root` on some images.
CANDIDATES = {
    "postgresql": (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg2://root@127.0.0.1:5432/test",
    ),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/test",),
}
NAMES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}
_CONNECT_TIMEOUT = {"postgresql": {"connect_timeout": 3}, "mariadb": {"connect_timeout": 3}}
_found: dict[str, str] = {}
_missing: dict[str, tuple[str, str]] = {}  # asked once per run: a dead host costs a timeout


def unreachable(what: str, where: str, error: object) -> NoReturn:
    """Skip the test, or fail it on CI, because a server is not there."""
    message = f"{what} not reachable at {where}: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def server_url(server: str) -> str:
    """A working SQLAlchemy URL for `server` ("postgresql" or "mariadb")."""
    if server in _found:
        return _found[server]
    if server in _missing:
        unreachable(NAMES[server], *_missing[server])
    override = os.environ.get(f"ORDERWATCH_TEST_{server.upper()}_URL")
    candidates = (override,) if override else CANDIDATES[server]
    errors = []
    for url in candidates:
        engine = sa.create_engine(url, connect_args=_CONNECT_TIMEOUT[server])
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            errors.append(str(reason).strip().splitlines()[0])
            continue
        finally:
            engine.dispose()
        _found[server] = url
        return url
    _missing[server] = (" or ".join(candidates), "; ".join(errors))
    unreachable(NAMES[server], *_missing[server])


def unique_name(prefix: str) -> str:
    """A table name no parallel test run will also use."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
