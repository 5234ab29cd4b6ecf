"""What a SQL dialect must say about our tables: column types, value encodings, upserts, introspection.

In: an output stream's declaration (:class:`~flows.engine.streams.OutputStream`)
and its typed frames. Out: DDL, the frame encoded as the values the
database stores (Polars expressions per column, never a Python loop per
cell), and typed frames decoded from what the database returns. Each
dialect (:mod:`~flows.engine.db.sqlite`, :mod:`~flows.engine.db.postgres`)
maps every column kind to a :class:`SqlType`; the schema module and the
writers ask the dialect, never which one they have.

>>> array = json_array(pl.col("xs"))
>>> pl.DataFrame({"xs": [["a", 'b"'], None]}).select(array).to_series().to_list()
['["a","b\\\\""]', None]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from flows.engine.db.url import DbUrl
from flows.engine.streams import Column, OutputStream

Encode = Callable[[pl.Expr], pl.Expr]


def _as_is(expr: pl.Expr) -> pl.Expr:
    return expr


@dataclass(frozen=True)
class SqlType:
    """How one column kind is stored: its DDL type, what introspection calls it, and the value conversions.

    ``encode`` turns a typed column into the value sent; ``load`` is the
    SQL that turns a sent value (of SQL type ``stage``) into the stored one;
    ``raw`` is the Polars dtype stored values are read back in, and
    ``decode`` turns those into the typed column.
    """

    ddl: str
    raw: pl.DataType
    encode: Encode = _as_is
    decode: Encode = _as_is
    found: str = ""
    """The type's name as the catalog reports it (lower case), when it differs from ``ddl``."""
    stage: str = ""
    """The SQL type of the value sent, when it differs from ``ddl``."""
    load: str = "{}"
    note: str = ""
    """Said in errors and in ``dmp_schema`` (e.g. the unit of money)."""

    @property
    def catalog_name(self) -> str:
        return self.found or self.ddl.lower()

    @property
    def sent_type(self) -> str:
        return self.stage or self.ddl


@dataclass(frozen=True)
class FoundColumn:
    """A column of an existing table, as the database's catalog describes it."""

    name: str
    type: str
    not_null: bool


def quote(name: str) -> str:
    """An identifier, always quoted (``partition`` and ``rank`` are keywords somewhere)."""
    return '"' + name.replace('"', '""') + '"'


def json_array(expr: pl.Expr) -> pl.Expr:
    """A list column as JSON array text (null stays null), escaped by Polars' JSON writer."""
    wrapped = pl.struct(expr.alias("v")).struct.json_encode()
    return pl.when(expr.is_null()).then(None).otherwise(wrapped.str.slice(5).str.strip_suffix("}"))


def first_line(error: BaseException) -> str:
    """A driver's message on one line (libpq's span several, with tabs; a server's error without its SQL)."""
    primary = getattr(getattr(error, "diag", None), "message_primary", None)
    if primary:
        return str(primary)
    parts = [part.strip() for part in str(error).splitlines() if part.strip()]
    return "; ".join(parts) or type(error).__name__


