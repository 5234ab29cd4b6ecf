"""The simulator's planted traffic anomalies: spikes, drops, one level shift, and their labels."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.config import Settings, SimSettings
from flows.engine.decode import decode_batch
from flows.engine.schema import RawBatch
from flows.engine.sources import SimSource
from flows.engine.sources.simulator import (
    SLICE_MS,
    anomaly_factor,
    generate_slice,
    make_catalog,
    planted_anomalies,
)
from flows.engine.testing import read_source

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
LABELS = pl.Schema({"kind": pl.String, "start_ms": pl.Int64, "end_ms": pl.Int64, "factor": pl.Float64})

# Busy enough for tight ratios, planting off so every session of a slice is an ordinary (Poisson) one.
ON = SimSettings(partitions=2, users=2_000, products=500, events_per_second=50.0, plant=False,
                 straggler_rate=0.0, malformed_rate=0.0, anomalies=True, anomaly_after_ms=30 * MINUTE)
OFF = SimSettings(**{**ON.__dict__, "anomalies": False})
CATALOG = make_catalog(ON.products, ON.seed)


def slice_of(settings: SimSettings, ms: int) -> int:
    return (ms - settings.start_ms) // SLICE_MS


def sessions(settings: SimSettings, slices: range | list[int]) -> int:
    """Sessions starting in the slices, over all partitions (ordinary sessions: the Poisson draws)."""
    return sum(
        generate_slice(settings, CATALOG, partition, index)["session"].n_unique()
        for partition in range(settings.partitions)
        for index in slices
    )


def assert_ratio(on: int, off: int, factor: float, on_units: int = 1, off_units: int = 1) -> None:
    """The rate ratio ``(on / on_units) / (off / off_units)`` is ``factor``, within 4 standard deviations.

    ``on`` and ``off`` are independent Poisson counts (sessions), so the ratio's
    relative standard deviation is about ``sqrt(1/on + 1/off)``.
    """
    ratio = (on / on_units) / (off / off_units)
    sigma = factor * math.sqrt(1 / on + 1 / off)
    assert abs(ratio - factor) < 4 * sigma, (on, off, ratio, sigma)


def labels(settings: SimSettings = ON, until_ms: int | None = None) -> pl.DataFrame:
    return planted_anomalies(settings, settings.start_ms + 2 * DAY if until_ms is None else until_ms)


# -- the labels ------------------------------------------------------------------------------


def test_labels_follow_the_schedule_over_a_simulated_week():
    settings = SimSettings()  # the default: anomalies from 4 days 12 hours on
    week = planted_anomalies(settings, settings.start_ms + 7 * DAY)
    assert week.schema == LABELS
    after = settings.start_ms + 4 * DAY + 12 * HOUR
    # 60 hours of anomalies, one every 5 hours: k = 0 .. 11.
    assert week.height == 12 and week["start_ms"].is_sorted()
    k = np.arange(week.height)
    assert week["kind"].to_list() == ["level_shift" if j == 5 else ("spike", "drop")[j % 2] for j in k]
    jitter = week["start_ms"].to_numpy() - (after + k * 5 * HOUR)
    assert ((jitter >= 0) & (jitter < HOUR) & (jitter % MINUTE == 0)).all()
    assert np.unique(jitter).size > 5  # a jitter, not a constant
    length = (week["end_ms"] - week["start_ms"]).to_list()
    assert length == [0 if j == 5 else (20 * MINUTE, 30 * MINUTE)[j % 2] for j in k]
    assert week["factor"].to_list() == [2.0 if j == 5 else (3.0, 0.1)[j % 2] for j in k]
    # Each spike or drop ends well before the next anomaly starts.
    assert (week["end_ms"].head(-1) < week["start_ms"].tail(-1)).all()


def test_labels_are_whole_slices_from_the_start_even_for_an_odd_delay():
    settings = SimSettings(**{**ON.__dict__, "start_ms": ON.start_ms + 7_777, "anomaly_after_ms": 30 * MINUTE + 1})
    found = labels(settings)
    assert found.height == 10
    for column in ("start_ms", "end_ms"):
        assert ((found[column] - settings.start_ms) % SLICE_MS == 0).all()
    # The delay is rounded up to the next whole minute.
    assert found["start_ms"][0] >= settings.start_ms + 31 * MINUTE


def test_labels_are_those_starting_before_until_and_a_function_of_the_settings():
    found = labels()
    first = found["start_ms"][0]
    assert labels(until_ms=first).height == 0 and labels(until_ms=first + 1).height == 1
    assert labels(until_ms=ON.start_ms - DAY).height == 0
    assert_frame_equal(labels(until_ms=found["start_ms"][4] + 1), found.head(5))
    assert_frame_equal(labels(SimSettings(**{**ON.__dict__, "partitions": 5, "events_per_second": 1.0})), found)
    other = labels(SimSettings(**{**ON.__dict__, "seed": 43}))
    assert other["kind"].to_list() == found["kind"].to_list()
    assert other["start_ms"].to_list() != found["start_ms"].to_list()


def test_without_anomalies_there_are_no_labels_and_no_factor():
    assert planted_anomalies(OFF, OFF.start_ms + 30 * DAY).schema == LABELS
    assert planted_anomalies(OFF, OFF.start_ms + 30 * DAY).height == 0
    assert {anomaly_factor(OFF, i) for i in range(0, 10 * 1440, 7)} == {1.0}


def test_the_slice_factor_is_the_product_of_the_labels_active_in_it():
    found = labels()
    starts = ((found["start_ms"] - ON.start_ms) // SLICE_MS).to_numpy()
    ends = ((found["end_ms"] - ON.start_ms) // SLICE_MS).to_numpy()
    forever = (found["kind"] == "level_shift").to_numpy()
    factors = found["factor"].to_numpy()
    for index in range(2 * 1440):
        active = (starts <= index) & ((index < ends) | forever)
        assert anomaly_factor(ON, index) == pytest.approx(float(np.prod(factors[active]))), index


# -- the traffic -----------------------------------------------------------------------------


def test_with_anomalies_off_the_output_is_byte_identical_to_a_run_without_the_setting():
    base = SimSettings(events=30_000, partitions=3, users=400, products=300, malformed_rate=0.01, anomalies=False)
    plain, off_late, on_unstarted = (
        run_payloads(settings)
        for settings in (
            base,
            SimSettings(**{**base.__dict__, "anomaly_after_ms": 0}),
            # Anomalies on but none begun within the run: no slice changes either.
            SimSettings(**{**base.__dict__, "anomalies": True, "anomaly_after_ms": DAY}),
        )
    )
    assert plain == off_late == on_unstarted


def test_outside_anomalies_before_the_level_shift_the_traffic_is_unchanged():
    found = labels()
    shift = slice_of(ON, found.filter(pl.col("kind") == "level_shift")["start_ms"][0])
    ordinary = [0, 1, 29, 30, shift - 1]
    for row in found.filter(pl.col("kind") != "level_shift").head(5).iter_rows(named=True):
        start, end = slice_of(ON, row["start_ms"]), slice_of(ON, row["end_ms"])
        ordinary += [start - 2, start - 1, end, end + 1]
        # Inside: different draws.
        assert not generate_slice(ON, CATALOG, 0, start).equals(generate_slice(OFF, CATALOG, 0, start))
    for index in ordinary:
        for partition in range(ON.partitions):
            assert_frame_equal(generate_slice(ON, CATALOG, partition, index),
                               generate_slice(OFF, CATALOG, partition, index))


@pytest.mark.parametrize(("kind", "factor"), [("spike", 3.0), ("drop", 0.1)])
def test_spikes_triple_and_drops_cut_to_a_tenth_the_sessions_starting_in_their_slices(kind: str, factor: float):
    found = labels().filter(pl.col("kind") == kind).head(2)  # before the level shift
    slices = [i for s, e in zip(found["start_ms"], found["end_ms"]) for i in range(slice_of(ON, s), slice_of(ON, e))]
    assert len(slices) == (40 if kind == "spike" else 60)
    assert_ratio(sessions(ON, slices), sessions(OFF, slices), factor)


def test_after_the_level_shift_traffic_stays_twice_as_high_and_spikes_ride_on_top():
    found = labels()
    shift = slice_of(ON, found.filter(pl.col("kind") == "level_shift")["start_ms"][0])
    later = found.filter(pl.col("start_ms") > found.filter(pl.col("kind") == "level_shift")["start_ms"][0])
    next_start = slice_of(ON, later["start_ms"][0])
    assert next_start - shift > 60
    assert_ratio(sessions(ON, range(shift, shift + 60)), sessions(OFF, range(shift, shift + 60)), 2.0)
    # Hours later, between anomalies, still shifted.
    quiet = range(slice_of(ON, later["end_ms"][0]) + 60, slice_of(ON, later["end_ms"][0]) + 90)
    assert quiet.stop < slice_of(ON, later["start_ms"][1])
    assert_ratio(sessions(ON, quiet), sessions(OFF, quiet), 2.0)
    spike = later.filter(pl.col("kind") == "spike").row(0, named=True)
    spike_slices = range(slice_of(ON, spike["start_ms"]), slice_of(ON, spike["end_ms"]))
    assert_ratio(sessions(ON, spike_slices), sessions(OFF, spike_slices), 6.0)


def test_a_run_from_the_environment_shows_the_labelled_spike_in_its_session_starts():
    settings = Settings.from_env({"DMP_SIM_ANOMALIES": "true", "DMP_SIM_ANOMALY_AFTER": "0",
                                  "DMP_SIM_DURATION": "3h", "DMP_SIM_EVENTS_PER_SECOND": "15",
                                  "DMP_SIM_PARTITIONS": "2",
                                  "DMP_SIM_MALFORMED_RATE": "0"}).sim
    assert settings.anomalies and settings.anomaly_after_ms == 0
    spike = planted_anomalies(settings, settings.start_ms + HOUR).row(0, named=True)
    assert spike["kind"] == "spike"
    events = run_events(settings)
    starts = events.group_by("session").agg(pl.col("ts").min()).with_columns(
        minute=(pl.col("ts") - settings.start_ms) // MINUTE
    )
    per_minute = starts.group_by("minute").len()
    first, last = slice_of(settings, spike["start_ms"]), slice_of(settings, spike["end_ms"])
    inside = per_minute.filter(pl.col("minute").is_between(first, last - 1))["len"]
    around = per_minute.filter(
        pl.col("minute").is_between(first - 20, first - 1) | pl.col("minute").is_between(last, last + 19)
    )["len"]
    assert inside.len() == 20 and around.len() == 40
    assert_ratio(int(inside.sum()), int(around.sum()), 3.0, on_units=20, off_units=40)


def run_batches(settings: SimSettings) -> list[RawBatch]:
    """Every partition drained through the real source."""
    return [batch for batches in read_source(SimSource(settings)).values() for batch in batches]


def run_payloads(settings: SimSettings) -> list[bytes]:
    return [batch.payload for batch in run_batches(settings)]


def run_events(settings: SimSettings) -> pl.DataFrame:
    """The decoded events a run delivers: ``session`` and ``ts`` (epoch ms)."""
    frames = [decode_batch(batch).events for batch in run_batches(settings)]
    return pl.concat(frames).select(pl.col("session_id").alias("session"), "ts")
