"""A write retries what may pass (a lost server, a busy lock) for DMP_DB_RETRY, and nothing else."""

from __future__ import annotations

import io
import sqlite3
from datetime import datetime, timezone

import polars as pl
import pytest

from flows.engine.analytics.registry import stream, streams
from flows.engine.db.database import Database, seconds_text
from flows.engine.db.errors import DbWriteError
from flows.engine.db.url import DbUrl

BOARD = stream("leaderboard")
ROWS = BOARD.conform(pl.DataFrame({
    "window_start": [datetime(2024, 1, 1, tzinfo=timezone.utc)], "window_end": [datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc)],
    "rank": [1], "product_id": ["p"], "revenue": [9.5], "units": [1], "purchases": [1]}))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def database(tmp_path, monkeypatch):
    fake, log = FakeTime(), io.StringIO()
    db = Database(DbUrl.parse(f"sqlite:///{tmp_path / 'dmp.sqlite'}"), retry_s=10, log=log, sleep=fake.sleep,
                  clock=lambda: fake.now)
    db.ensure_schema(streams())
    return db, fake, log


def failing(monkeypatch, db: Database, errors: list[BaseException]) -> None:
    upsert = db.dialect.upsert

    def flaky(connection, stream, frame):
        if errors:
            raise errors.pop(0)
        upsert(connection, stream, frame)

    monkeypatch.setattr(db.dialect, "upsert", flaky)


def test_a_lock_held_for_a_while_is_waited_out_with_backoff(database, monkeypatch):
    db, fake, log = database
    failing(monkeypatch, db, [sqlite3.OperationalError("database is locked")] * 3)
    db.write(BOARD, ROWS)
    assert fake.slept == [0.25, 0.5, 1.0]
    assert db.read(BOARD).height == 1
    assert log.getvalue().splitlines() == [
        f"dmp: leaderboard: a batch of 1 row (window_start#rank 2024-01-01T00:00:00Z#1 .. 2024-01-01T00:00:00Z#1): "
        f"{db.url} failed (database is locked); retrying for up to 10s (DMP_DB_RETRY)",
        f"dmp: leaderboard: a batch of 1 row (window_start#rank 2024-01-01T00:00:00Z#1 .. 2024-01-01T00:00:00Z#1): "
        f"written, {db.url} is back",
    ]


def test_after_the_retry_time_the_batch_is_not_written_and_the_error_says_which(database, monkeypatch):
    db, fake, log = database
    failing(monkeypatch, db, [sqlite3.OperationalError("database is locked")] * 100)
    with pytest.raises(DbWriteError, match=r"^leaderboard: a batch of 1 row \(.*\) was not written: .* kept failing "
                                           r"for 10s \(DMP_DB_RETRY\): database is locked; nothing after"):
        db.write(BOARD, ROWS)
    assert fake.slept == [0.25, 0.5, 1.0, 2.0, 4.0, 2.25]  # doubling, and the last sleep ends at the deadline
    assert log.getvalue().splitlines()[-1].startswith("dmp: leaderboard: a batch of 1 row (")
    assert db.read(BOARD).height == 0


def test_an_error_that_will_not_pass_is_not_retried(database, monkeypatch):
    db, fake, _ = database
    failing(monkeypatch, db, [sqlite3.IntegrityError("NOT NULL constraint failed: leaderboard.units")])
    with pytest.raises(DbWriteError, match="SQLite refused it: NOT NULL constraint failed"):
        db.write(BOARD, ROWS)
    assert fake.slept == []


@pytest.mark.parametrize(("seconds", "text"), [(120, "2m"), (90.5, "1m30.5s"), (2, "2s"), (0.5, "0.5s")])
def test_durations_read_as_settings_are_written(seconds, text):
    assert seconds_text(seconds) == text
