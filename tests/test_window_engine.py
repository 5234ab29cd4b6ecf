"""Unit tests of the windowing engine: watermarks, routing, shard state."""

from __future__ import annotations

import pickle
import zlib

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.aggregate import Sum, WindowedAggregate
from flows.engine.errors import DmpError, StateError
from flows.engine.lateness import split_late
from flows.engine.routing import balanced_keys
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, EventBatch, StampedBatch
from flows.engine.shards import ClosedWindows, ShardUpdate, WindowGather, WindowShard, route, shard_of
from flows.engine.watermark import PartitionWatermark, stamp
from flows.engine.windows import TumblingWindow

MINUTE = 60_000
COUNT = WindowedAggregate("count", ("product_id",), TumblingWindow(MINUTE), {"n": Sum(pl.col("quantity"))})


def partials(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    """Partial aggregates (window_start, product_id, n); each row counts as one event."""
    frame = pl.DataFrame(rows, schema={"window_start": pl.Int64, "product_id": pl.String, "n": pl.Int64}, orient="row")
    return frame.with_columns(pl.lit(1, pl.Int64).alias("events"))


def sums(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("window_start", "product_id", "n")


def rows_of(closed: list) -> int:
    return sum(c.rows.height for c in closed)


def update(partition: str, watermark: int, rows: list[tuple[int, str, int]] | None = None) -> ShardUpdate:
    return ShardUpdate(partition, partials(rows or []), watermark)


# -- watermarks ------------------------------------------------------------------


def test_each_event_meets_the_largest_earlier_time_of_its_partition_minus_lateness():
    events = pl.DataFrame({"ts": [100, 90, 300, 250, 400]})
    stamped, max_ts = stamp(events, max_ts=None, lateness_ms=50)
    assert stamped["watermark"].to_list() == [BEGINNING_OF_TIME, 50, 50, 250, 250]
    assert max_ts == 400


def test_the_watermark_carries_over_from_earlier_batches():
    stamped, max_ts = stamp(pl.DataFrame({"ts": [10]}), max_ts=500, lateness_ms=0)
    assert stamped["watermark"].to_list() == [500]
    assert max_ts == 500


def test_an_ended_partition_no_longer_holds_time_back():
    logic = PartitionWatermark(lateness_ms=1_000, dedup_horizon_ms=None, resume=None)
    events = pl.DataFrame({"ts": [5_000]})
    (first,), _ = logic.on_batch([EventBatch("p", events, 1)])
    assert first.watermark == 4_000
    (last,), _ = logic.on_batch([EventBatch("p", events.clear(), 0, last=True)])
    assert last.watermark == END_OF_TIME


def test_partition_watermark_resumes_from_its_snapshot():
    logic = PartitionWatermark(lateness_ms=0, dedup_horizon_ms=None, resume=None)
    logic.on_batch([EventBatch("p", pl.DataFrame({"ts": [7_000]}), 1)])
    resumed = PartitionWatermark(lateness_ms=0, dedup_horizon_ms=None, resume=pickle.loads(pickle.dumps(logic.snapshot())))
    (batch,), _ = resumed.on_batch([EventBatch("p", pl.DataFrame({"ts": [1_000]}), 1)])
    assert batch.events["watermark"].to_list() == [7_000]


# -- routing -----------------------------------------------------------------------


def test_events_whose_window_ended_at_or_before_their_watermark_are_late():
    events = pl.DataFrame({"ts": [59_999, 60_000, 119_000], "watermark": [60_000, 60_000, 60_000]})
    on_time, late = split_late(events, TumblingWindow(MINUTE))
    assert late["ts"].to_list() == [59_999]  # its window [0, 60s) ends exactly at the watermark
    assert on_time["ts"].to_list() == [60_000, 119_000]


def test_every_shard_hears_every_batch_watermark_even_without_data():
    events = pl.DataFrame({"ts": [1_000], "product_id": ["a"], "quantity": [1], "watermark": [BEGINNING_OF_TIME]})
    routed = route(StampedBatch("p", events, watermark=42), COUNT, shards=4)
    assert [key for key, _ in routed.updates] == list(balanced_keys(4))
    assert all(u.watermark == 42 and u.partition == "p" for _, u in routed.updates)
    assert sum(u.rows.height for _, u in routed.updates) == 1


def test_shards_are_assigned_by_a_stable_crc32_of_the_key():
    frame = pl.DataFrame({"product_id": ["1001", "1002", "1001"], "user_id": ["u", "u", "v"]})
    assert shard_of(frame, ["product_id"], 16).to_list() == [zlib.crc32(k.encode()) % 16 for k in ("1001", "1002", "1001")]
    pairs = ("1001\x1fu", "1002\x1fu", "1001\x1fv")
    assert shard_of(frame, ["product_id", "user_id"], 1000).to_list() == [zlib.crc32(k.encode()) % 1000 for k in pairs]


# -- shard state --------------------------------------------------------------------


def test_a_window_closes_only_when_every_partition_has_passed_its_end():
    shard = WindowShard(COUNT, ["a", "b"], shards=1, resume=None)
    out, _ = shard.on_batch([update("a", 2 * MINUTE, [(0, "x", 1)])])
    assert rows_of(out) == 0  # partition b has said nothing yet
    out, _ = shard.on_batch([update("b", MINUTE - 1, [(0, "x", 2)])])
    assert rows_of(out) == 0  # b is one millisecond short of the window's end
    out, _ = shard.on_batch([update("b", MINUTE)])
    assert len(out) == 1
    assert_frame_equal(sums(out[0].rows), sums(partials([(0, "x", 3)])))
    assert out[0].closed_until == MINUTE


def test_each_window_is_emitted_once():
    shard = WindowShard(COUNT, ["a"], shards=1, resume=None)
    shard.on_batch([update("a", 0, [(0, "x", 1)])])
    first, _ = shard.on_batch([update("a", MINUTE + 5)])
    again, _ = shard.on_batch([update("a", MINUTE + 9)])
    assert first[0].rows.height == 1 and again == []
    final, _ = shard.on_eof()
    assert final[0].rows.height == 0 and final[0].closed_until == END_OF_TIME


def test_end_of_input_closes_every_window():
    shard = WindowShard(COUNT, ["a", "b"], shards=1, resume=None)
    shard.on_batch([update("a", 0, [(0, "x", 1), (MINUTE, "y", 4)])])
    (closed,), _ = shard.on_eof()
    assert_frame_equal(sums(closed.rows), sums(partials([(0, "x", 1), (MINUTE, "y", 4)])))


def test_a_batch_from_an_undeclared_partition_is_an_error_naming_it():
    shard = WindowShard(COUNT, ["a"], shards=1, resume=None)
    with pytest.raises(DmpError, match="'zzz'"):
        shard.on_batch([update("zzz", 0)])


def test_restoring_with_another_shard_count_is_refused():
    shard = WindowShard(COUNT, ["a"], shards=4, resume=None)
    with pytest.raises(StateError, match="DMP_SHARDS=4"):
        WindowShard(COUNT, ["a"], shards=8, resume=shard.snapshot())


def test_a_restored_shard_continues_exactly_where_it_stopped():
    live = WindowShard(COUNT, ["a"], shards=1, resume=None)
    live.on_batch([update("a", 0, [(0, "x", 1)])])
    restored = WindowShard(COUNT, ["a"], shards=1, resume=pickle.loads(pickle.dumps(live.snapshot())))
    for logic in (live, restored):
        logic.on_batch([update("a", 10, [(0, "x", 2)])])
    (a,), _ = live.on_eof()
    (b,), _ = restored.on_eof()
    assert_frame_equal(a.rows, b.rows)
    assert_frame_equal(sums(a.rows), sums(partials([(0, "x", 3)])))


def test_partitions_added_after_a_snapshot_start_at_the_beginning_of_time():
    shard = WindowShard(COUNT, ["a"], shards=1, resume=None)
    shard.on_batch([update("a", 5 * MINUTE, [(0, "x", 1)])])
    grown = WindowShard(COUNT, ["a", "b"], shards=1, resume=shard.snapshot())
    assert grown.watermarks == {"a": 5 * MINUTE, "b": BEGINNING_OF_TIME}


# -- gathering complete windows --------------------------------------------------------

SHARDS = balanced_keys(2)


def closed_of(out: list) -> list[ClosedWindows]:
    """The result items of a gather's output (the rest are quality rows)."""
    return [item for item in out if isinstance(item, ClosedWindows)]


def test_a_window_is_complete_only_when_every_shard_has_closed_it():
    gather = WindowGather(COUNT, shards=2, resume=None)
    out, _ = gather.on_batch([("closed", SHARDS[0], ClosedWindows(partials([(0, "a", 5)]), MINUTE))])
    assert out == []  # the other shard may still hold rows of [0, 1m)
    out, _ = gather.on_batch([("closed", SHARDS[1], ClosedWindows(partials([(0, "b", 7)]), MINUTE))])
    assert_frame_equal(sums(closed_of(out)[0].rows), sums(partials([(0, "a", 5), (0, "b", 7)])))
    again, _ = gather.on_batch([("closed", SHARDS[0], ClosedWindows(partials([]), 3 * MINUTE))])
    assert again == []  # emitted once


def test_complete_windows_come_out_in_window_order_across_emissions():
    gather = WindowGather(COUNT, shards=2, resume=None)
    gather.on_batch([("closed", SHARDS[0], ClosedWindows(partials([(0, "a", 1), (MINUTE, "a", 2)]), 2 * MINUTE))])
    out, _ = gather.on_batch([("closed", SHARDS[1], ClosedWindows(partials([]), MINUTE))])
    (first,) = closed_of(out)
    assert first.rows["window_start"].to_list() == [0]
    out, _ = gather.on_batch([("closed", SHARDS[1], ClosedWindows(partials([(MINUTE, "b", 3)]), 2 * MINUTE))])
    (second,) = closed_of(out)
    assert_frame_equal(sums(second.rows), sums(partials([(MINUTE, "a", 2), (MINUTE, "b", 3)])))


def test_gather_flushes_everything_at_end_of_input_and_resumes_from_its_snapshot():
    gather = WindowGather(COUNT, shards=2, resume=None)
    gather.on_batch([("closed", SHARDS[0], ClosedWindows(partials([(0, "a", 1)]), 0))])
    restored = WindowGather(COUNT, shards=2, resume=pickle.loads(pickle.dumps(gather.snapshot())))
    out, _ = restored.on_eof()
    assert_frame_equal(sums(closed_of(out)[0].rows), sums(partials([(0, "a", 1)])))
