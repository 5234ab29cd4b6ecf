"""One connection to the results database, which outlives the server going away for a while.

In: a ``DMP_DB_URL`` (:class:`~flows.engine.db.url.DbUrl`). Out: a
:class:`Database` that writes typed frames of a stream as one upsert
transaction each (:meth:`Database.write`), creates and checks the schema
(:meth:`Database.ensure_schema`) and reads tables back as typed frames
(:meth:`Database.read`). Opening it connects at once, so a bad address, a
missing database or a refused login is one line naming ``DMP_DB_URL``
(:class:`~flows.engine.db.errors.DbUnavailableError`).

A write that fails for a reason that may pass (the server restarting, the
connection lost, SQLite's lock held too long) is retried on a new
connection with exponential backoff (0.25 s doubling to 5 s) for at most
``retry_s`` (``DMP_DB_RETRY``), saying so on stderr; then it raises
:class:`~flows.engine.db.errors.DbWriteError` naming the stream and the
batch. It blocks meanwhile, which is the point: the sink does not return,
so the epoch does not complete and no snapshot covers rows that are not in
the database. Any other database error (a constraint, a type) raises at once.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import polars as pl

from flows.engine.db.dialect import Dialect, first_line
from flows.engine.db.errors import DbUnavailableError, DbWriteError
from flows.engine.db.schema import ensure_schema
from flows.engine.db.sqlite import Sqlite
from flows.engine.db.url import DbUrl
from flows.engine.streams import OutputStream

if TYPE_CHECKING:
    from flows.engine.db.postgres import Method

FIRST_DELAY_S, MAX_DELAY_S = 0.25, 5.0


def dialect_for(url: DbUrl, method: Method = "copy") -> Dialect:
    """The dialect of a (valid) URL; ``method`` picks how PostgreSQL writes batches."""
    if url.dialect == "sqlite":
        return Sqlite()
    if url.dialect == "postgresql":
        from flows.engine.db.postgres import Postgres  # psycopg is imported only by those who use it

        return Postgres(method)
    raise DbUnavailableError(f"DMP_DB_URL: {url.problem}")


def seconds_text(seconds: float) -> str:
    """``120`` -> ``2m``, ``90.5`` -> ``1m30.5s`` (as settings are written)."""
    minutes, rest = divmod(round(seconds, 1), 60)
    return (f"{int(minutes)}m" if minutes else "") + (f"{rest:g}s" if rest or not minutes else "")


class Database:
    """A connection (made on first use, remade after a failure) to the database at ``url``.

    ``read_only`` connections refuse writes (the query tool's). ``log``
    receives the retry messages (stderr by default); ``sleep`` and
    ``clock`` are there for tests.
    """

    def __init__(self, url: DbUrl, *, retry_s: float = 120.0, method: Method = "copy", read_only: bool = False,
                 log: TextIO | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.dialect = dialect_for(url, method)
        self.retry_s = retry_s
        self.read_only = read_only
        self.log = log
        self.sleep = sleep
        self.clock = clock
        self._connection: Any = None
        self._prepared: set[str] = set()

    @classmethod
    def open(cls, url: DbUrl, **options: Any) -> Database:
        """Connect now: :class:`DbUnavailableError` (one line naming ``DMP_DB_URL``) if the database cannot be had."""
        database = cls(url, **options)
        database.connection  # noqa: B018 - connecting is the point
        return database

    @property
    def connection(self) -> Any:
        if self._connection is None:
            try:
                self._connection = self.dialect.connect(self.url, read_only=self.read_only)
            except self.dialect.errors as ex:
                reason = f"cannot connect to {self.dialect.name}: {self.url.hide(first_line(ex))}"
                raise DbUnavailableError(f"DMP_DB_URL={self.url}: {reason}", reason) from None
            self._prepared.clear()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(*self.dialect.errors):  # a connection already lost has nothing left to close
                self._connection.close()
            self._connection = None
        self._prepared.clear()  # staging tables die with their connection

    def ensure_schema(self, streams: Sequence[OutputStream]) -> list[str]:
        """Create the missing tables, indexes and views, check the existing ones; the tables created."""
        return self._retrying(f"DMP_DB_URL={self.url}: creating the schema", lambda: ensure_schema(
            self.dialect, self.connection, streams, f"DMP_DB_URL={self.url}"))

    def prepare(self, streams: Sequence[OutputStream]) -> None:
        """Ready this connection to write ``streams`` (at start-up: a missing privilege shows now, not mid-run)."""

        def attempt() -> None:
            connection = self.connection
            for stream in streams:
                if stream.name not in self._prepared:
                    self.dialect.prepare(connection, stream)
                    self._prepared.add(stream.name)

        self._retrying(f"DMP_DB_URL={self.url}: preparing to write", attempt)

    def write(self, stream: OutputStream, frame: pl.DataFrame) -> None:
        """Upsert typed rows of ``stream`` in one transaction, retrying for up to ``retry_s``."""

        def attempt() -> None:
            connection = self.connection  # first: a new connection has nothing prepared
            if stream.name not in self._prepared:
                self.dialect.prepare(connection, stream)
                self._prepared.add(stream.name)
            self.dialect.upsert(connection, stream, frame)

        self._retrying(lambda: _batch(stream, frame), attempt)

    def read(self, stream: OutputStream, where: str = "", params: Sequence[Any] = ()) -> pl.DataFrame:
        """The table's rows (``WHERE where``) as typed rows of ``stream``, in no particular order."""
        rows = self._execute(self.dialect.select(stream, where), params).fetchall()
        return self.dialect.decode(stream, rows)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple[list[str], list[tuple]]:
        """Column names and rows of any query."""
        cursor = self._execute(sql, params)
        names = [d[0] for d in cursor.description or ()]
        return names, cursor.fetchall()

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Any:
        # Without parameters psycopg leaves a '%' alone (strftime('%Y', ...)); sqlite3 wants no None.
        return self.connection.execute(sql, params) if params else self.connection.execute(sql)

    def _retrying(self, what: str | Callable[[], str], attempt: Callable[[], Any]) -> Any:
        deadline: float | None = None
        delay = FIRST_DELAY_S
        retried: tuple[type[BaseException], ...] = (DbUnavailableError, *self.dialect.errors)
        while True:
            try:
                done = attempt()
            except retried as ex:
                message = ex.reason if isinstance(ex, DbUnavailableError) else self.url.hide(first_line(ex))
                if not isinstance(ex, DbUnavailableError) and not self.dialect.transient(ex):
                    refused = f"{_what(what)}: {self.dialect.name} refused it: {message}"
                    self._say(refused)
                    raise DbWriteError(refused) from None
                self.close()
                now = self.clock()
                if deadline is None:
                    deadline = now + self.retry_s
                    self._say(f"{_what(what)}: {self.url} failed ({message}); retrying for up to "
                              f"{seconds_text(self.retry_s)} (DMP_DB_RETRY)")
                if now >= deadline:
                    failed = (f"{_what(what)} was not written: {self.url} kept failing for "
                              f"{seconds_text(self.retry_s)} (DMP_DB_RETRY): {message}; nothing after the last "
                              "snapshot counts as done, so a run resumed from the recovery store writes it again")
                    self._say(failed)  # before Bytewax's report of the exception, which buries it
                    raise DbWriteError(failed) from None
                self.sleep(min(delay, deadline - now))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            if deadline is not None:
                self._say(f"{_what(what)}: written, {self.url} is back")
            return done

    def _say(self, message: str) -> None:
        print(f"dmp: {message}", file=self.log or sys.stderr, flush=True)


def _what(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def _batch(stream: OutputStream, frame: pl.DataFrame) -> str:
    """``trends: a batch of 120 rows (window_start#product_id 2024-01-01T00:00:00Z#1000001 .. ...)``."""
    if not frame.height:
        return f"{stream.name}: an empty batch"
    keys = frame.select(stream.key_text().alias("key"))["key"]
    rows = f"{frame.height:,} row{'' if frame.height == 1 else 's'}"
    return (f"{stream.name}: a batch of {rows} ({'#'.join(stream.key)} "
            f"{keys.min()!s} .. {keys.max()!s})")
