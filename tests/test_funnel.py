"""The ordered conversion funnel: hand-made cases, the engine against an oracle, REES46.

Unit tests call the two steps directly on frame literals. The property
tests stream random events through the whole engine (random batches,
partition interleavings, lateness, shards, 1 and 2 workers) and compare
with a plain-Python funnel over the events :mod:`tests.window_oracle` says
are on time.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from bytewax.testing import TestingSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows.engine.analytics.funnel import FUNNEL, STAGE_SCHEMA, funnel_function
from flows.engine.analytics.funnel import funnel_rows as typed_funnel_rows
from flows.engine.decode import decode_batch
from flows.engine.sources import FileSource, source_partitions
from flows.engine.testing import batches, drain, interleave, run, windowed_flow
from flows.engine.windows import TumblingWindow
from tests import window_oracle

HOUR = 3_600_000
BASE_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
DATA = Path(__file__).resolve().parent / "data" / "rees46-2019-oct-sample.csv"


OUTPUT_SCHEMA = FUNNEL.rendered_schema


def funnel_rows(stages: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """The funnel's rows as JSON Lines show them (ISO-8601 window times)."""
    return FUNNEL.to_json(typed_funnel_rows(stages, window_ms))


def funnel(*events: tuple, window_ms: int = HOUR) -> pl.DataFrame:
    """Output rows of (seconds after BASE_MS, user, event type, category) events, all on time."""
    frame = pl.DataFrame(
        [(BASE_MS + int(at * 1000), user, kind, category) for at, user, kind, category in events],
        schema={"ts": pl.Int64, "user_id": pl.String, "event_type": pl.String, "category": pl.String},
        orient="row",
    )
    window = TumblingWindow(window_ms)
    return funnel_rows(funnel_function(window).function(window.assign(frame)), window_ms)


def counts(rows: pl.DataFrame) -> list[tuple]:
    return rows.select("category", "viewed", "carted", "purchased").rows()


# -- hand-made cases ---------------------------------------------------------------------


def test_a_full_funnel_gives_every_column():
    rows = funnel((0, "u1", "view", "a"), (10, "u1", "add_to_cart", "a"), (75, "u1", "purchase", "a"),
                  (5, "u2", "view", "a"), (6, "u2", "add_to_cart", "a"), (7, "u3", "view", "a"))
    expected = pl.DataFrame(
        [
            ("2024-03-01T08:00:00Z", "2024-03-01T09:00:00Z", "*", 3, 2, 1, 2 / 3, 0.5, 1 / 3, 75.0),
            ("2024-03-01T08:00:00Z", "2024-03-01T09:00:00Z", "a", 3, 2, 1, 2 / 3, 0.5, 1 / 3, 75.0),
        ],
        schema=OUTPUT_SCHEMA,
        orient="row",
    )
    assert_frame_equal(rows, expected)


def test_a_cart_before_the_first_view_does_not_count():
    rows = funnel((0, "u1", "add_to_cart", "a"), (5, "u1", "view", "a"), (9, "u1", "purchase", "a"))
    assert counts(rows) == [("*", 1, 0, 0), ("a", 1, 0, 0)]
    assert rows["cart_to_purchase"].to_list() == [None, None]
    assert rows["median_time_to_purchase_s"].to_list() == [None, None]


def test_a_purchase_before_the_cart_does_not_count_but_a_later_one_does():
    early = funnel((0, "u1", "view", "a"), (5, "u1", "purchase", "a"), (9, "u1", "add_to_cart", "a"))
    assert counts(early) == [("*", 1, 1, 0), ("a", 1, 1, 0)]
    later = funnel((0, "u1", "view", "a"), (5, "u1", "purchase", "a"), (9, "u1", "add_to_cart", "a"),
                   (20, "u1", "purchase", "a"))
    assert counts(later) == [("*", 1, 1, 1), ("a", 1, 1, 1)]
    assert later["median_time_to_purchase_s"].to_list() == [20.0, 20.0]


