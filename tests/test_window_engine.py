"""Unit tests of the windowing engine: watermarks, dedup, routing, shard state, window kinds, quality."""

from __future__ import annotations

import pickle

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.aggregate import Sum, WindowedAggregate, WindowedFunction
from flows.engine.errors import DmpError, StateError
from flows.engine.gather import WindowGather
from flows.engine.placement import balanced_keys
from flows.engine.routing import ShardUpdate, route, shard_of
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, QUALITY_SCHEMA, ClosedWindows, EventBatch, StampedBatch
from flows.engine.sessions import merge_sessions, session_partials
from flows.engine.shards import WindowShard
from flows.engine.watermark import PartitionWatermark, stamp
from flows.engine.windows import SessionWindow, SlidingWindow, TumblingWindow

MINUTE = 60_000
COUNT = WindowedAggregate("count", ("product_id",), TumblingWindow(MINUTE), {"n": Sum(pl.col("quantity"))})


def partials(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    """Partial aggregates (window_start, product_id, n); each row counts as one event."""
    frame = pl.DataFrame(rows, schema={"window_start": pl.Int64, "product_id": pl.String, "n": pl.Int64}, orient="row")
    return frame.with_columns(pl.lit(1, pl.Int64).alias("events"))


def sums(frame: pl.DataFrame) -> pl.DataFrame:
    """The sums of partial rows, in window and key order."""
    return frame.select("window_start", "product_id", "n").sort("window_start", "product_id")


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
    on_time, late = TumblingWindow(MINUTE).split_late(events)
    assert late["ts"].to_list() == [59_999]  # its window [0, 60s) ends exactly at the watermark
    assert on_time["ts"].to_list() == [60_000, 119_000]


def test_every_shard_hears_every_batch_watermark_even_without_data():
    events = pl.DataFrame({"ts": [1_000], "product_id": ["a"], "quantity": [1], "watermark": [BEGINNING_OF_TIME]})
    routed = route(StampedBatch("p", events, watermark=42), COUNT, shards=4)
    assert [key for key, _ in routed.updates] == list(balanced_keys(4))
    assert all(u.watermark == 42 and u.partition == "p" for _, u in routed.updates)
    assert sum(u.rows.height for _, u in routed.updates) == 1


def test_shards_are_assigned_by_a_stable_hash_of_the_key():
    frame = pl.DataFrame({"product_id": ["1001", "1002", "1001"], "user_id": ["u", "u", "v"]})
    one = shard_of(frame, ["product_id"], 16).to_list()
    assert one[0] == one[2] and all(0 <= s < 16 for s in one)
    assert one == shard_of(frame.reverse(), ["product_id"], 16).to_list()[::-1]  # a key's shard, not a row's
    two = shard_of(frame, ["product_id", "user_id"], 1000).to_list()
    assert two[0] != two[2]  # both keys count
    spread = shard_of(pl.DataFrame({"k": [str(i) for i in range(8000)]}), ["k"], 8).value_counts()
    assert spread["count"].min() > 800  # even enough


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


# -- sliding windows -------------------------------------------------------------------

SLIDING = SlidingWindow(5 * MINUTE, MINUTE)


def test_an_event_belongs_to_every_sliding_window_covering_it():
    rows = SLIDING.assign(pl.DataFrame({"ts": [90_000]}))
    assert sorted(rows["window_start"].to_list()) == [-3 * MINUTE, -2 * MINUTE, -MINUTE, 0, MINUTE]


def test_a_sliding_event_counts_in_the_windows_it_is_on_time_for_and_names_the_ones_it_missed():
    # ts 90s is in [-3m, 2m) ... [1m, 6m); the watermark 3m has passed the ends of the first two.
    events = pl.DataFrame({"event_id": ["e"], "ts": [90_000], "watermark": [3 * MINUTE]})
    on_time, late = SLIDING.split_late(events)
    assert sorted(on_time["window_start"].to_list()) == [-MINUTE, 0, MINUTE]
    assert late.select("event_id", "missed", "window_start", "window_end").rows() == [
        ("e", [-3 * MINUTE, -2 * MINUTE], -3 * MINUTE, 2 * MINUTE)
    ]


def test_sliding_windows_close_every_slide():
    spec = WindowedAggregate("s", ("product_id",), SLIDING, {"n": Sum(pl.col("quantity"))})
    shard = WindowShard(spec, ["a"], shards=1, resume=None)
    out, _ = shard.on_batch([update("a", 0, [(-4 * MINUTE, "x", 1), (-3 * MINUTE, "x", 1), (0, "x", 1)])])
    out, _ = shard.on_batch([update("a", MINUTE + 1)])  # [-4m, 1m) ended; [-3m, 2m) has not
    assert out[0].rows["window_start"].to_list() == [-4 * MINUTE] and out[0].closed_until == MINUTE


# -- sessions ------------------------------------------------------------------------------

GAP = 10_000
SESSIONS = WindowedAggregate("sessions", ("user_id",), SessionWindow(GAP), {"n": Sum(pl.col("quantity"))})


def session_events(rows: list[tuple[str, int]], watermark: int = BEGINNING_OF_TIME) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": [u for u, _ in rows], "ts": [t for _, t in rows], "quantity": [1] * len(rows),
         "watermark": [watermark] * len(rows)}
    )


