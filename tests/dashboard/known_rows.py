"""A small, known set of results, as JSON Lines show them, to write into a test database.

:func:`typed` turns a stream's rows into the typed frame a sink gets (the same way
:func:`flows.engine.sinks.files.read_stream` reads JSON Lines back).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import polars as pl

from flows.engine.analytics.registry import stream, streams
from flows.engine.db.database import Database
from flows.engine.db.url import DbUrl
from flows.engine.streams import OutputStream

W0, W1, W2 = "2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z"
W3, H11 = "2024-03-01T10:03:00Z", "2024-03-01T11:00:00Z"

ROWS: dict[str, list[dict]] = {
    "leaderboard": [
        {"window_start": W0, "window_end": W1, "rank": 1, "product_id": "p2", "revenue": 40.0, "units": 2, "purchases": 1},
        {"window_start": W0, "window_end": W1, "rank": 2, "product_id": "p1", "revenue": 19.99, "units": 1, "purchases": 1},
        {"window_start": W1, "window_end": W2, "rank": 1, "product_id": "p1", "revenue": 59.97, "units": 3, "purchases": 2},
        {"window_start": W1, "window_end": W2, "rank": 2, "product_id": "p3", "revenue": 0.5, "units": 1, "purchases": 1},
        {"window_start": W1, "window_end": W2, "rank": 3, "product_id": "p2", "revenue": 0.1, "units": 1, "purchases": 1},
    ],
    "trends": [
        {"window_start": W0, "window_end": W1, "product_id": "p1", "views": 5, "carts": 2, "removes": 0, "purchases": 1,
         "units": 1, "revenue": 19.99, "revenue_change": 19.99, "trend": "new"},
        {"window_start": W0, "window_end": W1, "product_id": "p2", "views": 3, "carts": 1, "removes": 1, "purchases": 1,
         "units": 2, "revenue": 40.0, "revenue_change": 40.0, "trend": "new"},
        {"window_start": W1, "window_end": W2, "product_id": "p1", "views": 7, "carts": 3, "removes": 1, "purchases": 2,
         "units": 3, "revenue": 59.97, "revenue_change": 39.98, "trend": "up"},
        {"window_start": W1, "window_end": W2, "product_id": "p2", "views": 1, "carts": 1, "removes": 0, "purchases": 1,
         "units": 1, "revenue": 0.1, "revenue_change": -39.9, "trend": "down"},
        {"window_start": W1, "window_end": W2, "product_id": "p3", "views": 2, "carts": 1, "removes": 0, "purchases": 1,
         "units": 1, "revenue": 0.5, "revenue_change": 0.5, "trend": "new"},
        {"window_start": W1, "window_end": W2, "product_id": "x_%", "views": 1, "carts": 0, "removes": 0, "purchases": 0,
         "units": 0, "revenue": 0.0, "revenue_change": 0.0, "trend": "new"},
    ],
    "funnel": [
        {"window_start": "2024-03-01T10:00:00Z", "window_end": "2024-03-01T11:00:00Z", "category": "shoes", "viewed": 4,
         "carted": 2, "purchased": 1, "view_to_cart": 0.5, "cart_to_purchase": 0.5, "conversion": 0.25,
         "median_time_to_purchase_s": 90.5},
        {"window_start": "2024-03-01T10:00:00Z", "window_end": "2024-03-01T11:00:00Z", "category": "*", "viewed": 6,
         "carted": 2, "purchased": 1, "view_to_cart": 0.3333333333333333, "cart_to_purchase": 0.5,
         "conversion": 0.16666666666666666, "median_time_to_purchase_s": 90.5},
        {"window_start": "2024-03-01T10:00:00Z", "window_end": "2024-03-01T11:00:00Z", "category": "hats", "viewed": 2,
         "carted": 0, "purchased": 0, "view_to_cart": 0.0, "cart_to_purchase": None, "conversion": 0.0,
         "median_time_to_purchase_s": None},
        {"window_start": "2024-03-01T09:00:00Z", "window_end": "2024-03-01T10:00:00Z", "category": "*", "viewed": 1,
         "carted": 0, "purchased": 0, "view_to_cart": 0.0, "cart_to_purchase": None, "conversion": 0.0,
         "median_time_to_purchase_s": None},
    ],
    "timeseries": [
        {"bucket_start": W0, "bucket_end": W1, "metric": "revenue", "category": "*", "value": 59.99, "moving_avg": None,
         "diff": None, "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": None, "seasonal": None,
         "residual": None},
        {"bucket_start": W1, "bucket_end": W2, "metric": "revenue", "category": "*", "value": 60.57, "moving_avg": 60.28,
         "diff": 0.58, "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": 60.28, "seasonal": 0.0,
         "residual": 0.29},
        {"bucket_start": W1, "bucket_end": W2, "metric": "revenue", "category": "shoes", "value": 59.97,
         "moving_avg": 59.97, "diff": None, "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": None,
         "seasonal": None, "residual": None},
        {"bucket_start": W1, "bucket_end": W2, "metric": "orders", "category": "*", "value": 4.0, "moving_avg": 3.0,
         "diff": 2.0, "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": 3.0, "seasonal": 0.0,
         "residual": 1.0},
    ],
    "anomalies": [
        {"bucket_start": W1, "bucket_end": W2, "metric": "revenue", "category": "*", "actual": 60.57, "expected": 30.0,
         "residual": 30.57, "score": 7.25, "direction": "up", "threshold": 5.0},
        {"bucket_start": W0, "bucket_end": W1, "metric": "orders", "category": "*", "actual": 0.0, "expected": 3.0,
         "residual": -3.0, "score": -5.5, "direction": "down", "threshold": 5.0},
    ],
    "triggers": [
        {"trigger_id": "t1", "trigger_type": "cart_abandoned", "user_id": "u1", "triggered_at": "2024-03-01T10:00:30.250Z",
         "value": 19.99, "since": "2024-03-01T09:50:00.000Z", "products": ["p1", "p2"]},
        {"trigger_id": "t2", "trigger_type": "high_value_customer", "user_id": "u2",
         "triggered_at": "2024-03-01T11:00:00.000Z", "value": 3200.5, "since": "2024-02-29T11:00:00.000Z",
         "products": None},
        {"trigger_id": "t3", "trigger_type": "cart_abandoned", "user_id": "u3", "triggered_at": "2024-03-01T10:05:00.000Z",
         "value": 5.0, "since": "2024-03-01T10:01:00.000Z", "products": ["p3"]},
    ],
    "recommendations": [
        {"product_id": "p1", "as_of": "2024-03-01T10:00:00Z", "related": ["p9"], "scores": [0.1]},
        {"product_id": "p1", "as_of": "2024-03-01T11:00:00Z", "related": ["p2", "p3"], "scores": [0.8164965809277261, 0.5]},
        {"product_id": "p2", "as_of": "2024-03-01T11:00:00Z", "related": ["p1"], "scores": [0.8164965809277261]},
    ],
    "monitoring": [
        {"interval_start": f"2024-03-01T12:00:{s:02d}.000Z", "interval_end": f"2024-03-01T12:00:{s + 10:02d}.000Z",
         "worker": worker, "workers": 2 if worker == "total" else 1, "records": records, "events": records - 1,
         "events_per_s": (records - 1) / 10, "dead_letters": 1, "late_events": 0, "latency_samples": 2,
         "latency_p50_ms": 12.5, "latency_p95_ms": 40.0, "latency_p99_ms": 48.0,
         "watermark": "2024-03-01T10:01:30.000Z", "watermark_lag_s": 7110.0 + s, "live": True}
        for s in (0, 10, 20) for worker, records in (("0", 501), ("1", 301), ("total", 802))
    ],
    "quality": [
        {"analytic": "trends", "window_start": W0, "window_end": W1, "report": "at_close", "as_of": W1,
         "events": 120, "late": 0, "duplicates": 1, "dead_letters": 2, "dropped_after_idle": 0},
        {"analytic": "trends", "window_start": W0, "window_end": W1, "report": "after_close", "as_of": W3,
         "events": 0, "late": 3, "duplicates": 0, "dead_letters": 0, "dropped_after_idle": 0},
        {"analytic": "trends", "window_start": W1, "window_end": W2, "report": "at_close", "as_of": W2,
         "events": 80, "late": 1, "duplicates": 0, "dead_letters": 0, "dropped_after_idle": 0},
        {"analytic": "funnel", "window_start": W0, "window_end": H11, "report": "at_close", "as_of": H11,
         "events": 500, "late": 0, "duplicates": 1, "dead_letters": 2, "dropped_after_idle": 0},
    ],
}


def typed(name: str, rows: list[dict] | None = None) -> pl.DataFrame:
    """A stream's rows (JSON Lines form) as the typed frame its declaration says."""
    declared = stream(name)
    rows = ROWS[name] if rows is None else rows
    text = "\n".join(json.dumps(row) for row in rows).encode()
    return declared.conform(pl.read_ndjson(io.BytesIO(text), schema=declared.json_schema))


def create_tables(url: str, declared: Sequence[OutputStream] | None = None) -> None:
    """The tables (indexes, views) of ``declared`` (default: every stream), as a starting flow creates them."""
    database = Database.open(DbUrl.parse(url))
    try:
        database.ensure_schema(streams() if declared is None else declared)
    finally:
        database.close()


def write_many(url: str, frames: Mapping[OutputStream, pl.DataFrame]) -> None:
    """Typed rows into every stream's table, by the results database's own writer (upserts)."""
    database = Database.open(DbUrl.parse(url))
    try:
        database.ensure_schema(streams())
        for declared, frame in frames.items():
            database.write(declared, frame)
    finally:
        database.close()


def write_known(url: str) -> None:
    """Every stream's table, with :data:`ROWS` in them (and a dead letter that is not UTF-8)."""
    create_tables(url)
    dead = pl.DataFrame({"reason": ["not valid UTF-8"], "raw": [b"\xff{"], "source": ["sim-0:7"]},
                        schema=stream("dead_letters").schema)
    write_many(url, {**{stream(name): typed(name) for name in ROWS}, stream("dead_letters"): dead})
