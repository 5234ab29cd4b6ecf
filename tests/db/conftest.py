"""Fixtures: PostgreSQL databases made for this session (dropped after it), a private server to stop and start,
and reference runs of the job shared by the tests.

The machines run PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres):
each session makes its own uniquely named databases there and drops them at
the end. Tests that stop a server stop one of their own instead
(:class:`PrivatePostgres`: ``initdb`` in a temporary directory, password
authentication, a free port), so the shared server never goes away under
anyone else's tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.db.helpers import PACED, SMALL_SIM, bytewax_run, free_port, read_tables

SHARED = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Callable[[str], str]]:
    """``make(label)`` -> the URL of a fresh database on the shared server; all are dropped at the end."""
    try:
        admin = psycopg.connect(f"{SHARED}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as ex:
        pytest.fail(f"no PostgreSQL at 127.0.0.1:5432 (the machines start one before every session): {ex}")
    made: list[str] = []

    def make(label: str = "t") -> str:
        name = f"dmp_test_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}"
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return f"{SHARED}/{name}"

    yield make
    for name in made:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture(scope="session")
def pg_url(pg_databases) -> str:
    """This session's own database on the shared server."""
    return pg_databases("session")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dmp.sqlite'}"


@pytest.fixture(scope="session")
def pg_schemas(pg_url) -> Callable[[], str]:
    """``make()`` -> the URL of a fresh schema in this session's database (quicker than a database each)."""

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{pg_url}?options=-csearch_path%3D{name}"

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, pg_schemas, tmp_path: Path) -> str:
    """A fresh, empty database of each dialect (for PostgreSQL, a schema of its own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dmp.sqlite'}"
    return pg_schemas()


class PrivatePostgres:
    """A PostgreSQL server of the tests' own, with password authentication, that a test may stop and start."""

    password = "s3cret-pw"

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are not in /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="dmp-test-pg-"))
        self.port = free_port()
        (self.dir / "pw").write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.dir / "pw", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={self.dir / 'pw'}", "-E", "UTF8", "--no-sync")
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE dmp")

    def _run(self, tool: str, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60)

    def url(self, database: str = "dmp", password: str | None = None) -> str:
        return f"postgresql://postgres:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.dir / "data" / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.remove()


@pytest.fixture
def restarted_after(private_pg: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private server, running again after the test whatever happened in it."""
    yield private_pg
    if not private_pg.running():
        private_pg.start()


# -- reference runs: one worker, the small simulation, files and database ----------------


def reference_run(out_dir: Path, url: str | None, sim: dict[str, str] = SMALL_SIM) -> dict:
    """``url=None``: the embedded default, a SQLite file in the outputs' directory."""
    done = bytewax_run(settings={**sim, "DMP_OUT_DIR": str(out_dir), **({"DMP_DB_URL": url} if url else {})})
    assert done.returncode == 0, done.stderr
    url = url or f"sqlite:///{out_dir / 'dmp.sqlite'}"
    return {"url": url, "out": out_dir, "tables": read_tables(url), "run": done}


@pytest.fixture(scope="session")
def sqlite_reference(tmp_path_factory) -> dict:
    return reference_run(tmp_path_factory.mktemp("reference-sqlite"), None)


@pytest.fixture(scope="session")
def pg_reference(tmp_path_factory, pg_databases) -> dict:
    return reference_run(tmp_path_factory.mktemp("reference-pg"), pg_databases("reference"))


@pytest.fixture(scope="session")
def paced_reference(tmp_path_factory) -> dict:
    """An uninterrupted run of the paced simulation (:data:`~tests.db.helpers.PACED`)."""
    return reference_run(tmp_path_factory.mktemp("reference-paced"), None, PACED)


@pytest.fixture(params=["sqlite", "postgresql"])
def reference(request) -> dict:
    """A one-worker run of the small simulation into files and a database of each dialect."""
    return request.getfixturevalue("sqlite_reference" if request.param == "sqlite" else "pg_reference")
