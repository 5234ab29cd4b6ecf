"""The database's schema, derived from the stream declarations: tables, indexes, views and ``dmp_schema``.

In: the output streams (:class:`~flows.engine.streams.OutputStream`) and a
dialect. Out, at start-up, in one transaction that one process at a time
runs: a table per stream (same name; the declared columns in order, typed
by the dialect, ``NOT NULL`` where not nullable, the natural key as primary
key), an index on its time column and on ``product_id`` / ``user_id`` (with
the time) where it has them, the dialect's views, and a ``dmp_schema`` row
per table recording the schema version and the declared columns it was made
with. Existing tables are checked, never changed: a column that differs in
name, order, type or nullability, another primary key, or a different
recorded kind stops the run (:class:`~flows.engine.db.errors.SchemaMismatchError`)
naming the table and the column.

>>> from flows.engine.analytics import registry
>>> [name for name, _ in indexes(registry.stream("trends"))]
['trends_by_product_id']
>>> [name for name, _ in indexes(registry.stream("late"))]
['late_by_ts', 'late_by_product_id', 'late_by_user_id']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import polars as pl

from flows.engine.db.dialect import Dialect, FoundColumn, quote
from flows.engine.db.errors import SchemaMismatchError
from flows.engine.streams import INT, TEXT, TEXTS, TIME, TIME_MS, Column, OutputStream

SCHEMA_VERSION = 1
ENTITIES = ("product_id", "user_id")

DMP_SCHEMA = OutputStream(
    "dmp_schema",
    row="table the platform writes",
    fields="`table_name`, `schema_version`, `natural_key` (its columns), `columns` (JSON: each column's `name`, "
    "`kind`, `type` and `nullable`, as declared when the table was made), `created_at`",
    key=("table_name",),
    columns=(
        Column("table_name", TEXT, nullable=False),
        Column("schema_version", INT, nullable=False),
        Column("natural_key", TEXTS, nullable=False),
        Column("columns", TEXT, nullable=False),
        Column("created_at", TIME_MS, nullable=False),
    ),
)


@dataclass(frozen=True)
class View:
    """A view: its name, the tables it reads, its ``SELECT`` (``{hour}``: the dialect's hour of ``window_start``)."""

    name: str
    reads: tuple[str, ...]
    select: str


VIEWS = (
    View("leaderboard_latest", ("leaderboard",),
         "SELECT * FROM leaderboard WHERE window_start = (SELECT max(window_start) FROM leaderboard)"),
    View("revenue_per_hour", ("trends",),
         "SELECT {hour} AS hour, sum(revenue) AS revenue, sum(purchases) AS purchases, sum(units) AS units, "
         "sum(views) AS views, count(DISTINCT product_id) AS products FROM trends GROUP BY 1"),
    View("conversion_per_hour", ("funnel",),
         "SELECT {hour} AS hour, category, sum(viewed) AS viewed, sum(carted) AS carted, sum(purchased) AS purchased, "
         "CAST(sum(purchased) AS DOUBLE PRECISION) / nullif(sum(viewed), 0) AS conversion FROM funnel GROUP BY 1, 2"),
)
"""In both dialects; money as the tables hold it (micro-units in SQLite). Sums over sliding windows
(``DMP_WINDOW_SLIDE``) or funnel windows other than an hour count an event once per window it is in."""


def indexes(stream: OutputStream) -> list[tuple[str, tuple[str, ...]]]:
    """``(name, columns)`` of the secondary indexes: by time, and by product or user then time.

    The time column is the stream's first ``TIME`` / ``TIME_MS`` column; a
    column that leads the primary key is served by it already.
    """
    names = [c.name for c in stream.columns]
    time = next((c.name for c in stream.columns if c.kind in (TIME, TIME_MS)), None)
    wanted: list[tuple[str, ...]] = []
    if time is not None and stream.key[0] != time:
        wanted.append((time,))
    for entity in ENTITIES:
        if entity in names and stream.key[0] != entity:
            wanted.append((entity, time) if time is not None else (entity,))
    return [(f"{stream.name}_by_{columns[0]}", columns) for columns in wanted]


def declared_columns(dialect: Dialect, stream: OutputStream) -> list[dict[str, Any]]:
    """What ``dmp_schema.columns`` records for a table."""
    return [{"name": c.name, "kind": c.kind.name, "type": dialect.sql_type(c).ddl, "nullable": c.nullable}
            for c in stream.columns]


def ensure_schema(dialect: Dialect, connection: Any, streams: Sequence[OutputStream], where: str) -> list[str]:
    """Create what is missing, check what exists; the names of the tables created.

    ``where`` names the database in errors (the masked ``DMP_DB_URL``).
    """
    created: list[str] = []
    with dialect.schema_lock(connection) as cursor:
        if _table(dialect, connection, cursor, DMP_SCHEMA, where):
            created.append(DMP_SCHEMA.name)
        recorded = _recorded(dialect, connection)
        new_rows = []
        for stream in {s.name: s for s in streams}.values():
            if _table(dialect, connection, cursor, stream, where):
                created.append(stream.name)
            if stream.name in recorded:
                _check_recorded(dialect, stream, recorded[stream.name], where)
            else:
                new_rows.append(stream)
            for name, columns in indexes(stream):
                cursor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(stream.name)} "
                               f"({', '.join(map(quote, columns))})")
        if new_rows:
            rows = dialect.encode(DMP_SCHEMA, _rows(dialect, new_rows)).rows()
            cursor.executemany(dialect.insert_sql(DMP_SCHEMA), rows)
        tables = {s.name for s in streams}
        for view in VIEWS:
            if set(view.reads) <= tables:
                for statement in dialect.create_view(view.name, view.select.format(hour=dialect.hour("window_start"))):
                    cursor.execute(statement)
    return created


