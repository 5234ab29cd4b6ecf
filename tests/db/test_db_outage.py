"""PostgreSQL going away mid-run: back within DMP_DB_RETRY, the run completes with complete tables; away for
longer, the run stops with one clear line naming the stream and batch not written. On a server of the tests' own."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.db.helpers import PACED, ROOT, assert_same_tables, bytewax_run, env, job, read_tables

pytestmark = pytest.mark.slow


def schema_url(server, name: str) -> str:
    with psycopg.connect(server.url(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    return f"{server.url()}?options=-csearch_path%3D{name}"


def wait_for_rows(url: str, process: subprocess.Popen, table: str = "trends") -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before the server was stopped"
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                if connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
                    return
        except psycopg.Error:
            pass  # no table yet
        time.sleep(0.2)


def start(url: str, out: Path, retry: str) -> subprocess.Popen:
    settings = {**PACED, "DMP_OUT_DIR": str(out), "DMP_DB_URL": url, "DMP_DB_RETRY": retry}
    return subprocess.Popen(job(), cwd=ROOT, env=env(**settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_postgres_stopped_and_restarted_within_the_retry_time_the_run_completes(restarted_after, paced_reference,
                                                                               tmp_path):
    server = restarted_after
    url = schema_url(server, "back_in_time")
    run = start(url, tmp_path, "1m")
    wait_for_rows(url, run)
    server.stop()
    time.sleep(4)
    server.start()
    _, stderr = run.communicate(timeout=180)
    assert run.returncode == 0, stderr
    assert re.search(r"^dmp: \w+: a batch of .* failed \(.*\); retrying for up to 1m \(DMP_DB_RETRY\)$", stderr, re.M)
    assert re.search(r"^dmp: \w+: a batch of .*: written, postgresql://postgres:\*\*\*@.* is back$", stderr, re.M)
    assert server.password not in stderr
    assert_same_tables(read_tables(url), paced_reference["tables"])


def test_postgres_away_longer_than_the_retry_time_stops_the_run_naming_the_batch(restarted_after, tmp_path):
    server = restarted_after
    url = schema_url(server, "gone_too_long")
    run = start(url, tmp_path, "2s")
    wait_for_rows(url, run)
    server.stop()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode != 0
    (line,) = [line for line in stderr.splitlines() if line.startswith("dmp:") and "was not written" in line]
    assert re.fullmatch(
        r"dmp: (\w+): a batch of [\d,]+ rows? \(.+ \.\. .+\) was not written: postgresql://postgres:\*\*\*@127\.0\.0\.1:"
        r"\d+/dmp\?options=-csearch_path%3Dgone_too_long kept failing for 2s \(DMP_DB_RETRY\): cannot connect to "
        r"PostgreSQL: .*; nothing after the last snapshot counts as done, so a run resumed from the recovery store "
        r"writes it again", line), line
    assert server.password not in stderr


def test_a_wrong_password_stops_start_up_with_one_line_naming_dmp_db_url(private_pg, tmp_path):
    done = bytewax_run(settings={"DMP_OUT_DIR": str(tmp_path), "DMP_DB_URL": private_pg.url(password="wrong-pw")},
                       timeout=60)
    assert (done.returncode, done.stderr.splitlines()) == (2, [
        f"dmp: DMP_DB_URL=postgresql://postgres:***@127.0.0.1:{private_pg.port}/dmp: cannot connect to PostgreSQL: "
        f'connection failed: connection to server at "127.0.0.1", port {private_pg.port} failed: FATAL:  password '
        'authentication failed for user "postgres"'])
