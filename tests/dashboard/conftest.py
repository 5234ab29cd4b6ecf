"""Fixtures of the dashboard's tests: a fresh database of either kind, and the dashboard over it.

PostgreSQL is the machine's (127.0.0.1:5432, trust auth, user postgres); each test session creates its
own database and drops it at the end, and each test starts from no tables. SQLite databases are files
in the test's own directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from flows.dashboard.app import create_app
from flows.dashboard.database import open_database

POSTGRES = os.environ.get("DMP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Callable[[], str]]:
    """``make()`` -> the URL of a new database of this test session's own; all are dropped at the end."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as ex:
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {ex}")
    made: list[str] = []

    def make() -> str:
        name = f"dmp_dashboard_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{POSTGRES}/{name}"

    try:
        yield make
    finally:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_database(postgres_databases) -> str:
    """One database for the session's tests that start from no tables."""
    return postgres_databases()


def _drop_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        names = [name for (name,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()]
        for name in names:
            connection.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')  # the views go with their tables


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A fresh, empty database (SQLite: a file not created yet; PostgreSQL: no tables)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dmp.sqlite'}"
    url = request.getfixturevalue("postgres_database")
    _drop_tables(url)
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def known_url(request, tmp_path_factory) -> str:
    """A database of either kind holding the known rows (tests/dashboard/known_rows.py); nobody writes to it after."""
    from tests.dashboard.known_rows import write_known

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('known') / 'dmp.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_databases")()
    write_known(url)
    return url


@pytest.fixture
def dashboard() -> Iterator[Callable]:
    """``dashboard(url)`` -> a Starlette TestClient over the dashboard reading ``url``."""
    from starlette.testclient import TestClient

    clients = []

    def make(url: str) -> TestClient:
        client = TestClient(create_app(open_database(url)))
        client.__enter__()  # runs the lifespan, so the pool is closed at the end
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
