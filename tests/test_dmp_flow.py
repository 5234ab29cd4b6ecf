"""flows.dmp end to end with TestingSource / TestingSink: exact rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from bytewax.testing import TestingSource
from polars.testing import assert_frame_equal

from flows import dmp
from flows.engine.analytics import registry
from flows.engine.config import Settings
from flows.engine.sources import FileSource
from flows.engine.testing import CapturedOutputs, batches, interleave, run

DATA = Path(__file__).resolve().parent / "data" / "rees46-2019-oct-sample.csv"
SETTINGS = Settings(window_ms=60_000, allowed_lateness_ms=10_000, top_n=2, shards=4)


def event(kind: str, at: str, product: str, price: float | None = None, quantity: int = 1) -> dict:
    return {"event_type": kind, "ts": f"2024-03-01T{at}Z", "user_id": 7, "product_id": product,
            "price": price, "quantity": quantity}


PARTITION_A = [
    event("view", "10:00:05", "p1"),
    event("purchase", "10:00:20", "p1", 10.0, 2),
    event("purchase", "10:00:50", "p2", 30.0),
    event("view", "10:01:10", "p1"),
    event("purchase", "10:01:30", "p1", 10.0),
    event("view", "10:00:40", "p2"),  # a's watermark is now 10:01:20: late for [10:00, 10:01)
]
PARTITION_B = [
    event("add_to_cart", "10:00:30", "p2"),
    event("purchase", "10:01:05", "p3", 5.5, 4),
    "oops",
]


def run_shop(workers: int) -> CapturedOutputs:
    per_partition = {
        "a": batches(PARTITION_A, partition="a", size=2),
        "b": batches(PARTITION_B, partition="b", size=1, as_lines=True),
    }
    items = interleave(per_partition, ["a", "b", "b", "a", "b", "a"])
    captured = CapturedOutputs()
    flow = dmp.build(SETTINGS, source=TestingSource(items), partitions=["a", "b"], outputs=captured.outputs())
    run(flow, workers=workers)
    return captured


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def shop(request) -> CapturedOutputs:
    return run_shop(request.param)


def test_trends_count_what_each_product_did_per_window(shop):
    expected = pl.DataFrame(
        [
            ("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", "p1", 1, 0, 0, 1, 2, 20.0, 20.0, "new"),
            ("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", "p2", 0, 1, 0, 1, 1, 30.0, 30.0, "new"),
            ("2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z", "p1", 1, 0, 0, 1, 1, 10.0, -10.0, "down"),
            ("2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z", "p3", 0, 0, 0, 1, 4, 22.0, 22.0, "new"),
        ],
        schema=["window_start", "window_end", "product_id", "views", "carts", "removes", "purchases", "units",
                "revenue", "revenue_change", "trend"],
        orient="row",
    )
    assert_frame_equal(shop.sorted_frame("trends", ["window_start", "product_id"]), expected)


def test_the_leaderboard_ranks_each_window_by_revenue(shop):
    expected = pl.DataFrame(
        [
            ("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", 1, "p2", 30.0, 1, 1),
            ("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", 2, "p1", 20.0, 2, 1),
            ("2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z", 1, "p3", 22.0, 4, 1),
            ("2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z", 2, "p1", 10.0, 1, 1),
        ],
        schema=["window_start", "window_end", "rank", "product_id", "revenue", "units", "purchases"],
        orient="row",
    )
    assert_frame_equal(shop.sorted_frame("leaderboard", ["window_start", "rank"]), expected)


def test_a_late_event_is_reported_with_the_watermark_it_missed_and_not_counted(shop):
    late = shop.frame("late")
    assert sorted(late["analytic"]) == ["trends"]  # its 10-minute time-series bucket was still open
    late = late.filter(pl.col("analytic") == "trends")
    assert late.select("event_type", "ts", "product_id", "window_start", "window_end", "watermark", "partition").rows() == [
        ("view", "2024-03-01T10:00:40.000Z", "p2", "2024-03-01T10:00:00.000Z", "2024-03-01T10:01:00.000Z",
         "2024-03-01T10:01:20.000Z", "a"),
    ]


def test_malformed_records_are_dead_letters_with_their_position(shop):
    (letter,) = shop.typed("dead_letters").rows(named=True)
    assert (letter["raw"], letter["source"]) == (b"oops", "b:3")  # the bytes, unchanged
    assert letter["reason"] == "not JSON"


def test_the_summary_reconciles_every_record(shop):
    summary = shop.summary
    assert {k: summary[k] for k in ("records", "events", "dead_letters", "late", "on_time", "reconciled")} == {
        "records": 9, "events": 8, "dead_letters": 1, "late": 1, "on_time": 7, "reconciled": True,
    }
    assert summary["revenue"] == 82.0  # 20 + 30 + 10 + 22: the late view adds nothing
    assert [p["product_id"] for p in summary["top_products"]] == ["p1", "p2"]  # 30.0 each; units break the tie


def test_one_and_two_workers_emit_the_same_rows():
    one, two = run_shop(1), run_shop(2)
    for stream in ("trends", "leaderboard", "late", "dead_letters"):
        assert_frame_equal(one.sorted_frame(stream), two.sorted_frame(stream))


def test_plain_records_from_a_testing_source_need_no_partitions():
    captured = CapturedOutputs()
    flow = dmp.build(SETTINGS, source=TestingSource(PARTITION_B), outputs=captured.outputs())
    run(flow)
    assert captured.frame("trends").height == 2 and captured.frame("dead_letters").height == 1


def test_the_rees46_sample_runs_through_the_flow_without_dead_letters():
    captured = CapturedOutputs()
    flow = dmp.build(Settings(), source=FileSource([DATA], batch_bytes=8192), outputs=captured.outputs())
    run(flow)
    summary = captured.summary
    assert (summary["records"], summary["events"], summary["dead_letters"]) == (1000, 1000, 0)
    trends = captured.frame("trends")
    assert trends["views"].sum() + trends["carts"].sum() + trends["purchases"].sum() + summary["late"] == 1000
    assert captured.frame("leaderboard")["window_start"].n_unique() <= 18  # 00:00 to 00:17


def test_every_stream_emits_rows_of_its_declared_schema(shop):
    emitted = {name: [frame for _key, frame in items if frame.height] for name, items in shop.items.items()}
    assert {"trends", "leaderboard", "quality", "late", "dead_letters"} <= {n for n, frames in emitted.items() if frames}
    for name, frames in emitted.items():
        declared = registry.stream(name).schema
        for frame in frames:  # dead letters also carry the Kafka key, which only Kafka sends
            assert {c: frame.schema[c] for c in declared} == dict(declared), name
    json_lines = shop.frame("trends").write_ndjson()
    assert_frame_equal(pl.read_ndjson(json_lines.encode(), schema=registry.stream("trends").json_schema), shop.typed("trends"))
