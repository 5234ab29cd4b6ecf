"""No single event time can poison a partition's watermark or stall the flow.

The screening rules (:mod:`flows.engine.screen`) against a plain per-event
reference (:func:`tests.window_oracle.screen`) under random batchings, and
the cases that used to break a run: an event an hour (or 76 years) in the
future mid-stream, a 1970 event first, a year-2100 event first, a gap of
years between real events, and sums far beyond 64 bits.
"""

from __future__ import annotations

import time

import polars as pl
import pytest
from bytewax.testing import TestingSource
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import dmp
from flows.engine.config import Settings
from flows.engine.screen import Screen, ScreenState
from flows.engine.testing import CapturedOutputs, batches, run
from tests import window_oracle

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_709_280_000_000  # 2024-03-01T08:00:00Z
YEAR_2100 = 4_102_444_800_000


# -- the rules against a reference -------------------------------------------------------


@st.composite
def partition_times(draw: st.DrawFn) -> list[int]:
    """Event times of one partition: mostly close together, with jumps ahead, back, far and early."""
    times, clock = [], T0 + draw(st.integers(-HOUR, HOUR))
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["near"] * 6 + ["jump", "back", "far", "early", "same"]))
        if kind == "near":
            clock += draw(st.integers(-2 * MINUTE, 3 * MINUTE))
            times.append(clock)
        elif kind == "jump":  # the stream moves on (a quiet hour)
            clock += draw(st.integers(31 * MINUTE, 5 * HOUR))
            times.append(clock)
        elif kind == "back":
            times.append(clock - draw(st.integers(0, HOUR)))
        elif kind == "far":  # a lone event from the future
            times.append(clock + draw(st.integers(31 * MINUTE, 80 * 365 * 24 * HOUR)))
        elif kind == "early":
            times.append(draw(st.integers(0, 946_684_800_000 - 1)))
        else:
            times.append(clock)
    return times


@settings(max_examples=300, deadline=None)
@given(partition_times(), st.lists(st.integers(1, 7), max_size=12), st.sampled_from([None, 30 * MINUTE, HOUR]))
def test_screening_is_the_per_event_rule_whatever_the_batching(times, sizes, tolerance):
    earliest = 946_684_800_000  # 2000-01-01
    rules = Screen(tolerance_ms=tolerance, earliest_ms=earliest)
    frame = pl.DataFrame({"ts": times, "seq": list(range(len(times)))}, schema={"ts": pl.Int64, "seq": pl.Int64})
    state, accepted, quarantined, start = ScreenState(), [], [], 0
    cuts = [*sizes, len(times)]
    for size in cuts:
        part = frame.slice(start, size)
        start += part.height
        ended = start >= frame.height and size == cuts[-1]
        kept, bad, state = rules.screen(part, state, ended=ended)
        accepted += kept["seq"].to_list()
        quarantined += bad["seq"].to_list()
        if ended:
            break
    events = [{"ts": t, "seq": i} for i, t in enumerate(times)]
    want_kept, want_bad = window_oracle.screen(events, tolerance, earliest)
    assert accepted == [e["seq"] for e in want_kept]
    assert sorted(quarantined) == sorted(e["seq"] for e in want_bad)
    assert state.held is None


def test_live_events_far_ahead_of_the_wall_clock_are_quarantined():
    rules = Screen(tolerance_ms=None, clock_ms=HOUR, clock=lambda: T0 / 1000)
    kept, bad, _ = rules.screen(pl.DataFrame({"ts": [T0, T0 + 59 * MINUTE, T0 + 61 * MINUTE]}), ScreenState(),
                                ended=True)
    assert kept["ts"].to_list() == [T0, T0 + 59 * MINUTE]
    assert bad.select("ts", "reason").rows() == [(T0 + 61 * MINUTE, "more than 1h ahead of the wall clock")]


def test_only_live_sources_are_held_to_the_wall_clock():
    assert Settings().screen.clock_ms is None  # the simulator, as fast as it goes: a replay
    assert Settings(sim=Settings().sim.__class__(speed=1.0)).screen.clock_ms == HOUR


# -- whole runs ------------------------------------------------------------------------------