def _table(dialect: Dialect, connection: Any, cursor: Any, stream: OutputStream, where: str) -> bool:
    """Create the table if missing (True), or check the existing one against the declaration."""
    found = dialect.columns(connection, stream.name)
    if found is None:
        cursor.execute(dialect.create_table(stream))
        return True
    problem = _column_problem(dialect, stream, found)
    if problem is None:
        key = dialect.primary_key(connection, stream.name)
        if key != stream.key:
            problem = f"its primary key is ({', '.join(key)}), the natural key is ({', '.join(stream.key)})"
    if problem is not None:
        raise SchemaMismatchError(_mismatch(stream, where, problem))
    return False


def _column_problem(dialect: Dialect, stream: OutputStream, found: list[FoundColumn]) -> str | None:
    def wanted(column: Column) -> str:
        return f"{dialect.sql_type(column).ddl}{'' if column.nullable else ' NOT NULL'} ({column.kind.name})"

    have = {f.name for f in found}
    missing = [c for c in stream.columns if c.name not in have]
    if missing:
        return f"it lacks the column {missing[0].name!r} {wanted(missing[0])}"
    extra = [f.name for f in found if f.name not in stream.column_names]
    if extra:
        return f"it has a column {extra[0]!r} the stream does not declare"
    for position, (got, want) in enumerate(zip(found, stream.columns), start=1):
        if got.name != want.name:
            return f"column {position} is {got.name!r}, the stream declares {want.name!r} {wanted(want)} there"
        if got.type.lower() != dialect.sql_type(want).catalog_name or got.not_null == want.nullable:
            return f"column {want.name!r} is {got.type.upper()}{' NOT NULL' if got.not_null else ''}, " \
                   f"the stream declares {wanted(want)}"
    return None


def _recorded(dialect: Dialect, connection: Any) -> dict[str, dict[str, Any]]:
    rows = connection.execute(dialect.select(DMP_SCHEMA)).fetchall()
    return {row["table_name"]: row for row in dialect.decode(DMP_SCHEMA, rows).iter_rows(named=True)}


def _check_recorded(dialect: Dialect, stream: OutputStream, row: dict[str, Any], where: str) -> None:
    """A table whose SQL types match may still hold other kinds (in SQLite, TIME and TIME_MS are both TEXT)."""
    if row["schema_version"] != SCHEMA_VERSION:
        problem = (f"dmp_schema says it was made by schema version {row['schema_version']}, "
                   f"this build writes {SCHEMA_VERSION}")
        raise SchemaMismatchError(_mismatch(stream, where, problem))
    made = {c["name"]: c for c in json.loads(row["columns"])}
    for column in declared_columns(dialect, stream):
        before = made.get(column["name"])
        if before is not None and (before["kind"], before["nullable"]) != (column["kind"], column["nullable"]):
            problem = (f"dmp_schema says column {column['name']!r} was made as {before['kind']}"
                       f"{'' if before['nullable'] else ' NOT NULL'}, the stream declares {column['kind']}"
                       f"{'' if column['nullable'] else ' NOT NULL'}")
            raise SchemaMismatchError(_mismatch(stream, where, problem))


def _rows(dialect: Dialect, streams: Sequence[OutputStream]) -> pl.DataFrame:
    now = datetime.now(timezone.utc)
    return DMP_SCHEMA.conform(pl.DataFrame({
        "table_name": [s.name for s in streams],
        "schema_version": [SCHEMA_VERSION] * len(streams),
        "natural_key": [list(s.key) for s in streams],
        "columns": [json.dumps(declared_columns(dialect, s)) for s in streams],
        "created_at": [now] * len(streams),
    }))


def _mismatch(stream: OutputStream, where: str, problem: str) -> str:
    return (f"{where}: table {stream.name!r} does not match the {stream.name} stream's declaration: {problem}; "
            "nothing was written: migrate the table, or drop it to have it made anew")