def test_sessions_split_at_the_gap_and_merge_across_batches_when_an_event_bridges_them():
    first = session_partials(session_events([("u", 0), ("u", 9_999), ("u", 28_000)]), SESSIONS)
    assert sorted(first.select("window_start", "last_ts", "n").rows()) == [(0, 9_999, 2), (28_000, 28_000, 1)]
    bridge = session_partials(session_events([("u", 19_000), ("v", 19_000)]), SESSIONS)  # 9.001s and 9s away
    merged = merge_sessions([first, bridge], SESSIONS)
    assert sorted(merged.select("user_id", "window_start", "last_ts", "n", "events").rows()) == [
        ("u", 0, 28_000, 4, 4),
        ("v", 19_000, 19_000, 1, 1),
    ]


def test_events_exactly_a_gap_apart_are_separate_sessions():
    partials = session_partials(session_events([("u", 0), ("u", GAP)]), SESSIONS)
    assert sorted(partials["window_start"].to_list()) == [0, GAP]


def test_an_event_is_late_for_sessions_when_its_time_plus_the_gap_has_passed_the_watermark():
    events = session_events([("u", 5_000), ("u", 5_001)], watermark=15_000)
    on_time, late = SessionWindow(GAP).split_late(events)
    assert on_time["ts"].to_list() == [5_001] and late["ts"].to_list() == [5_000]
    assert late.select("window_start", "window_end").rows() == [(5_000, 15_000)]


def session_update(partition: str, watermark: int, rows: list[tuple[str, int]] | None = None) -> ShardUpdate:
    events = session_events(rows or [])
    return ShardUpdate(partition, session_partials(events, SESSIONS), watermark)


def test_a_session_closes_one_gap_after_its_end_so_no_on_time_event_can_still_reach_it():
    shard = WindowShard(SESSIONS, ["a", "b"], shards=1, resume=None)
    shard.on_batch([session_update("a", 0, [("u", 0)])])  # session [0, 10s)
    out, _ = shard.on_batch([session_update("a", 15_000), session_update("b", 15_000)])
    assert rows_of(out) == 0  # past its end, but b may still send u at 6s (6s + gap > 15s: on time)
    out, _ = shard.on_batch([session_update("b", 15_000, [("u", 6_000)]), session_update("a", 30_000)])
    assert rows_of(out) == 0
    out, _ = shard.on_batch([session_update("b", 2 * GAP + 6_000)])  # min watermark = last + 2 gaps
    assert out[0].rows.select("user_id", "window_start", "last_ts", "window_end", "n").rows() == [
        ("u", 0, 6_000, 16_000, 2)
    ]
    assert shard.state.rows == 0 and shard.snapshot().open == []  # closed sessions leave state at once


def test_a_session_function_sees_the_events_of_each_closed_session():
    seen = []

    def keep(frame: pl.DataFrame) -> pl.DataFrame:
        seen.append(frame.sort("ts"))
        return frame.group_by("window_start", "window_end", "user_id").agg(pl.len())

    spec = WindowedFunction("f", ("user_id",), SessionWindow(GAP), ("quantity",), keep)
    shard = WindowShard(spec, ["a"], shards=1, resume=None)
    raw = session_events([("u", 0), ("u", 4_000), ("u", 50_000)]).drop("watermark")
    shard.on_batch([ShardUpdate("a", raw.select("ts", "user_id", "quantity"), 0)])
    out, _ = shard.on_batch([ShardUpdate("a", raw.clear().select("ts", "user_id", "quantity"), 30_000)])
    assert out[0].rows.select("window_start", "window_end", "len").rows() == [(0, 14_000, 2)]
    assert seen[0]["ts"].to_list() == [0, 4_000]
    assert pl.concat(shard.snapshot().open)["ts"].to_list() == [50_000]  # only the open session's events stay


