"""Planted anomalies are found, and seasonality alone raises none: a simulated week at 1m buckets.

The simulator (one partition, 3 events/s of event time on average, a daily
cycle from 0.4x to 1.6x) plants spikes (x3 for 5 minutes), drops (x0.1 for
15 minutes) and one level shift (x2) after the detector's warm-up (3
seasons of 1440 buckets, a period of trend, 60 buckets of residuals), with
labels. The flow runs with its defaults (``DMP_ANOMALY_Z`` = 5).

Scoring: an alert of an overall series (views, orders or revenue) is right
when it falls in a labelled anomaly or the 10 minutes after it (sessions
that began in it are still under way), or in the hour after a level shift.
Precision is the share of alerts that are right; recall the share of
anomalies with at least one alert. The bucket in which the input stops is
left out: it holds part of a minute.
"""

from __future__ import annotations

import polars as pl
import pytest

from flows import dmp
from flows.engine.config import Settings, SimSettings
from flows.engine.sources.simulator import planted_anomalies
from flows.engine.testing import CapturedOutputs, run

WEEK_MS = 7 * 86_400_000
MINUTE = 60_000
AFTER_MS = 10 * MINUTE
AFTER_SHIFT_MS = 60 * MINUTE
RATE = 3.0

pytestmark = pytest.mark.slow


def simulated_week(anomalies: bool) -> tuple[SimSettings, pl.DataFrame]:
    """Alerts (with ``t``, the bucket start in epoch ms) of one simulated week, the last bucket left out."""
    events = int(RATE * WEEK_MS / 1000 * (1.35 if anomalies else 1.05))  # the level shift doubles traffic
    sim = SimSettings(partitions=1, events=events, events_per_second=RATE, anomalies=anomalies,
                      malformed_rate=0.0, straggler_rate=0.0)
    config = Settings(analytics=("timeseries", "anomalies"), sim=sim, summary=False, monitor_interval_ms=0)
    captured = CapturedOutputs()
    run(dmp.build(config, outputs=captured.outputs()))
    to_ms = lambda c: pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.epoch("ms")  # noqa: E731
    last = captured.frame("timeseries").select(to_ms("bucket_start").max()).item()
    assert last >= sim.start_ms + WEEK_MS - MINUTE, "the simulated run must cover the week"
    alerts = captured.frame("anomalies").with_columns(to_ms("bucket_start").alias("t"))
    return sim, alerts.filter(pl.col("t") < last)


@pytest.fixture(scope="module")
def planted_week() -> tuple[pl.DataFrame, pl.DataFrame]:
    sim, alerts = simulated_week(anomalies=True)
    labels = planted_anomalies(sim, sim.start_ms + WEEK_MS).with_columns(
        pl.when(pl.col("kind") == "level_shift").then(pl.col("start_ms") + AFTER_SHIFT_MS)
        .otherwise(pl.col("end_ms") + AFTER_MS).alias("until_ms")
    )
    return labels, alerts


def right(alerts: pl.DataFrame, labels: pl.DataFrame) -> pl.Series:
    return pl.Series([any(a <= t < b for a, b in zip(labels["start_ms"], labels["until_ms"])) for t in alerts["t"]])


def test_the_planted_week_has_spikes_drops_and_a_level_shift(planted_week):
    labels, _ = planted_week
    assert labels["kind"].value_counts().sort("kind").rows() == [("drop", 6), ("level_shift", 1), ("spike", 7)]


def test_planted_anomalies_are_found_with_precision_and_recall_of_at_least_0_9(planted_week):
    labels, alerts = planted_week
    overall = alerts.filter(pl.col("category") == "*")
    hits = right(overall, labels)
    precision = hits.sum() / overall.height
    found = [overall.filter((pl.col("t") >= a) & (pl.col("t") < b)).height > 0
             for a, b in zip(labels["start_ms"], labels["until_ms"])]
    recall = sum(found) / len(found)
    print(f"\nplanted week: {overall.height} alerts, precision {precision:.3f}; "
          f"{sum(found)} of {len(found)} anomalies found, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9
    # Spikes alert upwards, drops downwards.
    for kind, direction in (("spike", "up"), ("drop", "down")):
        spans = labels.filter(pl.col("kind") == kind)
        inside = overall.filter(right(overall, spans))
        assert set(inside["direction"]) == {direction}, kind


def test_seasonal_peaks_alone_raise_no_alerts():
    _, alerts = simulated_week(anomalies=False)
    overall = alerts.filter(pl.col("category") == "*")
    print(f"\nseasonal week: {overall.height} alerts: {overall.select('bucket_start', 'metric', 'actual', 'expected').rows()}")
    # Traffic (views, orders) follows the daily cycle, 0.4x to 1.6x, without a single alert.
    assert overall.filter(pl.col("metric") != "revenue").height == 0
    # Revenue may flag a minute of unusually large orders; never a seasonal peak (at most 4x the trough).
    assert (overall["actual"] > 3 * overall["expected"]).all()
    assert overall.height <= 3
