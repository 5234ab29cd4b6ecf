"""A run killed with SIGKILL after a snapshot and resumed from Bytewax's recovery store leaves the tables an
uninterrupted run leaves."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.engine.analytics.registry import stream
from flows.engine.db.database import Database
from flows.engine.db.errors import DbError
from flows.engine.db.url import DbUrl
from tests.db.helpers import PACED, ROOT, assert_same_tables, bytewax_run, env, job, read_tables

pytestmark = pytest.mark.slow
RECOVERY = ("-s", "1", "-b", "0")


def committed_epoch(recovery: Path) -> int:
    """The newest epoch the recovery store holds a complete snapshot of (0 before the first)."""
    try:
        with sqlite3.connect(f"file:{recovery / 'part-0.sqlite3'}?mode=ro", uri=True, timeout=1) as store:
            return store.execute("SELECT coalesce(max(commit_epoch), 0) FROM commits").fetchone()[0]
    except sqlite3.OperationalError:  # being written
        return 0


def trends_rows(url: str) -> int:
    """Rows in the trends table so far (0 before the run made it)."""
    try:
        database = Database.open(DbUrl.parse(url), read_only=True)
    except DbError:
        return 0
    try:
        return database.read(stream("trends")).height
    except database.dialect.errors:
        return 0
    finally:
        database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, pg_schemas, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else pg_schemas()


def test_killed_after_a_snapshot_and_resumed_the_tables_equal_an_uninterrupted_run(paced_reference, url, tmp_path):
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True, cwd=ROOT)
    settings = {**PACED, "DMP_OUT_DIR": str(tmp_path / "out"), "DMP_DB_URL": url}

    first = subprocess.Popen(job("-r", str(recovery), *RECOVERY), cwd=ROOT, env=env(**settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (committed_epoch(recovery) >= 3 and trends_rows(url)):
        assert first.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)
    partial = trends_rows(url)
    assert 0 < partial < paced_reference["tables"]["trends"].height

    resumed = bytewax_run("-r", str(recovery), *RECOVERY, settings=settings)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_tables(read_tables(url), paced_reference["tables"])
