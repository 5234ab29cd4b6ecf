"""Planted anomalies are found, and seasonality alone raises none: the default demo's simulated week.

The simulator with its defaults (a week of event time, 1 event/s on
average over 4 partitions, a daily cycle from 0.4x to 1.6x) plants spikes
(x3 for 20 minutes), drops (x0.1 for 30 minutes) and one level shift (x2)
after the detector's warm-up (3 seasons of 144 ten-minute buckets, a period
of trend, 36 buckets of residuals), with labels. The flow runs with its
defaults too (``DMP_TS_BUCKET`` = 10m, ``DMP_ANOMALY_Z`` = 5); only the
analytics are narrowed to the time series.

Scoring: an alert of an overall series (views, orders or revenue) is right
when its bucket overlaps a labelled anomaly or the 10 minutes after it
(sessions that began in it are still under way), or, after a level shift
begins, the ``DMP_ANOMALY_WINDOW`` buckets (6 hours) whose residuals still
remember the old level. Precision is the share of alerts that are right; recall the
share of anomalies with at least one alert. The run ends at a whole bucket
(the end of the week), so every bucket counts.
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

pytestmark = pytest.mark.slow


def simulated_week(anomalies: bool) -> tuple[Settings, pl.DataFrame]:
    """Alerts (with ``t``, the bucket start in epoch ms) of the default simulated week."""
    sim = SimSettings(anomalies=anomalies)
    config = Settings(analytics=("timeseries", "anomalies"), sim=sim, summary=False, monitor_interval_ms=0)
    assert sim.duration_ms == WEEK_MS and sim.events is None
    captured = CapturedOutputs()
    run(dmp.build(config, outputs=captured.outputs()))
    to_ms = lambda c: pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.epoch("ms")  # noqa: E731
    last = captured.frame("timeseries").select(to_ms("bucket_start").max()).item()
    assert last == sim.start_ms + WEEK_MS - config.ts_bucket_ms, "the run covers the week, to its last bucket"
    alerts = captured.frame("anomalies")
    if not alerts.height:
        alerts = pl.DataFrame(schema={"bucket_start": pl.String, "metric": pl.String, "category": pl.String,
                                      "actual": pl.Float64, "expected": pl.Float64, "direction": pl.String})
    return config, alerts.with_columns(to_ms("bucket_start").alias("t"))


@pytest.fixture(scope="module")
def planted_week() -> tuple[pl.DataFrame, pl.DataFrame, int]:
    config, alerts = simulated_week(anomalies=True)
    after_shift_ms = config.anomaly_window * config.ts_bucket_ms
    labels = planted_anomalies(config.sim, config.sim.start_ms + WEEK_MS).with_columns(
        pl.when(pl.col("kind") == "level_shift").then(pl.col("start_ms") + after_shift_ms)
        .otherwise(pl.col("end_ms") + AFTER_MS).alias("until_ms")
    )
    return labels, alerts, config.ts_bucket_ms


def overlapping(start: int, until: int, bucket_ms: int) -> pl.Expr:
    return (pl.col("t") < until) & (pl.col("t") + bucket_ms > start)


def right(alerts: pl.DataFrame, labels: pl.DataFrame, bucket_ms: int) -> pl.Series:
    spans = list(zip(labels["start_ms"], labels["until_ms"]))
    return pl.Series([any(t < b and t + bucket_ms > a for a, b in spans) for t in alerts["t"]], dtype=pl.Boolean)


def test_the_planted_week_has_spikes_drops_and_a_level_shift(planted_week):
    labels, _, _ = planted_week
    assert labels["kind"].value_counts().sort("kind").rows() == [("drop", 5), ("level_shift", 1), ("spike", 6)]


def test_planted_anomalies_are_found_with_precision_and_recall_of_at_least_0_9(planted_week):
    labels, alerts, bucket_ms = planted_week
    overall = alerts.filter(pl.col("category") == "*")
    hits = right(overall, labels, bucket_ms)
    precision = hits.sum() / overall.height
    found = [overall.filter(overlapping(a, b, bucket_ms)).height > 0
             for a, b in zip(labels["start_ms"], labels["until_ms"])]
    recall = sum(found) / len(found)
    print(f"\nplanted week: {overall.height} alerts ({dict(overall['metric'].value_counts().iter_rows())}), "
          f"precision {precision:.3f}; {sum(found)} of {len(found)} anomalies found, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9
    # Spikes alert upwards, drops downwards.
    for kind, direction in (("spike", "up"), ("drop", "down")):
        spans = labels.filter(pl.col("kind") == kind)
        inside = overall.filter(right(overall, spans, bucket_ms))
        assert set(inside["direction"]) == {direction}, kind


def test_seasonal_peaks_alone_raise_no_alerts():
    _, alerts = simulated_week(anomalies=False)
    overall = alerts.filter(pl.col("category") == "*")
    print(f"\nseasonal week: {overall.height} alerts: {overall.select('bucket_start', 'metric', 'actual', 'expected').rows()}")
    # Traffic (views, orders) follows the daily cycle, 0.4x to 1.6x, without a single alert.
    assert overall.filter(pl.col("metric") != "revenue").height == 0
    # Revenue may flag a bucket of unusually large orders; never a seasonal peak (at most 4x the trough).
    assert (overall["actual"] > 3 * overall["expected"]).all()
    assert overall.height <= 3