# -- idle partitions --------------------------------------------------------------------

def test_an_idle_partition_stops_holding_windows_back_until_it_speaks_again():
    shard = WindowShard(COUNT, ["a", "b"], shards=1, resume=None)
    out, _ = shard.on_batch([update("a", 3 * MINUTE, [(0, "x", 1), (MINUTE, "x", 1)])])
    assert rows_of(out) == 0  # b has said nothing
    out, _ = shard.on_batch([ShardUpdate("b", partials([]), BEGINNING_OF_TIME, idle=True)])
    assert rows_of(out) == 2 and out[0].closed_until == 3 * MINUTE
    out, _ = shard.on_batch([update("b", 4 * MINUTE - 1, [(3 * MINUTE, "y", 1)]), update("a", 10 * MINUTE)])
    assert rows_of(out) == 0  # b is back and holds [3m, 4m) open again


def test_rows_reaching_a_window_closed_while_their_partition_was_idle_are_counted_not_merged():
    shard = WindowShard(COUNT, ["a", "b"], shards=1, resume=None)
    shard.on_batch([update("a", 3 * MINUTE, [(0, "x", 1)]), ShardUpdate("b", partials([]), 0, idle=True)])
    # Windows up to 3m closed while b was idle; b comes back with an event of [0, 1m).
    out, _ = shard.on_batch([update("b", 3 * MINUTE + 5, [(0, "x", 5), (3 * MINUTE, "x", 1)])])
    assert rows_of(out) == 0
    # one row (of one event) for window 0, too late to merge, reported as of the shard's progress (3m)
    assert out[0].dropped.rows() == [(0, 1, 3 * MINUTE)]
    final, _ = shard.on_eof()
    assert sums(final[0].rows).rows() == [(3 * MINUTE, "x", 1)]