def test_the_first_view_and_cart_start_the_funnel_earliest_first():
    rows = funnel((10, "u1", "view", "a"), (0, "u1", "view", "a"), (30, "u1", "add_to_cart", "a"),
                  (20, "u1", "add_to_cart", "a"), (40, "u1", "purchase", "a"), (50, "u1", "purchase", "a"))
    assert rows["median_time_to_purchase_s"].to_list() == [40.0, 40.0]  # first view to first purchase


def test_equal_timestamps_count_as_in_order():
    rows = funnel((3, "u1", "purchase", "a"), (3, "u1", "add_to_cart", "a"), (3, "u1", "view", "a"))
    assert counts(rows) == [("*", 1, 1, 1), ("a", 1, 1, 1)]
    assert rows["median_time_to_purchase_s"].to_list() == [0.0, 0.0]


def test_remove_from_cart_is_ignored():
    rows = funnel((0, "u1", "view", "a"), (1, "u1", "add_to_cart", "a"), (2, "u1", "remove_from_cart", "a"),
                  (3, "u1", "purchase", "a"), (4, "u2", "remove_from_cart", "a"))
    assert counts(rows) == [("*", 1, 1, 1), ("a", 1, 1, 1)]


def test_a_user_in_two_categories_counts_in_each():
    rows = funnel((0, "u1", "view", "a"), (1, "u1", "view", "b"), (2, "u1", "add_to_cart", "b"),
                  (4, "u1", "purchase", "b"))
    assert counts(rows) == [("*", 1, 1, 1), ("a", 1, 0, 0), ("b", 1, 1, 1)]
    assert rows["median_time_to_purchase_s"].to_list() == [4.0, None, 3.0]


def test_events_without_a_category_count_only_in_the_all_categories_row():
    rows = funnel((0, "u1", "view", None), (1, "u1", "add_to_cart", None), (2, "u2", "view", "a"))
    assert counts(rows) == [("*", 2, 1, 0), ("a", 1, 0, 0)]


def test_the_all_categories_funnel_follows_a_user_across_categories():
    rows = funnel((0, "u1", "view", "a"), (1, "u1", "add_to_cart", "b"), (2, "u1", "purchase", "c"))
    assert counts(rows) == [("*", 1, 1, 1), ("a", 1, 0, 0)]  # b and c had no viewer: no row


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two():
    rows = funnel(*[event for user, wait in [("u1", 1.0), ("u2", 2.5), ("u3", 4.001), ("u4", 60)]
                    for event in [(0, user, "view", "a"), (0, user, "add_to_cart", "a"),
                                  (wait, user, "purchase", "a")]])
    assert rows["median_time_to_purchase_s"].to_list() == [3.2505, 3.2505]


def test_windows_are_counted_apart_at_their_boundary():
    rows = funnel((59.999, "u1", "view", "a"), (60, "u1", "add_to_cart", "a"), (60, "u2", "view", "a"),
                  (119.999, "u2", "purchase", "a"), window_ms=60_000)
    assert rows.select("window_start", "category", "viewed", "carted", "purchased").rows() == [
        ("2024-03-01T08:00:00Z", "*", 1, 0, 0),
        ("2024-03-01T08:00:00Z", "a", 1, 0, 0),
        ("2024-03-01T08:01:00Z", "*", 1, 0, 0),
        ("2024-03-01T08:01:00Z", "a", 1, 0, 0),
    ]
    assert rows["window_end"].to_list()[-1] == "2024-03-01T08:02:00Z"


def test_stages_have_one_row_per_window_category_and_viewer():
    window = TumblingWindow(HOUR)
    events = window.assign(pl.DataFrame({"ts": [5, 1, 9, 2], "user_id": ["u1", "u1", "u1", "u2"],
                                         "event_type": ["view", "view", "add_to_cart", "purchase"],
                                         "category": ["a", None, "a", "a"]}))
    stages = funnel_function(window).function(events).sort("category", "user_id")
    expected = pl.DataFrame([(0, "*", "u1", 1, 9, None), (0, "a", "u1", 5, 9, None)],
                            schema=STAGE_SCHEMA, orient="row")
    assert_frame_equal(stages, expected)


