"""Time series and anomalies, streamed through flows.dmp, equal a batch recomputation.

Random events in a few categories over one or two partitions (with quiet
stretches, retries, late events and malformed records), random batch
splits and interleavings, 1 or 2 workers: every ``timeseries`` row and
every ``anomalies`` row equals :mod:`tests.timeseries_oracle` exactly.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from bytewax.testing import TestingSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import dmp
from flows.engine.config import Settings
from flows.engine.testing import CapturedOutputs, batches, interleave, run
from tests import timeseries_oracle as ts_oracle
from tests import window_oracle as oracle

BASE_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
MINUTE = 60_000
STATISTICS = ("value", "moving_avg", "diff", "seasonal_diff", "acf_1", "acf_period", "trend", "seasonal", "residual")


@st.composite
def partition_events(draw, name: str) -> list[dict]:
    clock = BASE_MS + draw(st.integers(0, 5)) * MINUTE
    events: list[dict] = []
    for index in range(draw(st.integers(0, 120))):
        if events and draw(st.integers(0, 15)) == 0:  # a retry of an earlier event
            events.append(dict(draw(st.sampled_from(events))))
            continue
        clock += draw(st.sampled_from([0, 5_000, 20_000, MINUTE, 3 * MINUTE, 9 * MINUTE]))
        events.append({
            "event_id": f"{name}-{index}",
            "event_type": draw(st.sampled_from(["view", "view", "view", "add_to_cart", "purchase", "purchase"])),
            "ts": clock - draw(st.sampled_from([0, 0, 0, 10_000, 2 * MINUTE])),
            "user_id": "u1",
            "product_id": "p1",
            "category": draw(st.sampled_from(["shoes", "shoes", "hats", None])),
            "price": draw(st.sampled_from([1.25, 10.0, 99.99, 400.0])),
            "quantity": draw(st.integers(1, 3)),
        })
    return events


@st.composite
def scenario(draw):
    names = [f"part-{i}" for i in range(draw(st.integers(1, 2)))]
    events = {name: draw(partition_events(name)) for name in names}
    per_partition = {}
    for name, evs in events.items():
        records = [json.dumps({k: v for k, v in e.items() if v is not None}).encode() for e in evs]
        if draw(st.booleans()):
            records.insert(draw(st.integers(0, len(records))), b"{not json")
        per_partition[name] = batches(records, partition=name, sizes=draw(st.lists(st.integers(1, 30), max_size=8)))
    order = draw(st.permutations([n for n, items in per_partition.items() for _ in items]))
    return {
        "events": events,
        "items": interleave(per_partition, order),
        "partitions": names,
        "lateness": draw(st.sampled_from([0, MINUTE, 5 * MINUTE])),
        "period": draw(st.sampled_from([2, 4])),
        "seasons": draw(st.sampled_from([1, 2, 3])),
        "min_events": draw(st.sampled_from([0, 1])),
        "workers": draw(st.sampled_from([1, 2])),
    }


def run_flow(case: dict) -> tuple[Settings, CapturedOutputs]:
    config = Settings(
        analytics=("timeseries", "anomalies"),
        allowed_lateness_ms=case["lateness"],
        ts_bucket_ms=MINUTE,
        ts_ma=3,
        ts_period=case["period"],
        ts_seasons=case["seasons"],
        ts_acf_window=case["period"] + 3,
        anomaly_window=5,
        anomaly_z=1.0,  # low, so that alerts are frequent
        anomaly_min_events=case["min_events"],
        shards=3,
        summary=False,
    )
    captured = CapturedOutputs()
    flow = dmp.build(config, source=TestingSource(case["items"]), partitions=case["partitions"],
                     outputs=captured.outputs())
    run(flow, workers=case["workers"])
    return config, captured


def expected_rows(case: dict, config: Settings) -> list[dict]:
    stamped = oracle.stamp(case["events"], config.allowed_lateness_ms, config.dedup_horizon_ms,
                           config.future_tolerance_ms, config.earliest_event_ms)
    return ts_oracle.output(stamped, config.ts_bucket_ms, config.ts_ma, config.ts_period, config.ts_seasons,
                            config.ts_acf_window, config.anomaly_window, config.anomaly_min_events)


def iso_minute(bucket: int) -> str:
    return pl.select(pl.from_epoch(pl.lit(bucket * MINUTE), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).item()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_time_series_and_anomalies_equal_the_batch_recomputation(case):
    config, captured = run_flow(case)
    want = expected_rows(case, config)

    got = captured.frame("timeseries")
    got_rows = got.to_dicts() if got.height else []
    assert [(r["bucket_start"], r["metric"], r["category"]) for r in got_rows] == [
        (iso_minute(r["bucket"]), r["metric"], r["category"]) for r in want
    ]
    for g, w in zip(got_rows, want):
        assert {k: g[k] for k in STATISTICS} == {k: w[k] for k in STATISTICS}, (g, w)

    alerts = captured.frame("anomalies")
    alert_rows = alerts.to_dicts() if alerts.height else []
    flagged = [w for w in want if w["score"] is not None and abs(w["score"]) >= config.anomaly_z]
    assert [(a["bucket_start"], a["metric"], a["category"], a["actual"], a["expected"], a["score"], a["direction"])
            for a in alert_rows] == [
        (iso_minute(w["bucket"]), w["metric"], w["category"], w["value"], w["expected"], w["score"],
         "up" if w["score"] > 0 else "down") for w in flagged
    ]


def test_a_quiet_bucket_is_a_zero_not_a_gap():
    events = [{"event_id": str(i), "event_type": "view", "ts": BASE_MS + minute * MINUTE, "user_id": "u",
               "product_id": "p", "price": 1.0, "quantity": 1} for i, minute in enumerate([0, 0, 3])]
    config = Settings(analytics=("timeseries",), ts_bucket_ms=MINUTE, ts_ma=2, ts_period=2, ts_acf_window=3,
                      summary=False, allowed_lateness_ms=0)
    captured = CapturedOutputs()
    run(dmp.build(config, source=TestingSource([json.dumps(e) for e in events]), outputs=captured.outputs()))
    views = captured.frame("timeseries").filter(pl.col("metric") == "views")
    assert views.select("bucket_start", "value", "moving_avg", "diff").rows() == [
        ("2024-03-01T08:00:00Z", 2.0, None, None),
        ("2024-03-01T08:01:00Z", 0.0, 1.0, -2.0),
        ("2024-03-01T08:02:00Z", 0.0, 0.0, 0.0),
        ("2024-03-01T08:03:00Z", 1.0, 0.5, 1.0),
    ]


def test_revenue_is_in_currency_and_events_without_a_category_count_only_overall():
    events = [
        {"event_id": "1", "event_type": "purchase", "ts": BASE_MS, "user_id": "u", "product_id": "p",
         "category": "shoes", "price": 19.99, "quantity": 2},
        {"event_id": "2", "event_type": "purchase", "ts": BASE_MS + 1, "user_id": "u", "product_id": "q",
         "price": 5.0, "quantity": 1},
    ]
    config = Settings(analytics=("timeseries",), summary=False)
    captured = CapturedOutputs()
    run(dmp.build(config, source=TestingSource([json.dumps(e) for e in events]), outputs=captured.outputs()))
    rows = captured.frame("timeseries").select("metric", "category", "value").rows()
    assert rows == [("orders", "*", 2.0), ("orders", "shoes", 1.0), ("revenue", "*", 44.98),
                    ("revenue", "shoes", 39.98), ("views", "*", 0.0)]


@pytest.mark.parametrize("name", ["DMP_TS_ACF_WINDOW", "DMP_TS_PERIOD", "DMP_ANOMALY_Z", "DMP_TS_BUCKET"])
def test_bad_time_series_settings_fail_naming_the_setting(name):
    from flows.engine.errors import ConfigError

    bad = {"DMP_TS_ACF_WINDOW": "144", "DMP_TS_PERIOD": "1", "DMP_ANOMALY_Z": "0", "DMP_TS_BUCKET": "1500ms"}
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: bad[name]})