def shop(count: int, *, step_ms: int = 1_000, start: int = T0) -> list[dict]:
    """``count`` events one ``step_ms`` apart: views, and every tenth a purchase."""
    return [
        {"event_id": f"e{i}", "event_type": "purchase" if i % 10 == 0 else "view", "ts": start + i * step_ms,
         "user_id": i % 37, "product_id": f"p{i % 11}", "price": 12.5}
        for i in range(count)
    ]


def run_flow(events: list[dict], **changes: object) -> CapturedOutputs:
    config = Settings(**{"monitor_interval_ms": 0, **changes})
    captured = CapturedOutputs()
    run(dmp.build(config, source=TestingSource(batches(events, size=500)), outputs=captured.outputs()))
    return captured


@pytest.fixture(scope="module")
def clean() -> CapturedOutputs:
    return run_flow(shop(3_000), analytics=("trends", "sessions"))


def with_event(events: list[dict], at: int, ts: int) -> list[dict]:
    bad = {"event_id": "bad", "event_type": "purchase", "ts": ts, "user_id": 999, "product_id": "px", "price": 1.0}
    return [*events[:at], bad, *events[at:]]


@pytest.mark.parametrize("ahead", [HOUR, YEAR_2100 - T0])
def test_one_event_from_the_future_does_not_make_the_rest_late(clean, ahead):
    captured = run_flow(with_event(shop(3_000), 1_200, T0 + 1_200_000 + ahead), analytics=("trends", "sessions"))
    summary = captured.summary
    assert (summary["late"], summary["quarantined"]) == (0, 1)
    assert summary["events"] == clean.summary["events"] + 1 and summary["reconciled"]
    for stream in ("trends", "leaderboard", "sessions"):
        assert captured.sorted_frame(stream).equals(clean.sorted_frame(stream)), stream
    (row,) = captured.frame("quarantine").rows(named=True)
    assert row["event_id"] == "bad" and row["seq"] == 1_200 and "the next event" in row["reason"]


def test_a_far_future_event_does_not_cost_sessions(clean):
    captured = run_flow(with_event(shop(3_000), 1_500, YEAR_2100), analytics=("sessions",))
    assert captured.summary["late"] == 0 and captured.summary["quarantined"] == 1
    assert captured.sorted_frame("sessions").equals(clean.sorted_frame("sessions"))


def test_a_1970_event_first_and_a_year_2100_event_first_are_quarantined(clean):
    for first in (0, YEAR_2100):
        captured = run_flow(with_event(shop(3_000), 0, first), analytics=("trends", "sessions"))
        assert captured.summary["quarantined"] == 1 and captured.summary["late"] == 0, first
        assert captured.sorted_frame("trends").equals(clean.sorted_frame("trends")), first


def test_a_year_9999_event_with_every_analytic_finishes_quickly():
    started = time.monotonic()
    captured = run_flow(with_event(shop(2_000), 1_000, 253_402_300_799_000))
    assert captured.summary["quarantined"] == 1
    assert time.monotonic() - started < 60  # it used to allocate a bucket per minute of the gap


def test_real_events_years_apart_cost_no_step_per_quiet_bucket():
    """A sparse stream really moves on: both bursts count, and the time series skips the silence."""
    events = shop(200) + shop(200, start=T0 + 10 * 365 * 24 * HOUR)
    started = time.monotonic()
    captured = run_flow(events)
    assert captured.summary["quarantined"] == 0 and captured.summary["late"] == 0
    series = captured.frame("timeseries").filter(pl.col("metric") == "orders", pl.col("category") == "*")
    assert series.height < 2 * 4_321  # each burst and its quiet history, not ten years of minutes
    assert time.monotonic() - started < 60


def test_sums_far_beyond_64_bits_never_wrap():
    """20,000 purchases of 999,999 units at 999.99: 2e13 currency units, 2e19 micro-units (above 2^63)."""
    events = [{"event_type": "purchase", "ts": T0 + i, "user_id": 1, "product_id": "p", "price": 999.99,
               "quantity": 999_999} for i in range(20_000)]
    captured = run_flow(events, analytics=("trends", "sessions"))
    expected = 20_000 * 999_999 * 999.99
    for revenue in (captured.typed("trends")["revenue"].sum(), captured.typed("sessions")["revenue"].sum(),
                    captured.summary["revenue"]):
        assert abs(revenue - expected) / expected < 1e-12  # the nearest float to the exact sum, never a wrap
    assert captured.typed("trends")["units"].sum() == 20_000 * 999_999
