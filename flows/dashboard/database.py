"""Read-only access to the results database: SQLite or PostgreSQL, rows as JSON values.

In: ``DMP_DB_URL`` (``sqlite:///path.sqlite`` or ``postgresql://user:pass@host:5432/db``) and SQL
whose table and column names come from the stream declarations (:class:`Table`; values always as
``?`` parameters). Out: rows as dicts of JSON-ready values, rendered the way JSON Lines show them
(times as ISO-8601 ``Z`` text, money as decimal amounts, lists as lists), whichever database holds them.

The tables follow one contract (the database sink writes it): one table per output stream, named
after it, its declared columns in order, its natural key as primary key. SQLite keeps money in integer
micro-units, booleans as 0/1, times as the ISO text JSON Lines show and lists as JSON text; PostgreSQL
uses NUMERIC(24,6), BOOLEAN, TIMESTAMPTZ and arrays.

Reading never gets in the writer's way: SQLite is opened ``mode=ro`` with ``query_only`` (each query
holds its shared lock only while it runs; under WAL not even that blocks the writer); PostgreSQL
sessions are ``default_transaction_read_only`` and autocommit, with statement and lock timeouts, from
a small pool. A missing SQLite file or table is no error: it is a flow that has not started yet.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from flows.dashboard.errors import DatabaseUnavailableError
from flows.engine.errors import ConfigError
from flows.engine.money import MICROS
from flows.engine.streams import TIME, Kind, OutputStream

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def quote(name: str) -> str:
    """A declared table or column name as an SQL identifier (only plain lower-case names ever come here)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a declared name: {name!r}")
    return f'"{name}"'


@dataclass(frozen=True)
class Table:
    """A stream's table: identifiers and column kinds from its declaration, nothing from a request.

    >>> from flows.engine.analytics.registry import stream
    >>> t = Table(stream("leaderboard"))
    >>> t.name, t.col("rank"), t.select("rank", "product_id").sql
    ('"leaderboard"', '"rank"', '"rank", "product_id"')
    """

    stream: OutputStream

    @property
    def name(self) -> str:
        return quote(self.stream.name)

    def kind(self, column: str) -> Kind:
        for declared in self.stream.columns:
            if declared.name == column:
                return declared.kind
        raise KeyError(f"{self.stream.name} has no column {column!r}")

    def col(self, column: str) -> str:
        self.kind(column)
        return quote(column)

    def select(self, *columns: str) -> Selection:
        """Some columns (all, in declared order, by default) and how to decode them."""
        names = columns or tuple(self.stream.column_names)
        return Selection(", ".join(self.col(c) for c in names), tuple((c, self.kind(c)) for c in names))


@dataclass(frozen=True)
class Selection:
    """A SELECT list and the (name, kind) of each value it gives."""

    sql: str
    fields: tuple[tuple[str, Kind], ...]


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None  # JSON has no NaN or infinity


def _iso_ms(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _iso(moment: datetime, kind: Kind) -> str:
    return moment.astimezone(timezone.utc).strftime(_SECONDS) if kind is TIME else _iso_ms(moment)


class Session(Protocol):
    """One connection's worth of reading."""

    def tables(self) -> frozenset[str]:
        """The tables that exist."""

    def rows(self, sql: str, params: Sequence[Any], fields: Sequence[tuple[str, Kind]]) -> list[dict[str, Any]]:
        """Run one SELECT (``?`` placeholders) and decode each row's values by ``fields``."""

    def time(self, moment: datetime, kind: Kind) -> Any:
        """A time as a parameter compared with a column of ``kind``."""


class Database(Protocol):
    url: str  # with any password hidden: safe to show

    def exists(self) -> bool:
        """Whether there is a database at all (a SQLite file not yet created is none)."""

    def session(self) -> Any:  # a context manager giving a Session
        ...

    def close(self) -> None: ...


# -- SQLite ---------------------------------------------------------------------------------------


class _SqliteSession:
    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def tables(self) -> frozenset[str]:
        found = self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return frozenset(name for (name,) in found)

    def rows(self, sql: str, params: Sequence[Any], fields: Sequence[tuple[str, Kind]]) -> list[dict[str, Any]]:
        found = self.connection.execute(sql, tuple(params)).fetchall()
        decoders = [(name, _SQLITE.get(kind.name, _same)) for name, kind in fields]
        return [{name: (None if v is None else decode(v)) for (name, decode), v in zip(decoders, row)}
                for row in found]

    def time(self, moment: datetime, kind: Kind) -> Any:
        return _iso(moment, kind)  # stored as the ISO text JSON Lines show, which sorts as time does


class _NoDatabase:
    """A database not created yet: no tables (so every panel shows its empty state)."""

    def tables(self) -> frozenset[str]:
        return frozenset()

    def rows(self, sql: str, params: Sequence[Any], fields: Sequence[tuple[str, Kind]]) -> list[dict[str, Any]]:
        return []

    def time(self, moment: datetime, kind: Kind) -> Any:
        return _iso(moment, kind)


def _same(value: Any) -> Any:
    return value


_SQLITE: dict[str, Callable[[Any], Any]] = {
    "float": _finite,
    "bool": bool,
    "money": lambda micros: micros / MICROS,  # int / int: correctly rounded, the same float JSON Lines hold
    "times": json.loads,
    "texts": json.loads,
    "floats": lambda text: [None if v is None else _finite(v) for v in json.loads(text)],
    "bytes": lambda raw: bytes(raw).decode("utf-8", "backslashreplace"),
}


class SqliteDatabase:
    """A SQLite file, opened read-only for each request (cheap; a replaced file is seen at once)."""

    def __init__(self, path: Path, url: str):
        self.path = path
        self.url = url

    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def session(self) -> Iterator[Session]:
        if not self.exists():
            yield _NoDatabase()  # not created yet: a flow that has not started, not an error
            return
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=2.0, check_same_thread=False)
        except sqlite3.Error as ex:
            raise DatabaseUnavailableError(f"cannot open {self.url}: {ex}") from None
        try:
            connection.execute("PRAGMA query_only = ON")
            yield _SqliteSession(connection)
        except sqlite3.Error as ex:
            raise DatabaseUnavailableError(f"cannot read {self.url}: {ex}") from None
        finally:
            connection.close()

    def close(self) -> None:
        pass


