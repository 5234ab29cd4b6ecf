"""`python -m bytewax.run flows.dmp` into a database, as users run it: the tables hold what the files hold,
whatever the worker count, and a second run over the same input changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from flows.engine.analytics.registry import streams
from flows.engine.sinks.files import read_stream
from flows.engine.streams import BYTES
from tests.db.helpers import (
    SMALL_SIM,
    WALL_CLOCK,
    assert_same_tables,
    bytewax_run,
    canonical,
    read_tables,
    two_processes,
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, pg_schemas, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else pg_schemas()


def test_every_table_holds_what_the_stream_s_files_hold(reference):
    tables = reference["tables"]
    for stream in streams():
        files = read_stream(reference["out"], stream)
        # An upsert keeps one row per natural key; the files have each once already. JSON Lines show a dead
        # letter's invalid UTF-8 as \xNN text, the table holds the bytes themselves: compare as JSON shows them.
        table, files = tables[stream.name], canonical(stream, files)
        if any(c.kind is BYTES for c in stream.columns):
            table, files = stream.to_json(table), stream.to_json(files)
        assert_frame_equal(table, files, check_exact=True)
    assert all(tables[name].height for name in ("dead_letters", "trends", "leaderboard", "late", "sessions", "funnel",
                                                "recommendations", "triggers", "timeseries", "quality", "monitoring"))


def test_a_second_run_over_the_same_input_leaves_the_tables_unchanged(reference, tmp_path):
    first = reference["tables"]
    done = bytewax_run(settings={**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path), "DMP_DB_URL": reference["url"]})
    assert done.returncode == 0, done.stderr
    again = read_tables(reference["url"])
    for name, frame in first.items():
        if name in WALL_CLOCK:
            # Keyed by wall-clock times, so the second run adds its own rows (a monitoring interval both runs
            # fell in is the second's); the first run's other rows stay as they were.
            key = list(next(s for s in streams() if s.name == name).key)
            second = read_stream(tmp_path, name)
            assert again[name].height == frame.join(second.select(key), on=key, how="anti").height + second.height
            kept = frame.join(second.select(key), on=key, how="anti")
            assert_frame_equal(again[name].join(kept.select(key), on=key, how="semi").sort(key), kept.sort(key))
        else:
            assert (again[name].height, again[name].equals(frame)) == (frame.height, True), name


# Tables read back are typed frames, the same in both dialects: one reference serves both.


def test_four_workers_write_the_tables_one_worker_writes(sqlite_reference, empty_url, tmp_path):
    done = bytewax_run("-w", "4", settings={**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path), "DMP_DB_URL": empty_url})
    assert done.returncode == 0, done.stderr
    assert_same_tables(read_tables(empty_url), sqlite_reference["tables"])


def test_two_processes_write_the_tables_one_process_writes(sqlite_reference, empty_url, tmp_path):
    ran = two_processes({**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path), "DMP_DB_URL": empty_url})
    assert [code for code, _, _ in ran] == [0, 0], ran
    assert_same_tables(read_tables(empty_url), sqlite_reference["tables"])


def test_files_alone_write_no_database(tmp_path):
    done = bytewax_run(settings={"DMP_SIM_EVENTS": "2000", "DMP_OUT_DIR": str(tmp_path), "DMP_SINK": "files"})
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("*.sqlite*")) and (tmp_path / "trends" / "part-0000.jsonl").stat().st_size


def test_the_default_database_follows_the_outputs_directory_and_is_in_wal_mode(sqlite_reference):
    # The reference run sets DMP_OUT_DIR and DMP_SINK's default, files,db, but no DMP_DB_URL.
    connection = sqlite3.connect(sqlite_reference["out"] / "dmp.sqlite")
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA page_size").fetchone() == (16384,)  # made with 16 KiB pages (Sqlite.connect)
    assert connection.execute("SELECT count(*) FROM trends").fetchone() == (sqlite_reference["tables"]["trends"].height,)
    connection.close()
