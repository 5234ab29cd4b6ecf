"""STAND-IN for the results-database sink (``DMP_SINK=db``), which is being written beside the dashboard.

Replace this module with the real writer when it lands: the dashboard's tests only call
:func:`create_tables`, :func:`write` and :class:`LiveWriter` (built on them), so the merge swaps these
three for the sink's own (``create_tables``/``write``) and a flow run with ``DMP_SINK=db``
(``LiveWriter``; see ``test_browser.py``, one line).

It writes exactly the contract the dashboard reads (README, "The dashboard"): one table per output
stream of :func:`flows.engine.analytics.registry.streams`, named after it, its declared columns in
order, its natural key as primary key, and a ``dmp_schema`` table. Column types:

========== ============================= =====================================
kind       SQLite                        PostgreSQL
========== ============================= =====================================
text       TEXT                          TEXT
int        INTEGER                       BIGINT
float      REAL                          DOUBLE PRECISION
bool       INTEGER 0/1                   BOOLEAN
money      INTEGER micro-units           NUMERIC(24,6)
time(_ms)  TEXT, ISO-8601 as JSON Lines  TIMESTAMPTZ
times      TEXT, a JSON array            TIMESTAMPTZ[]
texts      TEXT, a JSON array            TEXT[]
floats     TEXT, a JSON array            DOUBLE PRECISION[]
bytes      BLOB                          BYTEA
========== ============================= =====================================

Rows come as typed frames (what :func:`flows.engine.sinks.files.read_stream` gives) and are
inserted once per natural key (a replayed row is skipped, as the sink's upsert keeps one copy).
SQLite files are put in WAL mode, so a reader never blocks this writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from flows.engine.analytics.registry import streams
from flows.engine.streams import UTC_MS, OutputStream

SQLITE_TYPES = {"text": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER", "money": "INTEGER",
                "time": "TEXT", "time_ms": "TEXT", "times": "TEXT", "texts": "TEXT", "floats": "TEXT",
                "bytes": "BLOB"}
POSTGRES_TYPES = {"text": "TEXT", "int": "BIGINT", "float": "DOUBLE PRECISION", "bool": "BOOLEAN",
                  "money": "NUMERIC(24,6)", "time": "TIMESTAMPTZ", "time_ms": "TIMESTAMPTZ",
                  "times": "TIMESTAMPTZ[]", "texts": "TEXT[]", "floats": "DOUBLE PRECISION[]", "bytes": "BYTEA"}


def _micros(amount: float) -> int:
    return int(Decimal(repr(amount)).scaleb(6).to_integral_value())


def _sqlite_value(kind: str) -> Callable[[Any], Any]:
    if kind == "time":
        return lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind in ("time_ms", "times"):
        one = lambda t: f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"  # noqa: E731
        return one if kind == "time_ms" else (lambda ts: json.dumps([one(t) for t in ts]))
    return {"bool": int, "money": _micros, "texts": json.dumps, "floats": json.dumps}.get(kind, lambda v: v)


def _postgres_value(kind: str) -> Callable[[Any], Any]:
    return {"money": lambda amount: Decimal(repr(amount))}.get(kind, lambda v: v)


class _Target:
    """One database: its placeholder, column types and value conversions."""

    def __init__(self, url: str):
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self.types = SQLITE_TYPES if self.sqlite else POSTGRES_TYPES
        self.placeholder = "?" if self.sqlite else "%s"
        self.value = _sqlite_value if self.sqlite else _postgres_value

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.sqlite:
            path = Path(self.url[len("sqlite:///"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path)
            connection.execute("PRAGMA journal_mode = WAL")
        else:
            import psycopg

            connection = psycopg.connect(self.url)
        try:
            yield connection
            connection.commit()
        finally:
            connection.close()


def create_tables(url: str, declared: tuple[OutputStream, ...] | None = None) -> None:
    """``dmp_schema`` and a table per stream (every declared one by default), if missing."""
    target = _Target(url)
    with target.connect() as connection:
        _create(target, connection, streams() if declared is None else declared)


def _create(target: _Target, connection: Any, declared: tuple[OutputStream, ...]) -> None:
    p = target.placeholder
    connection.execute('CREATE TABLE IF NOT EXISTS "dmp_schema" ("stream" TEXT PRIMARY KEY, "columns" TEXT)')
    for s in declared:
        columns = ", ".join(f'"{c.name}" {target.types[c.kind.name]}{"" if c.nullable else " NOT NULL"}'
                            for c in s.columns)
        key = ", ".join(f'"{k}"' for k in s.key)
        connection.execute(f'CREATE TABLE IF NOT EXISTS "{s.name}" ({columns}, PRIMARY KEY ({key}))')
        connection.execute(f'INSERT INTO "dmp_schema" VALUES ({p}, {p}) ON CONFLICT DO NOTHING',
                           (s.name, json.dumps([[c.name, c.kind.name] for c in s.columns])))


def write(url: str, stream: OutputStream, frame: pl.DataFrame) -> int:
    """Insert a typed frame's rows (those whose key is new), in one transaction; the number of rows given."""
    return write_many(url, {stream: frame})


