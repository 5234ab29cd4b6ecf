"""Every window kind, streamed through the engine, equals a batch recomputation.

For random events over 1-3 partitions (with duplicates and malformed
records), random batch splits, random partition interleavings, random
lateness, shard counts and 1, 2 or 3 workers, a windowed aggregate and a
windowed function over tumbling, sliding and session windows give exactly
the rows, late records and quality counts of :mod:`tests.window_oracle`.
"""

from __future__ import annotations

import json
from collections import Counter

import polars as pl
from bytewax.testing import TestingSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.engine.aggregate import Max, Min, Sum, WindowedAggregate, WindowedFunction
from flows.engine.testing import batches, interleave, run, windowed_flow
from flows.engine.windows import SessionWindow, SlidingWindow, TumblingWindow
from tests import window_oracle as oracle

BASE_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
MALFORMED = [b"{not json", b'{"event_type":"view","ts":"never","user_id":1,"product_id":"p1"}', b"\xff"]


@st.composite
def partition_events(draw, name: str) -> list[dict]:
    """Events of one partition: time drifts forward with bounded disorder; some are retried."""
    clock = BASE_MS + draw(st.integers(0, 30)) * 1000
    events: list[dict] = []
    for index in range(draw(st.integers(0, 30))):
        if events and draw(st.integers(0, 9)) == 0:  # a retry: the same event again, later
            events.append(dict(draw(st.sampled_from(events))))
            continue
        clock += draw(st.sampled_from([0, 1_000, 3_000, 7_000, 20_000, 333]))
        ts = clock - draw(st.sampled_from([0, 0, 0, 2_000, 9_000, 30_000, 90_000]))
        events.append(
            {
                "event_id": f"{name}-{index}" if draw(st.integers(0, 7)) else None,
                "event_type": draw(st.sampled_from(["view", "view", "add_to_cart", "purchase"])),
                "ts": ts,
                "user_id": draw(st.sampled_from(["u1", "u2", "u3"])),
                "product_id": draw(st.sampled_from(["p1", "p2", "p3"])),
                "quantity": draw(st.integers(1, 3)),
            }
        )
    return events


WINDOWS = st.one_of(
    st.sampled_from([10_000, 30_000, 60_000]).map(TumblingWindow),
    st.sampled_from([(30_000, 10_000), (60_000, 15_000), (60_000, 30_000), (20_000, 20_000)]).map(
        lambda sizes: SlidingWindow(*sizes)
    ),
    st.sampled_from([5_000, 20_000, 60_000]).map(SessionWindow),
)


@st.composite
def scenario(draw):
    names = [f"part-{i}" for i in range(draw(st.integers(1, 3)))]
    events = {name: draw(partition_events(name)) for name in names}
    per_partition, malformed, dead_letters = {}, Counter(), {}
    for name, evs in events.items():
        records = [json.dumps({k: v for k, v in e.items() if v is not None}).encode() for e in evs]
        good = [True] * len(records)
        for bad in draw(st.lists(st.sampled_from(MALFORMED), max_size=2)):
            at = draw(st.integers(0, len(records)))
            records.insert(at, bad)
            good.insert(at, False)
            malformed[name] += 1
        dead_letters[name] = [sum(good[:i]) for i, ok in enumerate(good) if not ok]  # events before each
        sizes = draw(st.lists(st.integers(1, 9), max_size=8))
        per_partition[name] = batches(records, partition=name, sizes=sizes, as_lines=draw(st.booleans()),
                                      last=draw(st.booleans()))
    order = draw(st.permutations([n for n, items in per_partition.items() for _ in items]))
    window = draw(WINDOWS)
    lateness = draw(st.sampled_from([0, 5_000, 30_000, 120_000]))
    extent = window.gap_ms if isinstance(window, SessionWindow) else window.size_ms
    return {
        "events": events,
        "malformed": malformed,
        "dead_letters": dead_letters,
        "items": interleave(per_partition, order),
        "window": window,
        "lateness": lateness,
        "horizon": draw(st.sampled_from([None, lateness + extent])),
        "shards": draw(st.integers(1, 4)),
        "source_batch": draw(st.integers(1, 3)),
        "function": draw(st.booleans()),
    }