def test_when_every_partition_is_idle_windows_close_up_to_the_newest_watermark():
    shard = WindowShard(COUNT, ["a", "b"], shards=1, resume=None)
    shard.on_batch([update("a", 2 * MINUTE, [(0, "x", 1)]), update("b", MINUTE // 2)])
    out, _ = shard.on_batch([ShardUpdate("a", partials([]), 2 * MINUTE, idle=True),
                             ShardUpdate("b", partials([]), MINUTE // 2, idle=True)])
    assert out[0].closed_until == 2 * MINUTE


# -- deduplication ------------------------------------------------------------------------

def stamped_ids(ids: list[str | None], ts: list[int], lateness: int = 0) -> pl.DataFrame:
    stamped, _ = stamp(pl.DataFrame({"event_id": ids, "ts": ts}, schema={"event_id": pl.String, "ts": pl.Int64}),
                       None, lateness)
    return stamped


def test_the_first_occurrence_of_an_id_wins_and_ids_are_remembered_across_batches():
    logic = PartitionWatermark(lateness_ms=0, dedup_horizon_ms=60_000, resume=None)
    frame = pl.DataFrame({"event_id": ["a", "b", "a", None, None], "ts": [1, 2, 3, 4, 4]})
    (first,), _ = logic.on_batch([EventBatch("p", frame, 5)])
    assert first.events["ts"].to_list() == [1, 2, 4, 4] and first.duplicates["ts"].to_list() == [3]
    (second,), _ = logic.on_batch([EventBatch("p", frame.slice(1, 1), 1)])
    assert second.events.height == 0 and second.duplicates["event_id"].to_list() == ["b"]


def test_dedup_memory_is_bounded_by_the_horizon_of_event_time():
    logic = PartitionWatermark(lateness_ms=0, dedup_horizon_ms=10_000, resume=None)
    for start in range(0, 1_000_000, 1_000):
        ids = [f"e{start + i}" for i in range(10)]
        logic.on_batch([EventBatch("p", pl.DataFrame({"event_id": ids, "ts": [start + i for i in range(10)]}), 10)])
    assert logic.clock.seen is not None and logic.clock.seen.size <= 2 * 11 * 10  # within two horizons
    # An id older than the horizon is no longer a duplicate (and would be late anyway).
    (again,), _ = logic.on_batch([EventBatch("p", pl.DataFrame({"event_id": ["e0"], "ts": [0]}), 1)])
    assert again.events.height == 1


def test_an_id_is_a_duplicate_only_within_the_horizon_of_the_newest_time_before_it():
    frame = pl.DataFrame({"event_id": ["x", "y", "x"], "ts": [0, 50_000, 100]})
    kept_all = PartitionWatermark(0, 40_000, None).on_batch([EventBatch("p", frame, 3)])[0][0]
    assert kept_all.events.height == 3  # x at 0 is 50s behind y: outside a 40s horizon
    dropped = PartitionWatermark(0, 60_000, None).on_batch([EventBatch("p", frame, 3)])[0][0]
    assert dropped.duplicates["ts"].to_list() == [100]


def test_dead_letters_before_a_partitions_first_event_are_counted_with_it():
    logic = PartitionWatermark(lateness_ms=0, dedup_horizon_ms=None, resume=None)
    empty = pl.DataFrame(schema={"ts": pl.Int64})
    (first,), _ = logic.on_batch([EventBatch("p", empty, records=2, dead_letters_at=(0, 0))])
    assert first.dead_letters == 0 and first.stream_time is None
    (second,), _ = logic.on_batch([EventBatch("p", pl.DataFrame({"ts": [70_000]}), records=2, dead_letters_at=(1,))])
    assert (second.dead_letters, second.stream_time) == (3, 70_000)
    assert second.dead_letter_times == ((70_000, 70_000),) * 3  # at the first event, with the watermark then


# -- quality ---------------------------------------------------------------------------------


def test_quality_rows_count_each_window_once_at_close_and_report_later_news_after():
    gather = WindowGather(COUNT, shards=1, resume=None)
    news = pl.DataFrame({"window_start": [0], "as_of": [MINUTE], "late": [2], "duplicates": [1], "dead_letters": [0]})
    rows = partials([(0, "a", 5), (0, "b", 1)])
    out, _ = gather.on_batch([("closed", SHARDS_1, ClosedWindows(rows, MINUTE, 50_000, news=news))])
    # Window 0's results go out at once; its report as of 1m waits until no shard can still add to it.
    assert [type(item) for item in out] == [ClosedWindows]
    out, _ = gather.on_batch([("closed", SHARDS_1, ClosedWindows(partials([]), 2 * MINUTE, 2 * MINUTE))])
    (quality,) = out
    assert quality.rows() == [(0, MINUTE, "at_close", MINUTE, 2, 2, 1, 0, 0)]
    assert quality.columns == list(QUALITY_SCHEMA)
    later = news.with_columns(pl.lit(3 * MINUTE).alias("as_of"), pl.lit(0).alias("duplicates"))
    out, _ = gather.on_batch([("closed", SHARDS_1, ClosedWindows(partials([]), 3 * MINUTE, 3 * MINUTE, news=later))])
    assert out == []
    out, _ = gather.on_batch([("closed", SHARDS_1, ClosedWindows(partials([]), 4 * MINUTE, 4 * MINUTE))])
    assert out[0].select("window_start", "report", "as_of", "events", "late", "duplicates").rows() == [
        (0, "after_close", 3 * MINUTE, 0, 2, 0)
    ]


SHARDS_1 = balanced_keys(1)[0]


# -- bounded state ----------------------------------------------------------------------------


def test_state_is_one_partial_aggregate_per_open_window_and_key_and_closed_windows_leave_it():
    events = pl.DataFrame(
        {"ts": [i * 17 % (3 * MINUTE) for i in range(10_000)], "product_id": [f"p{i % 5}" for i in range(10_000)],
         "quantity": [1] * 10_000, "watermark": [BEGINNING_OF_TIME] * 10_000}
    )
    (key, update_), = route(StampedBatch("a", events, watermark=0), COUNT, shards=1).updates
    shard = WindowShard(COUNT, ["a"], shards=1, resume=None)
    shard.on_batch([update_])
    held = pl.concat(shard.snapshot().open)
    assert held.height == 3 * 5  # not 10,000 events
    assert held["events"].sum() == 10_000
    shard.on_batch([update("a", 2 * MINUTE)])
    assert pl.concat(shard.snapshot().open)["window_start"].unique().to_list() == [2 * MINUTE]  # two windows gone
    gather = WindowGather(COUNT, shards=1, resume=None)
    gather.on_batch([("closed", key, ClosedWindows(held, 2 * MINUTE))])
    assert pl.concat(gather.snapshot().pending)["window_start"].unique().to_list() == [2 * MINUTE]