class Dialect(ABC):
    """One SQL database: types, connections, schema introspection and the batched upsert."""

    name: ClassVar[str]
    param: ClassVar[str]
    """The driver's placeholder (``?`` or ``%s``)."""
    distinct: ClassVar[str] = "IS DISTINCT FROM"
    errors: ClassVar[tuple[type[BaseException], ...]]
    """What the driver raises (plus ``OSError``)."""
    types: ClassVar[Mapping[str, SqlType]]
    """Column kind name -> how it is stored."""

    def sql_type(self, column: Column) -> SqlType:
        try:
            return self.types[column.kind.name]
        except KeyError:
            msg = f"{self.name} has no SQL type for column {column.name!r} of kind {column.kind.name!r}"
            raise TypeError(msg) from None

    def column_ddl(self, column: Column) -> str:
        return f"{quote(column.name)} {self.sql_type(column).ddl}{'' if column.nullable else ' NOT NULL'}"

    def create_table(self, stream: OutputStream) -> str:
        columns = [self.column_ddl(c) for c in stream.columns]
        key = ", ".join(quote(k) for k in stream.key)
        return f"CREATE TABLE IF NOT EXISTS {quote(stream.name)} ({', '.join(columns)}, PRIMARY KEY ({key}))"

    def encode(self, stream: OutputStream, frame: pl.DataFrame) -> pl.DataFrame:
        """Typed rows -> the values stored, one row per natural key (the last one given wins)."""
        unique = frame.unique(subset=list(stream.key), keep="last", maintain_order=True)
        return unique.select(self.sql_type(c).encode(pl.col(c.name)).alias(c.name) for c in stream.columns)

    def raw_schema(self, stream: OutputStream) -> pl.Schema:
        return pl.Schema({c.name: self.sql_type(c).raw for c in stream.columns})

    def decode(self, stream: OutputStream, rows: Sequence[tuple]) -> pl.DataFrame:
        """Rows as the driver returns them (``SELECT`` of the declared columns, in order) -> typed rows."""
        raw = pl.DataFrame(list(rows), schema=self.raw_schema(stream), orient="row")
        return stream.conform(raw.select(self.sql_type(c).decode(pl.col(c.name)).alias(c.name)
                                         for c in stream.columns))

    # -- connections ----------------------------------------------------------------

    @abstractmethod
    def connect(self, url: DbUrl, *, read_only: bool = False, timeout_s: float = 10.0) -> Any:
        """A DB-API connection; the driver's error if the database cannot be had."""

    @abstractmethod
    def transient(self, error: BaseException) -> bool:
        """Whether writing again later (after reconnecting) may succeed: a lost server, a busy lock."""

    @abstractmethod
    def schema_lock(self, connection: Any) -> AbstractContextManager[Any]:
        """A transaction in which only this process changes the schema (a cursor inside it)."""

    # -- the schema -----------------------------------------------------------------

    @abstractmethod
    def columns(self, connection: Any, table: str) -> list[FoundColumn] | None:
        """The columns of an existing table, in order; ``None`` if there is no such table."""

    @abstractmethod
    def primary_key(self, connection: Any, table: str) -> tuple[str, ...]:
        """The primary key's columns, in key order."""

    @abstractmethod
    def hour(self, column: str) -> str:
        """SQL truncating a time column to its hour (as the dialect holds times)."""

    def create_view(self, name: str, select: str) -> Iterator[str]:
        """The statements that (re)define a view, keeping the privileges granted on it where possible."""
        yield f"DROP VIEW IF EXISTS {quote(name)}"
        yield f"CREATE VIEW {quote(name)} AS {select}"

    # -- writing --------------------------------------------------------------------

    def prepare(self, connection: Any, stream: OutputStream) -> None:
        """Once per connection, before its first write of ``stream`` (e.g. a staging table)."""
        return None

    @abstractmethod
    def upsert(self, connection: Any, stream: OutputStream, frame: pl.DataFrame) -> None:
        """Write typed rows in one transaction: insert, or update the row with the same natural key."""

    def placeholder(self, column: Column) -> str:
        """The SQL of one value sent as a statement parameter."""
        return self.sql_type(column).load.format(self.param)

    def insert_sql(self, stream: OutputStream, rows: str | None = None) -> str:
        """``INSERT ... ON CONFLICT (key) DO UPDATE`` of ``rows`` (by default one row of parameters).

        Rows equal to the stored ones are left alone, so a replayed batch or
        a second run over the same input writes nothing new.
        """
        names = [c.name for c in stream.columns]
        rest = [n for n in names if n not in stream.key]
        rows = rows or f"VALUES ({', '.join(self.placeholder(c) for c in stream.columns)})"
        insert = (f"INSERT INTO {quote(stream.name)} AS t ({', '.join(map(quote, names))}) {rows} "
                  f"ON CONFLICT ({', '.join(map(quote, stream.key))}) ")
        if not rest:
            return insert + "DO NOTHING"
        return (insert + f"DO UPDATE SET {', '.join(f'{quote(n)} = excluded.{quote(n)}' for n in rest)} "
                f"WHERE ({', '.join(f't.{quote(n)}' for n in rest)}) {self.distinct} "
                f"({', '.join(f'excluded.{quote(n)}' for n in rest)})")

    def select(self, stream: OutputStream, where: str = "") -> str:
        columns = ", ".join(quote(c.name) for c in stream.columns)
        return f"SELECT {columns} FROM {quote(stream.name)}{f' WHERE {where}' if where else ''}"
