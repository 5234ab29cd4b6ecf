"""The table contract, in both dialects: types, keys, dmp_schema, indexes, views, upserts, mismatched tables."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.analytics.registry import stream, streams
from flows.engine.db.database import Database
from flows.engine.db.errors import SchemaMismatchError
from flows.engine.db.schema import DMP_SCHEMA, SCHEMA_VERSION
from flows.engine.db.url import DbUrl
from flows.engine.streams import (
    BOOL,
    BYTES,
    FLOAT,
    FLOATS,
    INT,
    MONEY,
    TEXT,
    TEXTS,
    TIME,
    TIME_MS,
    TIMES,
    Column,
    OutputStream,
)

# The contract the dashboard builds on, written out (not derived from the code under test).
CONTRACT = {
    "sqlite": {"text": "text", "int": "integer", "float": "real", "bool": "integer", "money": "integer",
               "time": "text", "time_ms": "text", "times": "text", "texts": "text", "floats": "text", "bytes": "blob"},
    "postgresql": {"text": "text", "int": "bigint", "float": "double precision", "bool": "boolean",
                   "money": "numeric(24,6)", "time": "timestamp with time zone",
                   "time_ms": "timestamp with time zone", "times": "timestamp with time zone[]", "texts": "text[]",
                   "floats": "double precision[]", "bytes": "bytea"},
}
KINDS = OutputStream(
    "kinds", "test row", "one column of every kind", key=("id",),
    columns=(Column("id", INT, nullable=False), Column("text", TEXT), Column("int", INT), Column("float", FLOAT),
             Column("bool", BOOL), Column("money", MONEY), Column("time", TIME), Column("time_ms", TIME_MS),
             Column("times", TIMES), Column("texts", TEXTS), Column("floats", FLOATS), Column("bytes", BYTES)),
)
T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
T1 = datetime(2024, 3, 1, 10, 0, 0, 250_000, tzinfo=timezone.utc)
ROWS = KINDS.conform(pl.DataFrame({
    "id": [1, 2], "text": ['a "quoted", é\nline', None], "int": [-42, None], "float": [0.1, None],
    "bool": [True, None], "money": [-330.98, None], "time": [T0, None], "time_ms": [T1, None],
    "times": [[T1, T0], None], "texts": [["x", 'y"\\z', ""], []], "floats": [[0.1, 2.5e-7], None],
    "bytes": [b"\xff\x00raw", None],
}, schema_overrides=KINDS.schema))


def open_db(url: str) -> Database:
    return Database.open(DbUrl.parse(url))


@pytest.fixture
def db(db_url):
    database = open_db(db_url)
    yield database
    database.close()


def dialect_of(db: Database) -> str:
    return "sqlite" if db.dialect.name == "SQLite" else "postgresql"


def test_every_kind_is_stored_as_the_contract_says(db):
    db.ensure_schema([KINDS])
    db.write(KINDS, ROWS)
    _, rows = db.query('SELECT * FROM kinds ORDER BY id')
    if dialect_of(db) == "sqlite":
        assert rows == [
            (1, 'a "quoted", é\nline', -42, 0.1, 1, -330_980_000, "2024-03-01T10:00:00Z", "2024-03-01T10:00:00.250Z",
             '["2024-03-01T10:00:00.250Z","2024-03-01T10:00:00.000Z"]', '["x","y\\"\\\\z",""]', "[0.1,2.5e-7]",
             b"\xff\x00raw"),
            (2, None, None, None, None, None, None, None, None, "[]", None, None),
        ]
    else:
        assert rows == [
            (1, 'a "quoted", é\nline', -42, 0.1, True, Decimal("-330.980000"), T0, T1, [T1, T0], ["x", 'y"\\z', ""],
             [0.1, 2.5e-7], b"\xff\x00raw"),
            (2, None, None, None, None, None, None, None, None, [], None, None),
        ]
    assert_frame_equal(db.read(KINDS).sort("id"), ROWS)


def test_tables_have_the_declared_columns_types_not_nulls_and_keys(db):
    db.ensure_schema(streams())
    contract = CONTRACT[dialect_of(db)]
    for declared in [*streams(), DMP_SCHEMA]:
        found = db.dialect.columns(db.connection, declared.name)
        assert [(c.name, c.type, c.not_null) for c in found] == [
            (c.name, contract[c.kind.name], not c.nullable) for c in declared.columns], declared.name
        assert db.dialect.primary_key(db.connection, declared.name) == declared.key, declared.name


def test_dmp_schema_records_each_table_s_version_key_and_columns(db):
    db.ensure_schema(streams())
    recorded = db.read(DMP_SCHEMA)
    assert sorted(recorded["table_name"]) == sorted(s.name for s in streams())
    trends = recorded.filter(pl.col("table_name") == "trends").row(0, named=True)
    assert (trends["schema_version"], trends["natural_key"]) == (SCHEMA_VERSION, ["window_start", "product_id"])
    columns = json.loads(trends["columns"])
    assert columns[0] == {"name": "window_start", "kind": "time", "type": "TEXT" if dialect_of(db) == "sqlite"
                          else "TIMESTAMPTZ", "nullable": False}
    assert [c["name"] for c in columns] == stream("trends").column_names


def test_indexes_by_time_and_by_product_or_user_exist(db):
    db.ensure_schema(streams())
    if dialect_of(db) == "sqlite":
        _, rows = db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")
    else:
        _, rows = db.query("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                  "AND indexname NOT LIKE '%_pkey'")
    assert sorted(name for (name,) in rows) == sorted([
        "trends_by_product_id", "leaderboard_by_product_id", "late_by_ts", "late_by_product_id", "late_by_user_id",
        "sessions_by_session_start", "recommendations_by_as_of", "triggers_by_triggered_at", "triggers_by_user_id",
        "quality_by_window_start", "quarantine_by_ts", "quarantine_by_product_id", "quarantine_by_user_id",
    ])


def leaderboard(window_start: datetime, revenues: list[float]) -> pl.DataFrame:
    return stream("leaderboard").conform(pl.DataFrame({
        "window_start": [window_start] * len(revenues), "window_end": [window_start.replace(minute=1)] * len(revenues),
        "rank": list(range(1, len(revenues) + 1)), "product_id": [f"p{i}" for i in range(len(revenues))],
        "revenue": revenues, "units": [1] * len(revenues), "purchases": [1] * len(revenues)}))


def test_leaderboard_latest_shows_the_latest_window_and_revenue_per_hour_sums_trends(db):
    db.ensure_schema(streams())
    db.write(stream("leaderboard"), pl.concat([leaderboard(T0, [5.0, 3.0]), leaderboard(T0.replace(hour=9), [9.0])]))
    _, rows = db.query("SELECT rank, product_id FROM leaderboard_latest ORDER BY rank")
    assert rows == [(1, "p0"), (2, "p1")]
    trends = stream("trends").conform(pl.DataFrame({
        "window_start": [T0, T0.replace(minute=1), T0.replace(hour=11)], "window_end": [T0] * 3,
        "product_id": ["a", "b", "a"], "views": [1, 2, 3], "carts": [0] * 3, "removes": [0] * 3,
        "purchases": [1, 1, 2], "units": [1, 1, 2], "revenue": [1.5, 2.25, 4.0], "revenue_change": [0.0] * 3,
        "trend": ["new"] * 3}))
    db.write(stream("trends"), trends)
    _, rows = db.query("SELECT revenue, purchases, views, products FROM revenue_per_hour ORDER BY hour")
    micros = 1_000_000 if dialect_of(db) == "sqlite" else 1
    assert [tuple(r) for r in rows] == [(3.75 * micros, 2, 3, 2), (4.0 * micros, 2, 3, 1)]


def test_writing_a_batch_again_changes_nothing_and_a_changed_row_replaces_the_old(db):
    db.ensure_schema(streams())
    board = stream("leaderboard")
    first = leaderboard(T0, [5.0, 3.0])
    db.write(board, first)
    db.write(board, first)
    assert_frame_equal(db.read(board).sort("rank"), first)
    changed = first.with_columns(pl.when(pl.col("rank") == 2).then(pl.lit(4.0)).otherwise("revenue").alias("revenue"))
    db.write(board, changed)
    assert_frame_equal(db.read(board).sort("rank"), changed)


def test_a_batch_holding_one_key_twice_keeps_the_last(db):
    db.ensure_schema(streams())
    board = stream("leaderboard")
    twice = pl.concat([leaderboard(T0, [5.0]), leaderboard(T0, [7.0])])
    db.write(board, twice)
    assert db.read(board)["revenue"].to_list() == [7.0]


@pytest.mark.parametrize(
    ("sqlite_ddl", "postgres_ddl", "named"),
    [
        ('revenue REAL NOT NULL', 'revenue DOUBLE PRECISION NOT NULL', "column 'revenue' is"),
        ('', '', "lacks the column 'revenue'"),
        ('revenue INTEGER NOT NULL, extra TEXT', 'revenue NUMERIC(24,6) NOT NULL, extra TEXT', "'extra'"),
        ('revenue INTEGER', 'revenue NUMERIC(24,6)', "column 'revenue' is"),
    ],
    ids=["wrong type", "missing column", "extra column", "nullable"],
)
def test_an_existing_table_that_does_not_match_stops_start_up_naming_table_and_column(db, sqlite_ddl, postgres_ddl,
                                                                                      named):
    ddl = sqlite_ddl if dialect_of(db) == "sqlite" else postgres_ddl
    time, text, integer = ("TEXT", "TEXT", "INTEGER") if dialect_of(db) == "sqlite" else ("TIMESTAMPTZ", "TEXT", "BIGINT")
    columns = [f"window_start {time} NOT NULL", f"window_end {time} NOT NULL", f"rank {integer} NOT NULL",
               f"product_id {text} NOT NULL", ddl, f"units {integer} NOT NULL", f"purchases {integer} NOT NULL"]
    db.connection.execute(f"CREATE TABLE leaderboard ({', '.join(c for c in columns if c)}, PRIMARY KEY (window_start, rank))")
    with pytest.raises(SchemaMismatchError) as error:
        db.ensure_schema(streams())
    message = str(error.value)
    assert "table 'leaderboard' does not match" in message and named in message and "\n" not in message
    assert db.dialect.columns(db.connection, "trends") is None  # nothing made: one transaction


def test_another_primary_key_is_a_mismatch(db):
    time = "TEXT" if dialect_of(db) == "sqlite" else "TIMESTAMPTZ"
    db.connection.execute(f"CREATE TABLE funnel (window_start {time} NOT NULL, window_end {time} NOT NULL, category TEXT NOT NULL, "
             "viewed BIGINT NOT NULL, carted BIGINT NOT NULL, purchased BIGINT NOT NULL, "
             "view_to_cart DOUBLE PRECISION NOT NULL, cart_to_purchase DOUBLE PRECISION, "
             "conversion DOUBLE PRECISION NOT NULL, median_time_to_purchase_s DOUBLE PRECISION, "
             "PRIMARY KEY (window_start))".replace("BIGINT", "INTEGER" if dialect_of(db) == "sqlite" else "BIGINT")
             .replace("DOUBLE PRECISION", "REAL" if dialect_of(db) == "sqlite" else "DOUBLE PRECISION"))
    with pytest.raises(SchemaMismatchError, match=r"table 'funnel' .* primary key is \(window_start\), the natural key is "
                                             r"\(window_start, category\)"):
        db.ensure_schema(streams())


def test_a_table_made_for_another_kind_is_a_mismatch_even_when_the_sql_type_is_the_same(db):
    db.ensure_schema(streams())
    # In SQLite TIME and TIME_MS are both TEXT; dmp_schema remembers which one a table was made with.
    recorded = db.read(DMP_SCHEMA).filter(pl.col("table_name") == "trends")
    columns = json.loads(recorded["columns"][0])
    columns[0]["kind"] = "time_ms"
    db.write(DMP_SCHEMA, recorded.with_columns(pl.lit(json.dumps(columns)).alias("columns")))
    with pytest.raises(SchemaMismatchError, match=r"table 'trends' .* 'window_start' was made as time_ms NOT NULL, "
                                                  r"the stream declares time NOT NULL"):
        db.ensure_schema(streams())


def test_the_schema_is_made_once_and_checked_after(db):
    assert "trends" in db.ensure_schema(streams())
    assert db.ensure_schema(streams()) == []


def test_a_nul_in_text_is_kept_by_sqlite_and_replaced_in_postgresql_which_cannot_hold_it(db):
    db.ensure_schema([KINDS])
    db.write(KINDS, KINDS.conform(pl.DataFrame({"id": [1], "text": ["a\x00b"], "texts": [["c\x00"]]})))
    row = db.read(KINDS).select("text", "texts").row(0)
    assert row == (("a\x00b", ["c\x00"]) if dialect_of(db) == "sqlite" else ("a\ufffdb", ["c\ufffd"]))
