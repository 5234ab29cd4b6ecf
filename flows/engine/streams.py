"""Output streams, declared once: name, natural key and typed columns.

Every sink derives what it needs from one :class:`OutputStream`: the file
sinks its JSON Lines rendering and Parquet types, the Kafka sink its
message keys, the database its table, readers the frame they get back
(:func:`flows.engine.sinks.files.read_stream`), and the run summary what
the stream found (its :class:`~flows.engine.findings.Finding`). Analytics emit *typed*
frames (:attr:`OutputStream.schema`: times as UTC datetimes, money as
decimal amounts, lists as lists); each sink renders them its own way.

>>> demo = OutputStream("demo", "product and window", "fields",
...     key=("window_start", "product_id"),
...     columns=(Column("window_start", TIME, nullable=False), Column("product_id", TEXT, nullable=False),
...              Column("revenue", MONEY)))
>>> frame = pl.DataFrame({"window_start": [1_709_287_200_000], "product_id": ["p"], "revenue": [9.5]})
>>> demo.to_json(demo.conform(frame)).row(0)
('2024-03-01T10:00:00Z', 'p', 9.5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from flows.engine.findings import Finding

UTC_MS = pl.Datetime("ms", "UTC")
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MILLIS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def _as_is(expr: pl.Expr) -> pl.Expr:
    return expr


def _bytes_as_text(values: pl.Series) -> pl.Series:
    """Bytes as text; invalid UTF-8 as ``\\xNN`` (so a dead letter shows exactly what came)."""
    return pl.Series(values.name, [None if v is None else v.decode("utf-8", "backslashreplace")
                                   for v in values.to_list()], dtype=pl.String)


@dataclass(frozen=True)
class Kind:
    """A column's type: its Polars dtype and how JSON Lines show it."""

    name: str
    dtype: pl.DataType
    json: Callable[[pl.Expr], pl.Expr] = _as_is
    json_dtype: pl.DataType | None = None  # how pl.read_ndjson reads the JSON back (default: dtype)


TEXT = Kind("text", pl.String())
INT = Kind("int", pl.Int64())
FLOAT = Kind("float", pl.Float64())
BOOL = Kind("bool", pl.Boolean())
MONEY = Kind("money", pl.Float64())
"""A decimal amount (the nearest float to an exact sum of micro-units); exact NUMERIC in databases."""
TIME = Kind("time", UTC_MS, lambda e: e.dt.strftime(_SECONDS))
"""An instant on whole seconds (window bounds): ``2024-03-01T10:00:00Z``."""
TIME_MS = Kind("time_ms", UTC_MS, lambda e: e.dt.strftime(_MILLIS))
"""An instant with milliseconds (event times): ``2024-03-01T10:00:00.250Z``."""
TIMES = Kind("times", pl.List(UTC_MS), lambda e: e.list.eval(pl.element().dt.strftime(_MILLIS)))
TEXTS = Kind("texts", pl.List(pl.String()))
FLOATS = Kind("floats", pl.List(pl.Float64()))
BYTES = Kind("bytes", pl.Binary(), lambda e: e.map_batches(_bytes_as_text, return_dtype=pl.String),
             json_dtype=pl.String())


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = True


@dataclass(frozen=True)
class OutputStream:
    """One output stream: what a row is, its natural key and its typed columns.

    ``row`` and ``fields`` are the README's description (its stream table
    is generated from them). ``key`` identifies a row: a replayed row has
    the same key, so an upsert or a compacted topic keeps one copy.
    """

    name: str
    row: str
    fields: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    original: str | None = None
    """A column holding each record's original bytes, which Kafka re-publishes as they came (dead letters)."""
    finding: Finding | None = None
    """What the run summary says of the stream's rows (:mod:`flows.engine.findings`); ``None``: nothing."""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        problems = []
        if not self.columns:
            problems.append("no columns")
        if len(set(names)) != len(names):
            problems.append(f"repeated columns in {names}")
        if not self.key:
            problems.append("no natural key")
        problems += [f"key column {k!r} is not a column" for k in self.key if k not in names]
        problems += [f"key column {c.name!r} is nullable" for c in self.columns if c.name in self.key and c.nullable]
        if problems:
            raise ValueError(f"output stream {self.name!r}: {'; '.join(problems)}")

    @property
    def schema(self) -> pl.Schema:
        """The typed schema of the stream's frames."""
        return pl.Schema({c.name: c.kind.dtype for c in self.columns})

    @property
    def json_schema(self) -> pl.Schema:
        """The schema to read its JSON Lines back with (``pl.read_ndjson(..., schema=...)``)."""
        return pl.Schema({c.name: c.kind.json_dtype or c.kind.dtype for c in self.columns})

    @property
    def rendered_schema(self) -> pl.Schema:
        """The schema of :meth:`to_json`'s frames (times and bytes as text)."""
        return self.to_json(pl.DataFrame(schema=self.schema)).schema

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A frame with exactly the declared columns, in order, typed (absent nullable columns as nulls)."""
        present = frame.columns
        missing = [c.name for c in self.columns if c.name not in present and not c.nullable]
        if missing:
            raise ValueError(f"rows of {self.name!r} lack the required columns {missing} (have {present})")
        return frame.select(
            (pl.col(c.name).cast(c.kind.dtype) if c.name in present else pl.lit(None, c.kind.dtype).alias(c.name))
            for c in self.columns
        )

    def to_json(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Typed rows as JSON Lines show them (times as ISO-8601 with ``Z``, bytes as text)."""
        return frame.select(c.kind.json(pl.col(c.name)).alias(c.name) for c in self.columns)

    def key_text(self) -> pl.Expr:
        """Each row's natural key as text (the JSON renderings of its key columns, joined by ``#``)."""
        kinds = {c.name: c.kind for c in self.columns}
        parts = [kinds[k].json(pl.col(k)).cast(pl.String) for k in self.key]
        return parts[0] if len(parts) == 1 else pl.concat_str(parts, separator="#")
