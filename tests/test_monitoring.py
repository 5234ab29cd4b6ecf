"""Monitoring: per-worker and total figures every interval, and the Prometheus metrics.

The figures must agree with known input (events counted = events sent,
dead letters and late events = the run summary's), latencies are positive
and ordered, and a running ``python -m bytewax.run flows.dmp`` serves our
metrics beside Bytewax's on the dataflow API server.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import polars as pl
import pytest

from flows import dmp
from flows.engine import metrics
from flows.engine.analytics import registry
from flows.engine.config import Settings, SimSettings
from flows.engine.counts import Counts
from flows.engine.monitor import (
    TOTAL,
    Figures,
    Report,
    TotalMonitor,
    WorkerMonitor,
    monitoring_row,
    total,
    watermark_report,
)
from flows.engine.schema import StampedBatch
from flows.engine.testing import CapturedOutputs, run
from tests.test_cli import ROOT, env, free_port


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_worker_reports_every_interval_and_zeros_when_quiet():
    clock = Clock(100.2)
    logic = WorkerMonitor(10.0, None, clock)
    out, _ = logic.on_batch([Report("3", 100.2, Counts(records=7, events=6, dead_letters=1), latencies=(0.5,)),
                             Report("3", 101.0, Counts(late=2), watermarks=(("p", 95_000),))])
    assert out == [] and logic.notify_at().timestamp() == 110.0
    clock.now = 125.0  # two intervals passed: one with the reports, one quiet
    out, _ = logic.on_notify()
    assert [(f.worker, f.start, f.end, f.counts.records, f.counts.events, f.counts.dead_letters, f.counts.late,
             f.latencies) for f in out] == [
        ("3", 100.0, 110.0, 7, 6, 1, 2, [0.5]),
        ("3", 110.0, 120.0, 0, 0, 0, 0, []),
    ]
    assert out[0].watermark == 95_000
    assert out[0].measured_from == 100.2 and out[1].measured_from == 110.0  # the first counts from the first report
    row = monitoring_row(out[0]).row(0, named=True)
    assert row["events_per_s"] == pytest.approx(6 / 9.8) and row["latency_p99_ms"] == 500.0
    assert row["watermark_lag_s"] == 15.0 and row["interval_start"].timestamp() == 100.2
    replayed = monitoring_row(out[0], live=False).row(0, named=True)  # a replay: event time is not the wall clock's
    assert replayed["watermark_lag_s"] is None and replayed["live"] is False and replayed["watermark"] is not None
    clock.now = 126.0
    out, discard = logic.on_eof()  # the partial interval goes out at the end of input
    assert [(f.start, f.end) for f in out] == [(120.0, 126.0)] and discard


def test_a_run_shorter_than_an_interval_is_a_rate_over_its_own_length():
    clock = Clock(1_000.3)  # 0.3 s into an interval of 10 s
    logic = WorkerMonitor(10.0, None, clock)
    logic.on_batch([Report("0", 1_000.3, Counts(records=1_000, events=1_000))])
    clock.now = 1_004.5  # the end of input, 4.2 s later
    (figures,), _ = logic.on_eof()
    row = monitoring_row(figures).row(0, named=True)
    assert row["events_per_s"] == pytest.approx(1_000 / 4.2)  # about 238/s: not 100/s over an assumed 10 s
    assert (row["interval_start"].timestamp(), row["interval_end"].timestamp()) == (1_000.3, 1_004.5)


def test_the_total_adds_up_the_workers_of_an_interval_once_all_reported():
    clock = Clock(111.0)
    logic = TotalMonitor(10.0, None, clock)
    a = Figures("0", 100.0, 110.0, Counts(records=5, events=5), latencies=[0.1], watermark=50_000)
    b = Figures("1", 100.0, 110.0, Counts(records=3, events=2, dead_letters=1), latencies=[0.3, 0.2],
                watermark=40_000)
    (alone,), _ = logic.on_batch([a])  # worker 0 is the only one heard from yet
    assert (alone.counts.records, alone.workers) == (5, 1)
    late, _ = logic.on_batch([b])  # worker 1's figures of that interval count in the next total
    assert late == [] and logic.pending[110.0][0].counts.records == 3
    clock.now = 130.0  # one interval after the next one ended, it goes out without waiting
    (next_total,), _ = logic.on_notify()
    assert (next_total.start, next_total.counts.records) == (110.0, 3)

    clock.now = 111.0
    both = TotalMonitor(10.0, None, clock)
    both.workers = {"0", "1"}
    assert both.on_batch([a])[0] == []
    (summed,), _ = both.on_batch([b])
    assert summed == total([a, b])
    assert (summed.worker, summed.counts.records, summed.counts.events, summed.counts.dead_letters,
            summed.watermark, summed.workers) == (
        TOTAL, 8, 7, 1, 40_000, 2)
    assert sorted(summed.latencies) == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("workers", [1, 2])
def test_figures_agree_with_the_input_and_latencies_are_ordered(workers):
    sim = SimSettings(events=150_000, partitions=4, malformed_rate=0.001, straggler_rate=0.002)
    config = Settings(analytics=("trends", "sessions"), sim=sim, monitor_interval_ms=200)
    captured = CapturedOutputs()
    run(dmp.build(config, outputs=captured.outputs()), workers=workers)
    rows = captured.frame("monitoring")
    summary = captured.summary
    per_worker = rows.filter(pl.col("worker") != TOTAL)
    totals = rows.filter(pl.col("worker") == TOTAL)

    assert set(per_worker["worker"]) <= {str(w) for w in range(workers)}
    for column, counted in (("records", "records"), ("events", "events"), ("dead_letters", "dead_letters"),
                            ("late_events", "late")):
        assert per_worker[column].sum() == summary[counted] == totals[column].sum(), column
    assert summary["records"] == 150_000
    # Throughput is events over the interval's length (times are shown to the millisecond).
    at = lambda c: pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ")  # noqa: E731
    seconds = (at("interval_end") - at("interval_start")).dt.total_microseconds() / 1e6
    shown = pl.col("events") / seconds  # from the times as shown, each up to 1 ms short
    error = per_worker.select(((shown - pl.col("events_per_s")).abs() - shown * 0.002 / seconds).max()).item()
    assert error <= 1e-6
    timed = rows.filter(pl.col("latency_samples") > 0)
    assert timed.height and timed["latency_samples"].sum() > 0
    assert (timed["latency_p50_ms"] > 0).all()
    assert (timed["latency_p50_ms"] <= timed["latency_p95_ms"]).all()
    assert (timed["latency_p95_ms"] <= timed["latency_p99_ms"]).all()
    # Replayed 2024 events, far behind the wall clock: the lag would say nothing, so there is none.
    assert rows["watermark_lag_s"].is_null().all() and not rows["live"].any() and rows["watermark"].drop_nulls().len()


def test_the_watermark_lag_gauge_is_set_on_live_streams_only():
    gauge = metrics.WATERMARK_LAG.labels("0")
    gauge.set(-1.0)
    batch = StampedBatch("p", pl.DataFrame(), watermark=1_704_067_200_000)  # 2024-01-01, long ago
    report = watermark_report(batch, live=False, clock=lambda: 1_704_067_260.0)
    assert report is not None and report.watermarks == (("p", 1_704_067_200_000),)
    assert gauge._value.get() == -1.0  # a replay's "lag" would be its age: left alone
    watermark_report(batch, live=True, clock=lambda: 1_704_067_260.0)
    assert gauge._value.get() == 60.0


def test_monitoring_can_be_turned_off():
    config = Settings(analytics=("trends",), sim=SimSettings(events=5_000), monitor_interval_ms=0)
    assert "monitoring" not in [s.name for s in registry.streams(config)]
    captured = CapturedOutputs()
    run(dmp.build(config, outputs=captured.outputs()))
    assert captured.items["monitoring"] == []


OUR_METRICS = ("dmp_records_total", "dmp_events_total", "dmp_dead_letters_total", "dmp_late_events_total",
               "dmp_latency_seconds_bucket", "dmp_watermark_lag_seconds", "dmp_events_per_second")


@pytest.mark.slow
def test_a_running_flow_serves_our_metrics_beside_bytewaxs(tmp_path):
    port = free_port()
    settings = {"DMP_OUT_DIR": str(tmp_path), "DMP_SIM_EVENTS": "0", "DMP_SIM_SPEED": "600",
                "DMP_MONITOR_INTERVAL": "1s", "DMP_ANALYTICS": "trends",
                "BYTEWAX_DATAFLOW_API_ENABLED": "true", "BYTEWAX_DATAFLOW_API_PORT": str(port)}
    flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.dmp", "-w", "2"], cwd=tmp_path,
                            env={**env(**settings), "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        text, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline and not all(name in text for name in OUR_METRICS):
            time.sleep(1)
            assert flow.poll() is None, flow.stderr.read()
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
        missing = [name for name in OUR_METRICS if name not in text]
        assert not missing, f"not served: {missing}"
        assert "bytewax_" in text  # Bytewax's own step metrics, on the same endpoint
        events = [line for line in text.splitlines() if line.startswith("dmp_events_total{")]
        assert events and all('worker="' in line for line in events)
        assert sum(float(line.rsplit(" ", 1)[1]) for line in events) > 0
    finally:
        flow.kill()
        flow.wait(timeout=30)