def write_many(url: str, frames: Mapping[OutputStream, pl.DataFrame]) -> int:
    """Several streams' rows in one transaction (as a sink commits an epoch); the number of rows given."""
    target = _Target(url)
    total = 0
    with target.connect() as connection:
        cursor = connection.cursor()
        for stream, frame in frames.items():
            if not frame.height:
                continue
            converters = [target.value(c.kind.name) for c in stream.columns]
            rows = [tuple(None if v is None else convert(v) for convert, v in zip(converters, row))
                    for row in stream.conform(frame).iter_rows()]
            names = ", ".join(f'"{c}"' for c in stream.column_names)
            marks = ", ".join([target.placeholder] * len(stream.columns))
            insert = "INSERT OR IGNORE INTO" if target.sqlite else "INSERT INTO"
            suffix = "" if target.sqlite else " ON CONFLICT DO NOTHING"
            cursor.executemany(f'{insert} "{stream.name}" ({names}) VALUES ({marks}){suffix}', rows)
            total += len(rows)
    return total


# When each stream's rows reach the database in a live run: their event time of release.
RELEASED_AT = {
    "leaderboard": "window_end", "trends": "window_end", "quality": "as_of", "funnel": "window_end",
    "timeseries": "bucket_end", "anomalies": "bucket_end", "sessions": "session_end", "triggers": "triggered_at",
    "recommendations": "as_of", "late": "watermark",
}


class LiveWriter:
    """Writes a finished run's results as a live flow would: what is released up to an event time.

    ``frames`` are every stream's typed rows (``read_stream``). :meth:`advance_to` writes the rows
    released after the previous call and by event time ``t`` (see :data:`RELEASED_AT`); dead letters
    go first, and monitoring rows (the wall clock of the original run) are spread, in order, over the
    span of its trend windows.
    """

    def __init__(self, url: str, frames: Mapping[str, pl.DataFrame]):
        self.url = url
        # Monitoring is spread over the run's windows (the span its intervals covered).
        windows = frames["trends"][RELEASED_AT["trends"]]
        self.first, self.last = windows.min(), windows.max()
        self.pending = {n: f.with_columns(self._release(n, f).alias("_released")) for n, f in frames.items()
                        if f.height}
        self.at: datetime | None = None
        create_tables(url)

    def _release(self, name: str, frame: pl.DataFrame) -> pl.Expr:
        if name in RELEASED_AT:
            return pl.col(RELEASED_AT[name])
        if name == "monitoring":
            rank = pl.col("interval_start").rank("dense").cast(pl.Float64) - 1
            span_ms = (self.last - self.first).total_seconds() * 1000
            share = rank / pl.max_horizontal(rank.max(), pl.lit(1.0))
            return pl.lit(self.first, UTC_MS) + pl.duration(milliseconds=(share * span_ms).cast(pl.Int64))
        return pl.lit(self.first, UTC_MS)  # dead letters: at once

    def advance_to(self, t: datetime) -> dict[str, int]:
        """Write what is released after the previous call and by ``t``; rows written per stream."""
        due: dict[OutputStream, pl.DataFrame] = {}
        for name, frame in self.pending.items():
            rows = frame.filter(pl.col("_released") <= t)
            if self.at is not None:
                rows = rows.filter(pl.col("_released") > self.at)
            if rows.height:
                due[next(s for s in streams() if s.name == name)] = rows.drop("_released")
        write_many(self.url, due)
        self.at = t
        return {s.name: rows.height for s, rows in due.items()}

    def release_times(self, name: str = "leaderboard") -> list[datetime]:
        """The distinct release times of a stream's rows, in order (to advance window by window)."""
        return sorted(set(self.pending[name]["_released"].to_list()))
