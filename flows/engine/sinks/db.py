"""Database sinks: each output stream to its table in the results database (``DMP_SINK`` containing ``db``).

In: ``(key, frame)`` items of one stream: typed rows, as its declaration
says. Out: the rows upserted into the table of the same name at
``DMP_DB_URL`` (:mod:`flows.engine.db`), one transaction per
``DMP_DB_COMMIT`` at most (see *Commits*). :func:`open_db_sinks` runs at
start-up: it connects, creates or checks the schema, and fails in one line
naming ``DMP_DB_URL`` if it cannot.

**One writer per table.** A stream's sink has a single partition,
``db:<table>``; every worker lists it and Bytewax gives it to one of them,
routing every item there. SQLite takes one writer at a time per file:
several workers writing one table would queue on its lock for every batch.
With one writer per table, writers of different tables (on other workers
or processes) still take turns, but each transaction takes the lock up
front (``BEGIN IMMEDIATE``) and waits for it (``busy_timeout``), which
cannot deadlock, unlike transactions that read first and upgrade. In
PostgreSQL it keeps a table's upserts from contending for the same rows
(two transactions upserting overlapping keys in different orders can
deadlock). And a key's rows are written in the order that one writer
receives them.

**Commits.** Each commit rewrites every page it touched (the WAL's page
images in SQLite, the heap and index pages in PostgreSQL), and an index by
something else than time (``trends_by_product_id``) touches a page per
product: committing every Bytewax batch wrote gigabytes of WAL for a 56 MB
database and cost more CPU than all the trends analytics. So a partition
commits at most once per ``DMP_DB_COMMIT`` (1 s): the batches arriving
sooner than that after the last commit are held and go in, as one
transaction, with the first batch after it, or at the epoch's end
(``snapshot``, every 10 s of wall clock by default), or at the end of
input, whichever is first. A live stream's sparse batches therefore go in
as they come; a replay's dense ones a second's worth at a time. Of rows
with the same key in one commit the last is written, as separate commits
would have left it.

**One connection.** The table sinks of a run share one connection per
process (:class:`SharedDatabase`), taking turns: SQLite lets one writer in at
a time anyway, and a connection's page cache is dropped whenever another
connection has written the file, so a connection per table re-read its
index pages after every other table's commit (the default run's dozen
tables made the database most of its CPU).

**Delivery.** A write returns once its transaction is committed, retrying
while the database is away for up to ``DMP_DB_RETRY``
(:class:`~flows.engine.db.database.Database`); Bytewax completes an epoch,
and snapshots it, only after that. A resumed run replays the epochs after
the last snapshot, and rows are deterministic, so the replayed upserts
write the same values again: the tables end as an uninterrupted run's.
The partition's snapshot commits what it holds and is therefore nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import polars as pl
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.engine.config import Settings
from flows.engine.db.database import Database
from flows.engine.db.url import DbUrl
from flows.engine.streams import OutputStream

if TYPE_CHECKING:
    from flows.engine.db.postgres import Method


class DbSink(FixedPartitionedSink[pl.DataFrame, None]):
    """Writes one stream's typed frames into its table, through one partition (see the module docstring)."""

    def __init__(self, url: DbUrl, stream: OutputStream, retry_s: float = 120.0, method: Method = "copy",
                 commit_every_s: float = 1.0, shared: SharedDatabase | None = None):
        self.stream = stream
        self.commit_every_s = commit_every_s
        self.shared = shared or SharedDatabase(url, retry_s, method)

    def list_parts(self) -> list[str]:
        return [f"db:{self.stream.name}"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _DbPart:
        return _DbPart(self.shared, self.stream, self.commit_every_s)


class SharedDatabase:
    """The one connection of a run's table sinks in this process, taken in turns (see *One connection*).

    ``failed`` is set once a write failed: the run is then stopping, and the other tables' held rows are not
    written at close (each would retry for ``DMP_DB_RETRY`` and print an error line of its own).
    """

    def __init__(self, url: DbUrl, retry_s: float = 120.0, method: Method = "copy"):
        self.database = Database(url, retry_s=retry_s, method=method)
        self.lock = threading.Lock()
        self.users = 0
        self.failed = False

    def attach(self) -> None:
        with self.lock:
            self.users += 1

    def write(self, stream: OutputStream, frame: pl.DataFrame) -> None:
        with self.lock:
            try:
                self.database.write(stream, frame)
            except BaseException:
                self.failed = True
                raise

    def detach(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users <= 0:
                self.database.close()


class _DbPart(StatefulSinkPartition[pl.DataFrame, None]):
    def __init__(self, shared: SharedDatabase, stream: OutputStream, commit_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.shared = shared
        self.stream = stream
        self.commit_every_s = commit_every_s
        self.clock = clock
        self.held: list[pl.DataFrame] = []
        self.committed_at = -float("inf")
        shared.attach()

    def write_batch(self, values: list) -> None:
        frames = [value[1] if isinstance(value, tuple) else value for value in values]
        self.held.extend(frame for frame in frames if frame.height)
        if self.held and self.clock() - self.committed_at >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        """Write what is held in one transaction (the last row of each key)."""
        if not self.held:
            return
        frames, self.held = self.held, []
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed").unique(
            self.stream.key, keep="last", maintain_order=True)
        self.shared.write(self.stream, self.stream.conform(frame))
        self.committed_at = self.clock()

    def snapshot(self) -> None:
        self.commit()
        return None  # every row is committed before the epoch ends; replays are idempotent upserts

    def close(self) -> None:
        try:
            if not self.shared.failed:
                self.commit()
        finally:
            self.shared.detach()


def open_db_sinks(settings: Settings, streams: Sequence[OutputStream]) -> dict[str, DbSink]:
    """A sink per stream, after checking the database and its schema (every declared stream gets a table).

    Raises :class:`~flows.engine.db.errors.DbError` with one line naming
    ``DMP_DB_URL`` if the database cannot be had or a table does not match.
    """
    from flows.engine.analytics.registry import streams as declared

    url, retry_s, commit_s = settings.db_url, settings.db.retry_ms / 1000, settings.db.commit_ms / 1000
    database = Database.open(url, retry_s=retry_s)
    try:
        database.ensure_schema([*declared(), *streams])
        database.prepare(streams)
    finally:
        database.close()
    shared = SharedDatabase(url, retry_s)
    return {stream.name: DbSink(url, stream, commit_every_s=commit_s, shared=shared) for stream in streams}
