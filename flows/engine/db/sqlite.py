"""SQLite (the standard library's ``sqlite3``): the embedded default, a file beside the outputs.

Types: TEXT -> TEXT, INT -> INTEGER, FLOAT -> REAL, BOOL -> INTEGER 0/1,
MONEY -> INTEGER micro-units (divide by 1,000,000), TIME and TIME_MS -> TEXT
ISO-8601 UTC exactly as the JSON Lines show them (``2024-01-01T00:00:00Z``,
``2024-01-01T00:00:00.250Z``: SQLite's date functions read them and they
sort as instants within a column), TIMES/TEXTS/FLOATS -> TEXT holding a
JSON array, BYTES -> BLOB.

The file is in WAL mode, so readers (the dashboard, ``flows.tools.query``)
never block the writers and the writers never block them. SQLite has one
writer at a time: every write transaction starts with ``BEGIN IMMEDIATE``,
which takes the write lock up front, so a second writer waits for it
(``busy_timeout``) instead of failing with the deadlock error that a read
transaction upgraded to a write gets. Rows go in with one ``executemany``
of ``INSERT ... ON CONFLICT (key) DO UPDATE`` per batch, in one transaction,
into ``WITHOUT ROWID`` tables (the natural key is the table's order).
``synchronous=NORMAL``: a committed batch survives the process being
killed (not a power cut, which the recovery store's replay then repairs).
A writer's page cache is 64 MiB (SQLite's default, 2 MiB, is smaller than
one second of a replay's index pages: they were spilled to the WAL and read
back, 500,000 reads and writes of pages for 2M events of trends), and a
new file's pages are 16 KiB (SQLite's default is 4 KiB): a commit's rows
touch fewer pages, and the default run took ~9% less CPU (17.8 against
19.5 CPU-s for 2M events, the median of three runs each, interleaved).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from flows.engine.db.dialect import Dialect, FoundColumn, SqlType, json_array, quote
from flows.engine.db.url import DbUrl
from flows.engine.money import money, to_micros
from flows.engine.streams import UTC_MS, OutputStream

BUSY_TIMEOUT_S = 30.0
PAGE_BYTES = 16384  # 4x SQLite's default: fewer pages per commit and per index walk, ~9% less CPU for the default run
CACHE_KIB = 65536  # a writer's page cache: SQLite's 2 MiB default spilled and re-read most index pages per batch
HOUR = "strftime('%Y-%m-%dT%H:00:00Z', {})"
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MILLIS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def _parse_time(fmt: str):
    return lambda e: e.str.strptime(pl.Datetime("ms"), fmt).dt.replace_time_zone("UTC").cast(UTC_MS)


TYPES: Mapping[str, SqlType] = {
    "text": SqlType("TEXT", pl.String()),
    "int": SqlType("INTEGER", pl.Int64()),
    "float": SqlType("REAL", pl.Float64()),
    "bool": SqlType("INTEGER", pl.Int64(), lambda e: e.cast(pl.Int64), lambda e: e.cast(pl.Boolean), note="0/1"),
    "money": SqlType("INTEGER", pl.Int64(), to_micros, money, note="micro-units: divide by 1,000,000"),
    "time": SqlType("TEXT", pl.String(), lambda e: e.dt.strftime(_SECONDS), _parse_time(_SECONDS),
                    note="ISO-8601 UTC, 2024-01-01T00:00:00Z"),
    "time_ms": SqlType("TEXT", pl.String(), lambda e: e.dt.strftime(_MILLIS), _parse_time(_MILLIS),
                       note="ISO-8601 UTC, 2024-01-01T00:00:00.250Z"),
    "times": SqlType("TEXT", pl.String(), lambda e: json_array(e.list.eval(pl.element().dt.strftime(_MILLIS))),
                     lambda e: e.str.json_decode(pl.List(pl.String())).list.eval(_parse_time(_MILLIS)(pl.element())),
                     note="JSON array of ISO-8601 UTC times"),
    "texts": SqlType("TEXT", pl.String(), json_array, lambda e: e.str.json_decode(pl.List(pl.String())),
                     note="JSON array"),
    "floats": SqlType("TEXT", pl.String(), json_array, lambda e: e.str.json_decode(pl.List(pl.Float64())),
                      note="JSON array"),
    "bytes": SqlType("BLOB", pl.Binary()),
}



class Sqlite(Dialect):
    name = "SQLite"
    param = "?"
    distinct = "IS NOT"  # IS DISTINCT FROM only from SQLite 3.39
    errors = (sqlite3.Error, OSError)
    types = TYPES

    def connect(self, url: DbUrl, *, read_only: bool = False, timeout_s: float = BUSY_TIMEOUT_S) -> Any:
        path = Path(url.path or "")
        if read_only:
            if not path.is_file():
                raise sqlite3.OperationalError(f"no database file {path} (a run with DMP_SINK including db makes it)")
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s,
                                         isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA page_size={PAGE_BYTES}")  # a new file's; an existing one keeps its own
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        connection.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        return connection

    def create_table(self, stream: OutputStream) -> str:
        # The primary key is the table (no rowid b-tree beside it): 10-30% less per upsert, measured.
        return super().create_table(stream) + " WITHOUT ROWID"

    def transient(self, error: BaseException) -> bool:
        text = str(error).lower()
        return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    @contextmanager
    def schema_lock(self, connection: Any) -> Iterator[Any]:
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL")  # kept in the file: every later connection has it
        with _immediate(connection):
            yield connection.cursor()

    def columns(self, connection: Any, table: str) -> list[FoundColumn] | None:
        rows = connection.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return [FoundColumn(name, type_.lower(), bool(not_null)) for _, name, type_, not_null, _, _ in rows] or None

    def primary_key(self, connection: Any, table: str) -> tuple[str, ...]:
        rows = connection.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return tuple(name for _, name in sorted((pk, name) for _, name, _, _, _, pk in rows if pk))

    def hour(self, column: str) -> str:
        return HOUR.format(quote(column))

    def upsert(self, connection: Any, stream: OutputStream, frame: pl.DataFrame) -> None:
        rows = self.encode(stream, frame).rows()
        with _immediate(connection):
            connection.executemany(self.insert_sql(stream), rows)


@contextmanager
def _immediate(connection: Any) -> Iterator[None]:
    """A write transaction that holds SQLite's write lock from its first statement."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