# -- PostgreSQL -----------------------------------------------------------------------------------


class _PostgresSession:
    def __init__(self, connection: Any):
        self.connection = connection

    def tables(self) -> frozenset[str]:
        found = self.connection.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm') "
            "AND pg_catalog.pg_table_is_visible(c.oid)").fetchall()
        return frozenset(name for (name,) in found)

    def rows(self, sql: str, params: Sequence[Any], fields: Sequence[tuple[str, Kind]]) -> list[dict[str, Any]]:
        # Names come from declarations and values are parameters, so the only '?' are placeholders.
        found = self.connection.execute(sql.replace("?", "%s"), tuple(params)).fetchall()
        decoders = [(name, _postgres_decoder(kind)) for name, kind in fields]
        return [{name: (None if v is None else decode(v)) for (name, decode), v in zip(decoders, row)}
                for row in found]

    def time(self, moment: datetime, kind: Kind) -> Any:
        return moment


def _postgres_decoder(kind: Kind) -> Any:
    if kind.name in ("time", "time_ms"):
        return lambda moment: _iso(moment, kind)
    return {
        "int": int,  # sum() of BIGINT is NUMERIC
        "float": _finite,
        "money": _finite,  # NUMERIC -> Decimal -> the nearest float, as JSON Lines hold it
        "times": lambda moments: [_iso_ms(m) for m in moments],
        "floats": lambda values: [None if v is None else _finite(v) for v in values],
        "bytes": lambda raw: bytes(raw).decode("utf-8", "backslashreplace"),
    }.get(kind.name, _same)


class PostgresDatabase:
    """A PostgreSQL database through a small pool of read-only, autocommit sessions (psycopg 3)."""

    def __init__(self, conninfo: str, url: str, max_connections: int = 4):
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=max_connections, open=False, timeout=5.0, name="dmp-dashboard",
            check=ConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "connect_timeout": 5,
                "application_name": "dmp-dashboard",
                "options": "-c default_transaction_read_only=on -c statement_timeout=10s -c lock_timeout=2s "
                           "-c TimeZone=UTC",
            },
        )
        self._lock = threading.Lock()
        self._opened = False

    def exists(self) -> bool:
        return True

    def _open(self) -> None:
        with self._lock:
            if not self._opened:
                self._pool.open(wait=False)  # connects in the background: start-up never waits for the database
                self._opened = True

    @contextmanager
    def session(self) -> Iterator[_PostgresSession]:
        from psycopg_pool import PoolTimeout

        self._open()
        try:
            with self._pool.connection() as connection:
                yield _PostgresSession(connection)
        except PoolTimeout:
            raise DatabaseUnavailableError(f"cannot connect to {self.url} (no connection within 5 s)") from None
        except self._errors as ex:
            raise DatabaseUnavailableError(f"cannot read {self.url}: {str(ex).strip().splitlines()[0]}") from None

    def close(self) -> None:
        if self._opened:
            self._pool.close()


# -- the URL --------------------------------------------------------------------------------------


def shown(url: str) -> str:
    """The URL without its password.

    >>> shown("postgresql://dmp:s3cret@db:5432/dmp")
    'postgresql://dmp:***@db:5432/dmp'
    >>> shown("postgresql://db/dmp?user=dmp&password=s3cret&sslmode=require")
    'postgresql://db/dmp?user=dmp&password=***&sslmode=require'
    """
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}")
    query = re.sub(r"(?i)(^|&)(password|sslpassword)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit(parts._replace(query=query))


def open_database(url: str) -> Database:
    """The database ``DMP_DB_URL`` names; :class:`ConfigError` for a URL of neither kind, or a missing driver.

    >>> open_database("sqlite:///out/dmp.sqlite").path
    PosixPath('out/dmp.sqlite')
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ConfigError(f"DMP_DB_URL={url!r}: expected sqlite:///path.sqlite (sqlite:////abs/path.sqlite "
                              "for an absolute path)")
        return SqliteDatabase(Path(url[len("sqlite:///"):]), url)
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as ex:
            raise ConfigError(f"DMP_DB_URL: a PostgreSQL database needs {ex.name}: "
                              "pip install 'psycopg[binary]' psycopg-pool") from None
        return PostgresDatabase(url, shown(url))
    raise ConfigError(f"DMP_DB_URL={shown(url)!r}: expected sqlite:///path.sqlite or "
                      "postgresql://user:password@host:5432/database")
