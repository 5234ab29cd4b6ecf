"""A database that cannot be used stops `python -m bytewax.run flows.dmp` at start-up with one line naming
DMP_DB_URL, its password masked, exit status 2, and no traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.db.helpers import bytewax_run, free_port

pytestmark = pytest.mark.slow


def one_line(settings: dict[str, str], tmp_path: Path) -> str:
    done = bytewax_run(settings={"DMP_OUT_DIR": str(tmp_path), **settings}, timeout=60)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    return line


def test_a_url_that_is_not_a_database_url(tmp_path):
    assert one_line({"DMP_DB_URL": "mysql://root:hunter2@db/dmp"}, tmp_path) == (
        "dmp: DMP_DB_URL: expected sqlite:///path/to/file.sqlite or postgresql://user:password@host:5432/database; "
        "got 'mysql://root:***@db/dmp'")


def test_a_server_that_does_not_answer(tmp_path):
    port = free_port()
    assert one_line({"DMP_DB_URL": f"postgresql://postgres:hunter2@127.0.0.1:{port}/dmp"}, tmp_path) == (
        f"dmp: DMP_DB_URL=postgresql://postgres:***@127.0.0.1:{port}/dmp: cannot connect to PostgreSQL: connection "
        f'failed: connection to server at "127.0.0.1", port {port} failed: Connection refused; Is the server running '
        "on that host and accepting TCP/IP connections?")


def test_a_database_that_does_not_exist(tmp_path):
    assert one_line({"DMP_DB_URL": "postgresql://postgres@127.0.0.1:5432/dmp_no_such_database"}, tmp_path) == (
        "dmp: DMP_DB_URL=postgresql://postgres@127.0.0.1:5432/dmp_no_such_database: cannot connect to PostgreSQL: "
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database '
        '"dmp_no_such_database" does not exist')


def test_a_role_that_does_not_exist(tmp_path):
    # The shared server trusts every login; a wrong password is refused by the tests' own server (test_db_outage).
    line = one_line({"DMP_DB_URL": "postgresql://nobody:hunter2@127.0.0.1:5432/postgres"}, tmp_path)
    assert line.startswith("dmp: DMP_DB_URL=postgresql://nobody:***@127.0.0.1:5432/postgres: cannot connect")
    assert line.endswith('FATAL:  role "nobody" does not exist') and "hunter2" not in line


def test_a_sqlite_file_in_a_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    line = one_line({"DMP_DB_URL": f"sqlite:///{tmp_path}/file/dmp.sqlite"}, tmp_path)
    assert line.startswith(f"dmp: DMP_DB_URL=sqlite:///{tmp_path}/file/dmp.sqlite: cannot connect to SQLite: ")


def test_an_existing_table_that_does_not_match(tmp_path):
    with sqlite3.connect(tmp_path / "dmp.sqlite") as connection:
        connection.execute("CREATE TABLE trends (window_start TEXT NOT NULL, product_id TEXT NOT NULL, views INTEGER)")
    assert one_line({}, tmp_path) == (
        f"dmp: DMP_DB_URL=sqlite:///{tmp_path}/dmp.sqlite: table 'trends' does not match the trends stream's "
        "declaration: it lacks the column 'window_end' TEXT NOT NULL (time); nothing was written: migrate the "
        "table, or drop it to have it made anew")
