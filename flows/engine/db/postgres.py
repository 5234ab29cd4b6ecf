"""PostgreSQL (psycopg 3): the shared results database a dashboard reads.

Types: TEXT -> TEXT, INT -> BIGINT, FLOAT -> DOUBLE PRECISION, BOOL ->
BOOLEAN, MONEY -> NUMERIC(24,6) (exact: sent as integer micro-units and
divided by 1,000,000 in SQL), TIME/TIME_MS -> TIMESTAMPTZ, TIMES ->
TIMESTAMPTZ[], TEXTS -> TEXT[], FLOATS -> DOUBLE PRECISION[], BYTES -> BYTEA.

A batch is written in one transaction, one of two ways (``method``):

- ``copy`` (the default): Polars writes the encoded frame as CSV, ``COPY``
  streams it into a temporary staging table (``ON COMMIT DELETE ROWS``,
  made once per connection), and one ``INSERT ... SELECT ... ON CONFLICT
  (key) DO UPDATE`` merges it;
- ``executemany``: the same upsert per row, sent in pipeline mode.

``bench/db_throughput.py`` measures both; COPY + merge is the faster (the
README has the figures). Connections set ``TimeZone=UTC`` and TCP
keepalives, so a server that vanishes without closing the connection is
noticed within about half a minute rather than never.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import polars as pl
import psycopg
from psycopg.conninfo import conninfo_to_dict

from flows.engine.db.dialect import Dialect, FoundColumn, SqlType, quote
from flows.engine.db.url import DbUrl
from flows.engine.money import to_micros
from flows.engine.streams import UTC_MS, Column, OutputStream

Method = Literal["copy", "executemany"]
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MILLIS = "%Y-%m-%dT%H:%M:%S%.3fZ"
_UTC_US = pl.Datetime("us", "UTC")
HOUR = "date_trunc('hour', {}, 'UTC')"
SCHEMA_LOCK = 0x646D70  # pg_advisory_xact_lock key ("dmp"): one process changes the schema at a time


def pg_array(expr: pl.Expr, element: Any) -> pl.Expr:
    """A list column as PostgreSQL array text, ``{a,b}`` (``element`` renders one non-null element)."""
    items = expr.list.eval(pl.when(pl.element().is_null()).then(pl.lit("NULL")).otherwise(element(pl.element())))
    return pl.when(expr.is_null()).then(None).otherwise(pl.concat_str(pl.lit("{"), items.list.join(","), pl.lit("}")))


def _text(text: pl.Expr) -> pl.Expr:
    """PostgreSQL's text cannot hold NUL: it becomes U+FFFD (a record's exact bytes are in ``dead_letters.raw``)."""
    return text.str.replace_all("\x00", "\ufffd", literal=True)


def _quoted(text: pl.Expr) -> pl.Expr:
    escaped = _text(text).str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))


TYPES: Mapping[str, SqlType] = {
    "text": SqlType("TEXT", pl.String(), _text),
    "int": SqlType("BIGINT", pl.Int64()),
    "float": SqlType("DOUBLE PRECISION", pl.Float64()),
    "bool": SqlType("BOOLEAN", pl.Boolean()),
    "money": SqlType("NUMERIC(24,6)", pl.Decimal(24, 6), to_micros, lambda e: e.cast(pl.Float64),
                     stage="BIGINT", load="({}::numeric / 1000000)", note="exact decimal amount"),
    "time": SqlType("TIMESTAMPTZ", _UTC_US, lambda e: e.dt.strftime(_SECONDS), lambda e: e.cast(UTC_MS),
                    found="timestamp with time zone"),
    "time_ms": SqlType("TIMESTAMPTZ", _UTC_US, lambda e: e.dt.strftime(_MILLIS), lambda e: e.cast(UTC_MS),
                       found="timestamp with time zone"),
    "times": SqlType("TIMESTAMPTZ[]", pl.List(_UTC_US), lambda e: pg_array(e, lambda x: x.dt.strftime(_MILLIS)),
                     lambda e: e.cast(pl.List(UTC_MS)), found="timestamp with time zone[]"),
    "texts": SqlType("TEXT[]", pl.List(pl.String()), lambda e: pg_array(e, _quoted)),
    "floats": SqlType("DOUBLE PRECISION[]", pl.List(pl.Float64()), lambda e: pg_array(e, lambda x: x.cast(pl.String))),
    "bytes": SqlType("BYTEA", pl.Binary(), lambda e: pl.concat_str(pl.lit("\\x"), e.bin.encode("hex"))),
}


_COLUMNS = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")
_PRIMARY_KEY = ("SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY "
                "AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary ORDER BY k.n")


class Postgres(Dialect):
    name = "PostgreSQL"
    param = "%s"
    errors = (psycopg.Error, OSError)
    types = TYPES

    def __init__(self, method: Method = "copy") -> None:
        self.method = method

    def connect(self, url: DbUrl, *, read_only: bool = False, timeout_s: float = 10.0) -> Any:
        # Added to the URL's own options (e.g. ?options=-csearch_path%3Dresults for a schema of its own).
        given = conninfo_to_dict(url.text).get("options") or ""
        options = " ".join([str(given), "-c TimeZone=UTC", *(["-c default_transaction_read_only=on"] * read_only)])
        return psycopg.connect(url.text, autocommit=True, connect_timeout=max(2, round(timeout_s)),
                               application_name="dmp", options=options,
                               keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)

    def transient(self, error: BaseException) -> bool:
        # Lost connections, a server shutting down or starting, serialization failures and deadlocks.
        return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))

    @contextmanager
    def schema_lock(self, connection: Any) -> Iterator[Any]:
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            yield cursor

    def columns(self, connection: Any, table: str) -> list[FoundColumn] | None:
        rows = connection.execute(_COLUMNS, (quote(table),)).fetchall()
        return [FoundColumn(name, type_, not_null) for name, type_, not_null in rows] or None

    def primary_key(self, connection: Any, table: str) -> tuple[str, ...]:
        return tuple(name for (name,) in connection.execute(_PRIMARY_KEY, (quote(table),)).fetchall())

    def hour(self, column: str) -> str:
        return HOUR.format(quote(column))

    def create_view(self, name: str, select: str) -> Iterator[str]:
        yield f"CREATE OR REPLACE VIEW {quote(name)} AS {select}"  # keeps the SELECT granted to readers

    def placeholder(self, column: Column) -> str:
        kind = self.sql_type(column)
        return kind.load.format(f"{self.param}::{kind.sent_type}")

    def prepare(self, connection: Any, stream: OutputStream) -> None:
        if self.method == "copy":
            columns = ", ".join(f"{quote(c.name)} {self.sql_type(c).sent_type}" for c in stream.columns)
            connection.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_stage(stream)} ({columns}) "
                               "ON COMMIT DELETE ROWS")

    def upsert(self, connection: Any, stream: OutputStream, frame: pl.DataFrame) -> None:
        encoded = self.encode(stream, frame)
        with connection.transaction(), connection.cursor() as cursor:
            if self.method == "executemany":
                cursor.executemany(self.insert_sql(stream), encoded.rows())
                return
            names = ", ".join(quote(c.name) for c in stream.columns)
            with cursor.copy(f"COPY {_stage(stream)} ({names}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(encoded.write_csv(include_header=False))
            loads = ", ".join(self.sql_type(c).load.format(quote(c.name)) for c in stream.columns)
            cursor.execute(self.insert_sql(stream, f"SELECT {loads} FROM {_stage(stream)}"))


def _stage(stream: OutputStream) -> str:
    return quote(f"dmp_stage_{stream.name}")