def aggregate_spec(window) -> WindowedAggregate:
    return WindowedAggregate(
        "by_user",
        ("user_id",),
        window,
        {
            "purchases": Sum(pl.col("event_type") == "purchase"),
            "units": Sum(pl.col("quantity")),
            "first_ts": Min(pl.col("ts")),
            "last_seen": Max(pl.col("ts")),
        },
    )


def distinct_users(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by("window_start", "product_id").agg(
        pl.col("user_id").n_unique().alias("users"), pl.col("ts").sort().alias("times")
    )


def function_spec(window) -> WindowedFunction:
    return WindowedFunction("by_product", ("product_id",), window, ("user_id",), distinct_users)


def expected_rows(case: dict) -> tuple[list[tuple], oracle.Expected]:
    window = case["window"]
    keys = ("product_id",) if case["function"] else ("user_id",)
    stamped = oracle.stamp(case["events"], case["lateness"], case["horizon"])
    if isinstance(window, SessionWindow):
        expected = oracle.sessions(stamped, keys, window.gap_ms)
    else:
        expected = oracle.fixed_windows(stamped, keys, window.size_ms, window.slide_ms)
    rows = []
    for (start, key), members in expected.members.items():
        times = sorted(e["ts"] for e in members)
        if case["function"]:
            rows.append((start, key, len({e["user_id"] for e in members}), times))
        else:
            purchases = sum(e["event_type"] == "purchase" for e in members)
            units = sum(e["quantity"] for e in members)
            rows.append((start, key, purchases, units, times[0], times[-1], len(members)))
    return sorted(rows), expected


def run_case(case: dict, workers: int):
    spec = function_spec(case["window"]) if case["function"] else aggregate_spec(case["window"])
    flow, captured = windowed_flow(
        spec,
        TestingSource(case["items"], batch_size=case["source_batch"]),
        list(case["events"]),
        lateness_ms=case["lateness"],
        dedup_horizon_ms=case["horizon"],
        shards=case["shards"],
        fields=("event_id",),
    )
    run(flow, workers=workers)
    return captured


def check(case: dict, captured) -> None:
    want, expected = expected_rows(case)
    results = captured.frame("results")
    if case["function"]:
        columns = ["window_start", "product_id", "users", "times"]
    else:
        columns = ["window_start", "user_id", "purchases", "units", "first_ts", "last_seen", "events"]
    got = sorted(results.select(columns).rows()) if results.height else []
    assert got == want

    if isinstance(case["window"], SessionWindow) and not case["function"] and results.height:
        spans = results.select((pl.col("window_end") - pl.col("last_ts") == case["window"].gap_ms).all()).item()
        assert spans and results["last_ts"].to_list() == results["last_seen"].to_list()

    late = captured.frame("late")
    got_late = list(zip(late["event_id"].to_list(), map(tuple, late["missed"].to_list()))) if late.height else []
    assert sorted(got_late, key=_late_order) == sorted(expected.late, key=_late_order)
    assert captured.frame("dead_letters").height == sum(case["malformed"].values())

    if not isinstance(case["window"], SessionWindow):
        check_quality(case, captured)


def _late_order(record: tuple) -> tuple:
    return (record[0] or "", record[1])  # events without an id sort first


def check_quality(case: dict, captured) -> None:
    """The quality rows are exactly the oracle's reports: per window and as_of, on-time, late, duplicate
    events and dead letters."""
    window, lateness = case["window"], case["lateness"]
    stamped = oracle.stamp(case["events"], lateness, case["horizon"])
    want = oracle.quality(stamped, case["dead_letters"], case["events"], window.size_ms, window.slide_ms, lateness)
    quality = captured.frame("quality")
    got = {}
    for row in quality.iter_rows(named=True) if quality.height else ():
        key = (row["window_start"], row["as_of"])
        assert key not in got, f"two quality rows for window {key[0]} as of {key[1]}"
        assert row["report"] == ("at_close" if row["as_of"] == row["window_end"] else "after_close")
        assert row["dropped_after_idle"] == 0
        got[key] = [row["events"], row["late"], row["duplicates"], row["dead_letters"]]
    assert got == want


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=150, deadline=None, suppress_health_check=HEALTH)
@given(scenario())
def test_one_worker_equals_batch_recomputation(case):
    check(case, run_case(case, workers=1))


@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)
@given(scenario(), st.sampled_from([2, 3]))
def test_several_workers_equal_batch_recomputation(case, workers):
    check(case, run_case(case, workers=workers))