def test_empty_input_gives_the_output_schema():
    assert funnel().schema == OUTPUT_SCHEMA
    assert funnel_rows(pl.DataFrame(), HOUR).schema == OUTPUT_SCHEMA
    assert funnel((0, "u1", "purchase", "a")).schema == OUTPUT_SCHEMA


# -- the oracle --------------------------------------------------------------------------

FUNNEL_STEPS = ("view", "add_to_cart", "purchase")
STAGE_ORDER = {kind: rank for rank, kind in enumerate(FUNNEL_STEPS)}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_funnel(events: list[dict]) -> tuple[int, int | None, int | None] | None:
    """(v, c, p) of one user's events, walked in time order (equal times: view, cart, purchase)."""
    reached: list[int] = []
    steps = sorted((e for e in events if e["event_type"] in STAGE_ORDER),
                   key=lambda e: (e["ts"], STAGE_ORDER[e["event_type"]]))
    for event in steps:
        if len(reached) < 3 and STAGE_ORDER[event["event_type"]] == len(reached):
            reached.append(event["ts"])
    if not reached:
        return None
    viewed, carted, purchased = reached + [None] * (3 - len(reached))
    return viewed, carted, purchased


def oracle_rows(per_partition: dict, window_ms: int, lateness_ms: int, horizon_ms: int | None) -> list[tuple]:
    """The output rows, from each user's on-time events per window (as :mod:`tests.window_oracle` decides)."""
    stamped = window_oracle.stamp(per_partition, lateness_ms, horizon_ms)
    on_time = window_oracle.fixed_windows(stamped, ("user_id",), window_ms, window_ms).members
    funnels: dict[tuple, list[tuple]] = defaultdict(list)
    for (start, _user), events in on_time.items():
        categories = {e["category"] for e in events if e["category"] is not None}
        for category in ["*", *categories]:
            stages = user_funnel([e for e in events if category in ("*", e["category"])])
            if stages is not None:
                funnels[(start, category)].append(stages)
    rows = []
    for (start, category), users in sorted(funnels.items()):
        viewed = len(users)
        carted = sum(c is not None for _, c, _ in users)
        purchased = sum(p is not None for _, _, p in users)
        waits = [p - v for v, _, p in users if p is not None]
        rows.append((_iso(start), _iso(start + window_ms), category, viewed, carted, purchased,
                     carted / viewed, purchased / carted if carted else None, purchased / viewed,
                     statistics.median(waits) / 1000 if waits else None))
    return rows


# -- the engine against the oracle -------------------------------------------------------


@st.composite
def partition_events(draw, name: str) -> list[dict]:
    """Events of one partition: time drifts forward with bounded disorder; some are retried.

    Most events take their user's next funnel step (view, cart, purchase, again),
    so windows hold several complete funnels; the others are of any type.
    """
    clock = BASE_MS + draw(st.integers(0, 30)) * 1000
    events: list[dict] = []
    steps: dict[str, int] = defaultdict(int)
    for index in range(draw(st.integers(0, 40))):
        if events and draw(st.integers(0, 14)) == 0:  # a retry: the same event again, later
            events.append(dict(draw(st.sampled_from(events))))
            continue
        clock += draw(st.sampled_from([0, 0, 1, 500, 1_000, 3_000, 7_000, 20_000]))
        user = draw(st.sampled_from(["u1", "u2", "u3", "u4", "u5", "u6"]))
        if draw(st.integers(0, 2)):
            kind = FUNNEL_STEPS[steps[user] % 3]
            steps[user] += 1
        else:
            kind = draw(st.sampled_from([*FUNNEL_STEPS, "remove_from_cart"]))
        events.append(
            {
                "event_id": f"{name}-{index}",
                "event_type": kind,
                "ts": clock - draw(st.sampled_from([0, 0, 0, 1, 2_000, 9_000, 30_000, 90_000])),
                "user_id": user,
                "product_id": "p1",
                "category": draw(st.sampled_from(["a", "b", None])),
            }
        )
    return events


