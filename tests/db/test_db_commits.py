"""A table's sink commits at most once per DMP_DB_COMMIT: batches in between are held, and go in with the next
batch after it, at the epoch's snapshot or at the end; the last row of a key wins; after a failed write the
other tables' held rows are not written at close. On a real SQLite file, with a clock of the test's own."""

from __future__ import annotations

import polars as pl
import pytest

from flows.engine.db.database import Database
from flows.engine.db.errors import DbWriteError
from flows.engine.db.url import DbUrl
from flows.engine.sinks.db import SharedDatabase, _DbPart
from flows.engine.streams import INT, TEXT, Column, OutputStream

STREAM = OutputStream("counts", row="a count", fields="`name`, `n`", key=("name",),
                      columns=(Column("name", TEXT, nullable=False), Column("n", INT, nullable=False)))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(tmp_path):
    url = DbUrl.parse(f"sqlite:///{tmp_path / 'results.sqlite'}")
    database = Database.open(url)
    database.ensure_schema([STREAM])
    database.close()
    return url


def rows(*pairs: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"name": [p[0] for p in pairs], "n": [p[1] for p in pairs]}, schema=STREAM.schema)


def table(url: DbUrl) -> list[tuple]:
    database = Database.open(url, read_only=True)
    try:
        return sorted(database.read(STREAM).rows())
    finally:
        database.close()


def part(url: DbUrl, clock: Clock, shared: SharedDatabase | None = None, every_s: float = 1.0) -> _DbPart:
    return _DbPart(shared or SharedDatabase(url), STREAM, every_s, clock=clock)


def test_batches_sooner_than_the_commit_interval_are_held_and_go_in_with_the_first_one_after_it(url):
    clock = Clock()
    sink = part(url, clock)
    sink.write_batch([("k", rows(("a", 1)))])  # the first batch commits: nothing was committed before
    assert table(url) == [("a", 1)]
    clock.now += 0.4
    sink.write_batch([("k", rows(("b", 2)))])
    clock.now += 0.4
    sink.write_batch([("k", rows(("c", 3)))])
    assert table(url) == [("a", 1)]
    clock.now += 0.3  # 1.1 s after the last commit
    sink.write_batch([("k", rows(("d", 4)))])
    assert table(url) == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    sink.close()


def test_the_snapshot_and_the_close_commit_what_is_held(url):
    clock = Clock()
    sink = part(url, clock)
    sink.write_batch([("k", rows(("a", 1)))])
    sink.write_batch([("k", rows(("b", 2)))])
    assert table(url) == [("a", 1)]
    assert sink.snapshot() is None
    assert table(url) == [("a", 1), ("b", 2)]
    sink.write_batch([("k", rows(("c", 3)))])
    assert table(url) == [("a", 1), ("b", 2)]
    sink.close()
    assert table(url) == [("a", 1), ("b", 2), ("c", 3)]


def test_of_rows_with_the_same_key_held_together_the_last_is_written(url):
    clock = Clock()
    sink = part(url, clock)
    sink.write_batch([("k", rows(("a", 1)))])
    sink.write_batch([("k", rows(("a", 2), ("b", 1)))])
    sink.write_batch([("k", rows(("a", 3)))])
    sink.close()
    assert table(url) == [("a", 3), ("b", 1)]


def test_a_zero_interval_commits_every_batch(url):
    sink = part(url, Clock(), every_s=0.0)
    for n in range(3):
        sink.write_batch([("k", rows((f"r{n}", n)))])
        assert len(table(url)) == n + 1
    sink.close()


OTHER = OutputStream("others", row="a count", fields="`name`, `n`", key=("name",), columns=STREAM.columns)


def test_after_a_failed_write_the_other_tables_held_rows_are_not_written_at_close(url):
    clock, shared = Clock(), SharedDatabase(url, retry_s=0.0)
    failing = _DbPart(shared, OTHER, 1.0, clock=clock)  # its table was never made: SQLite refuses the write
    healthy = _DbPart(shared, STREAM, 1.0, clock=clock)
    healthy.write_batch([("k", rows(("a", 1)))])
    healthy.write_batch([("k", rows(("b", 2)))])  # held
    with pytest.raises(DbWriteError):
        failing.write_batch([("k", rows(("x", 9)))])
    healthy.close()
    failing.close()
    assert shared.failed
    assert table(url) == [("a", 1)]


def test_the_tables_of_a_run_share_one_connection_closed_with_the_last_sink(url):
    clock, shared = Clock(), SharedDatabase(url)
    first, second = _DbPart(shared, STREAM, 0.0, clock=clock), _DbPart(shared, STREAM, 0.0, clock=clock)
    first.write_batch([("k", rows(("a", 1)))])
    connection = shared.database.connection
    second.write_batch([("k", rows(("b", 2)))])
    assert shared.database.connection is connection
    first.close()
    assert shared.database._connection is connection
    second.close()
    assert shared.database._connection is None
    assert table(url) == [("a", 1), ("b", 2)]