@st.composite
def scenario(draw) -> dict:
    names = [f"part-{i}" for i in range(draw(st.integers(1, 3)))]
    events = {name: draw(partition_events(name)) for name in names}
    per_partition = {}
    for name, evs in events.items():
        records = [json.dumps({k: v for k, v in e.items() if v is not None}).encode() for e in evs]
        per_partition[name] = batches(records, partition=name, sizes=draw(st.lists(st.integers(1, 9), max_size=8)),
                                      as_lines=draw(st.booleans()), last=draw(st.booleans()))
    order = draw(st.permutations([n for n, items in per_partition.items() for _ in items]))
    window_ms = draw(st.sampled_from([10_000, 30_000, 120_000]))
    lateness = draw(st.sampled_from([0, 5_000, 30_000, 120_000]))
    return {
        "events": events,
        "items": interleave(per_partition, order),
        "window_ms": window_ms,
        "lateness": lateness,
        "horizon": draw(st.sampled_from([None, lateness + window_ms])),
        "shards": draw(st.integers(1, 3)),
        "source_batch": draw(st.integers(1, 3)),
    }


def streamed_rows(case: dict, workers: int) -> pl.DataFrame:
    flow, captured = windowed_flow(
        funnel_function(TumblingWindow(case["window_ms"])),
        TestingSource(case["items"], batch_size=case["source_batch"]),
        list(case["events"]),
        lateness_ms=case["lateness"],
        dedup_horizon_ms=case["horizon"],
        shards=case["shards"],
        fields=("event_id", "category"),
    )
    run(flow, workers=workers)
    return funnel_rows(captured.frame("results"), case["window_ms"])


def check(case: dict, rows: pl.DataFrame) -> None:
    assert rows.schema == OUTPUT_SCHEMA
    assert rows.rows() == oracle_rows(case["events"], case["window_ms"], case["lateness"], case["horizon"])


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=100, deadline=None, suppress_health_check=HEALTH)
@given(scenario())
def test_one_worker_equals_the_oracle(case):
    check(case, streamed_rows(case, workers=1))


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(scenario())
def test_two_workers_equal_the_oracle(case):
    check(case, streamed_rows(case, workers=2))


# -- the REES46 sample -------------------------------------------------------------------


def rees46_events() -> list[dict]:
    source = FileSource([DATA], batch_bytes=8192)
    frames = [decode_batch(raw, ("category",)).events for raw in drain(source.build_part("read", str(DATA), None))]
    events = pl.concat(frames).select("ts", "user_id", "event_type", "category").with_columns(
        pl.col("event_type").cast(pl.String), pl.lit(None, pl.String).alias("event_id")
    )
    return events.to_dicts()


@pytest.fixture(scope="module")
def rees46() -> list[dict]:
    return rees46_events()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_rees46_sample_funnel_equals_the_oracle(rees46, workers):
    source = FileSource([DATA], batch_bytes=8192)
    flow, captured = windowed_flow(funnel_function(TumblingWindow(HOUR)), source, source_partitions(source),
                                   lateness_ms=30_000, fields=("category",))
    run(flow, workers=workers)
    rows = funnel_rows(captured.frame("results"), HOUR)
    assert len(rees46) == 1000 and captured.frame("dead_letters").height == 0
    assert rows.rows() == oracle_rows({str(DATA): rees46}, HOUR, 30_000, None)

    star = rows.filter(pl.col("category") == "*")
    assert star.height == 1 and star["viewed"].item() > 0  # one hour holds the whole sample
    sane = rows.select(
        (pl.col("viewed") >= pl.col("carted")).all().alias("viewed >= carted"),
        (pl.col("carted") >= pl.col("purchased")).all().alias("carted >= purchased"),
        (pl.col("viewed") <= star["viewed"].item()).all().alias("no category beats *"),
        *(pl.col(rate).fill_null(0.0).is_between(0.0, 1.0).all().alias(f"{rate} in [0, 1]")
          for rate in ("view_to_cart", "cart_to_purchase", "conversion")),
        (pl.col("median_time_to_purchase_s").fill_null(0.0) >= 0).all().alias("waits >= 0"),
    )
    assert all(sane.row(0)), sane.row(0, named=True)
