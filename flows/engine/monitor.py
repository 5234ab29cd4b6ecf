"""Live monitoring of the pipeline itself: per worker and in total, every interval of wall clock.

Measured where the work happens, on the worker doing it (Bytewax runs each
worker on its own thread; :class:`WorkerIdentity` tells a thread its worker
index):

- records, events and dead letters of each source batch, on the worker that read it;
- late events, on the worker that routed them;
- end-to-end latency of window results: wall time from reading the source
  batch that released them (the one whose watermark closed them) to their
  emission by the windowing engine, on the worker that emitted them;
- each partition's watermark, on the worker that stamps it.

Each measurement is a small :class:`Report` (one per batch or emission,
never per event) and also updates the Prometheus metrics of
:mod:`flows.engine.metrics`. :func:`monitor` adds the reports up per worker
and, every ``interval`` (timers, so a quiet worker still reports zeros),
emits one row per worker and a ``total`` row: records, events, events/s
(throughput) per worker and in total, dead letters, late events, latency
p50/p95/p99 (ms), and the watermark lag (wall clock minus the oldest
watermark, in seconds), on live streams only (``live``): a replay's event
time is not the wall clock's, so its lag would only say how old the data
is. Rates are over the wall clock actually measured: a worker's first
interval starts at its first report, its last ends at the end of input.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
import numpy as np
import polars as pl
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.engine import metrics
from flows.engine.counts import Counts
from flows.engine.present import as_time
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, StampedBatch
from flows.engine.streams import BOOL, FLOAT, INT, TEXT, TIME_MS, Column, OutputStream
from flows.engine.summary import Tally

TOTAL = "total"
# Worker index by OS thread. Not a threading.local: Bytewax's worker threads are Rust threads, whose
# Python thread state (and so any threading.local) may not outlive one call into Python.
_workers: dict[int, str] = {}


class WorkerIdentity(DynamicSink[Any]):
    """Writes nothing; being built on every worker's thread, it tells that thread its worker index."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        _workers[threading.get_ident()] = str(worker_index)
        return _Nowhere()


class _Nowhere(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


def current_worker() -> str:
    """This thread's worker index (``"0"`` outside a flow that has a :class:`WorkerIdentity`)."""
    return _workers.get(threading.get_ident(), "0")


@dataclass(frozen=True)
class Report:
    """What one worker measured at one moment (wall-clock seconds ``at``)."""

    worker: str
    at: float
    counts: Counts = field(default_factory=Counts)
    latencies: tuple[float, ...] = ()  # seconds
    watermarks: tuple[tuple[str, int], ...] = ()  # (partition, epoch ms)


def batch_report(tally: Tally, clock: Callable[[], float] = time.time) -> Report:
    """A decoded source batch's counts (from its tally)."""
    worker, counts = current_worker(), tally.counts
    metrics.RECORDS.labels(worker).inc(counts.records)
    metrics.EVENTS.labels(worker).inc(counts.events)
    metrics.DEAD_LETTERS.labels(worker).inc(counts.dead_letters)
    return Report(worker, clock(), counts)


def late_report(tally: Tally, clock: Callable[[], float] = time.time) -> Report:
    """A stamped batch's late events (late for a window of any analytic), from its tally."""
    worker, late = current_worker(), tally.counts.late
    metrics.LATE_EVENTS.labels(worker).inc(late)
    return Report(worker, clock(), Counts(late=late))


def latency_report(read_at: float | None, clock: Callable[[], float] = time.time) -> Report | None:
    """Latency of an emission of window results released by a batch read at ``read_at``."""
    if read_at is None:
        return None  # released by the end of input, not by a batch
    now, worker = clock(), current_worker()
    latency = max(0.0, now - read_at)
    metrics.LATENCY.labels(worker).observe(latency)
    return Report(worker, now, latencies=(latency,))


def watermark_report(batch: StampedBatch, live: bool = True, clock: Callable[[], float] = time.time
                     ) -> Report | None:
    """The batch's watermark; on a live stream also the lag gauge (a replay's lag would be its age, not a lag)."""
    if not BEGINNING_OF_TIME < batch.watermark < END_OF_TIME:
        return None  # no event yet, or the partition has ended
    now, worker = clock(), current_worker()
    if live:
        metrics.WATERMARK_LAG.labels(worker).set(max(0.0, now - batch.watermark / 1000))
    return Report(worker, now, watermarks=((batch.partition, batch.watermark),))


@dataclass
class Figures:
    """One worker's (or the total's) figures over one interval of wall clock ``[start, end)``."""

    worker: str
    start: float
    end: float
    counts: Counts = field(default_factory=Counts)
    latencies: list[float] = field(default_factory=list)
    watermark: int | None = None  # the oldest watermark held, epoch ms
    workers: int = 1
    since: float | None = None
    """When measuring began, if after ``start``: a worker's first interval counts from its first report, so a
    4.2 s run is not a rate over 10 s (``start`` stays the clock-aligned slot the total groups by)."""

    @property
    def measured_from(self) -> float:
        return self.start if self.since is None else max(self.start, self.since)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds the figures cover."""
        return max(self.end - self.measured_from, 1e-3)

    def add(self, report: Report) -> None:
        self.counts += report.counts
        self.latencies.extend(report.latencies)


@dataclass
class MonitorState:
    figures: Figures | None
    watermarks: dict[str, int]


class WorkerMonitor(StatefulBatchLogic[Report, Figures, MonitorState]):
    """One worker's reports -> its :class:`Figures` every ``interval`` seconds (aligned to the clock)."""

    def __init__(self, interval: float, resume: MonitorState | None, clock: Callable[[], float] = time.time) -> None:
        self.interval, self.clock = interval, clock
        self.watermarks = dict(resume.watermarks) if resume is not None else {}
        self.figures: Figures | None = resume.figures if resume is not None else None

    def on_batch(self, values: list[Report]) -> tuple[list[Figures], bool]:
        if self.figures is None:  # the first report names the worker, and starts the measuring
            now = self.clock()
            start = (now // self.interval) * self.interval
            self.figures = Figures(values[0].worker, start, start + self.interval, since=min(now, values[0].at))
        out = self._due()
        for report in values:
            self.figures.add(report)  # a report from just before the interval began counts in it
            self.watermarks.update(report.watermarks)
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Figures], bool]:
        return self._due(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Figures], bool]:
        if self.figures is None:
            return [], StatefulBatchLogic.DISCARD
        now = self.clock()
        out = self._due()
        self.figures.end = max(min(self.figures.end, now), self.figures.measured_from + 1e-3)  # a partial interval
        return [*out, self._close(self.figures)], StatefulBatchLogic.DISCARD

    def notify_at(self) -> datetime | None:
        return None if self.figures is None else datetime.fromtimestamp(self.figures.end, tz=timezone.utc)

    def _due(self) -> list[Figures]:
        assert self.figures is not None  # on_batch made them; there is nothing to notify of before
        now = self.clock()
        out = []
        while now >= self.figures.end:
            out.append(self._close(self.figures))
            self.figures = Figures(self.figures.worker, self.figures.end, self.figures.end + self.interval)
        return out

    def _close(self, figures: Figures) -> Figures:
        live = [wm for wm in self.watermarks.values() if wm < END_OF_TIME]
        figures.watermark = min(live) if live else None
        metrics.EVENTS_PER_SECOND.labels(figures.worker).set(figures.counts.events / figures.seconds)
        return figures

    def snapshot(self) -> MonitorState:
        figures = None if self.figures is None else replace(self.figures, latencies=list(self.figures.latencies))
        return MonitorState(figures, dict(self.watermarks))


class TotalMonitor(StatefulBatchLogic[Figures, Figures, dict]):
    """Every worker's :class:`Figures` -> the total of each interval.

    An interval's total goes out once every worker heard from so far has
    reported it, or one interval after it ended (a stalled worker does not
    hold the total back). Figures that arrive after their interval's total
    went out count in the next total, so totals over a run add up exactly.
    """

    def __init__(self, interval: float, resume: dict | None, clock: Callable[[], float] = time.time) -> None:
        self.interval, self.clock = interval, clock
        self.workers: set[str] = set(resume["workers"]) if resume else set()
        self.pending: dict[float, list[Figures]] = dict(resume["pending"]) if resume else {}
        self.done_until = resume["done_until"] if resume else float("-inf")

    def on_batch(self, values: list[Figures]) -> tuple[list[Figures], bool]:
        for figures in values:
            self.workers.add(figures.worker)
            if figures.start < self.done_until:  # late: into the next total
                figures = replace(figures, start=self.done_until, end=self.done_until + self.interval,
                                  since=max(figures.measured_from, self.done_until))
            self.pending.setdefault(figures.start, []).append(figures)
        return self._due(self.clock()), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Figures], bool]:
        return self._due(self.clock()), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Figures], bool]:
        return self._due(float("inf")), StatefulBatchLogic.DISCARD

    def notify_at(self) -> datetime | None:
        if not self.pending:
            return None
        return datetime.fromtimestamp(min(self.pending) + 2 * self.interval, tz=timezone.utc)

    def _due(self, now: float) -> list[Figures]:
        out = []
        for start in sorted(self.pending):
            parts = self.pending[start]
            if {f.worker for f in parts} < self.workers and now < start + 2 * self.interval:
                break
            out.append(total(self.pending.pop(start)))
            self.done_until = start + self.interval
        return out

    def snapshot(self) -> dict:
        return {"workers": set(self.workers), "pending": dict(self.pending), "done_until": self.done_until}


def total(parts: list[Figures]) -> Figures:
    """The workers' figures of one interval, added up (latencies pooled, the oldest watermark)."""
    marks = [f.watermark for f in parts if f.watermark is not None]
    return Figures(
        TOTAL,
        min(f.start for f in parts),
        max(f.end for f in parts),
        counts=sum((f.counts for f in parts), Counts()),
        latencies=[x for f in parts for x in f.latencies],
        watermark=min(marks) if marks else None,
        workers=len(parts),
        since=min(f.measured_from for f in parts),
    )


MONITORING = OutputStream(
    "monitoring",
    row="worker (and `total`) every `DMP_MONITOR_INTERVAL` of wall clock",
    fields="`interval_start`, `interval_end`, `worker`, `workers` (in a total), `records`, `events`, "
    "`events_per_s`, `dead_letters`, `late_events`, `latency_samples`, `latency_p50_ms`, `latency_p95_ms`, "
    "`latency_p99_ms` (read to a window's result, over the `latency_samples` results of the interval: null where "
    "no window closed in it), `watermark` (the oldest held), `watermark_lag_s` (wall clock minus it, on live "
    "streams only: null when replaying files or an unpaced simulator, whose event time is not the wall clock's), "
    "`live`. `interval_start` is when measuring began (a run's first interval starts at its first report), "
    "and rates are over `interval_end - interval_start`",
    key=("interval_start", "worker"),
    columns=(
        Column("interval_start", TIME_MS, nullable=False),
        Column("interval_end", TIME_MS, nullable=False),
        Column("worker", TEXT, nullable=False),
        *(Column(name, INT, nullable=False) for name in ("workers", "records", "events")),
        Column("events_per_s", FLOAT, nullable=False),
        *(Column(name, INT, nullable=False) for name in ("dead_letters", "late_events", "latency_samples")),
        *(Column(f"latency_{p}_ms", FLOAT) for p in ("p50", "p95", "p99")),
        Column("watermark", TIME_MS),
        Column("watermark_lag_s", FLOAT),
        Column("live", BOOL, nullable=False),
    ),
)


def monitoring_row(figures: Figures, live: bool = True) -> pl.DataFrame:
    """:class:`Figures` -> one typed :data:`MONITORING` row (``live``: events arrive as they happen, so the
    watermark lag means something)."""
    p50 = p95 = p99 = None
    if figures.latencies:
        p50, p95, p99 = (float(v) * 1000 for v in np.percentile(figures.latencies, [50, 95, 99]))
    mark = figures.watermark
    row = pl.DataFrame(
        [{
            "interval_start": int(figures.measured_from * 1000),
            "interval_end": int(figures.end * 1000),
            "worker": figures.worker,
            "workers": figures.workers,
            "records": figures.counts.records,
            "events": figures.counts.events,
            "events_per_s": figures.counts.events / figures.seconds,
            "dead_letters": figures.counts.dead_letters,
            "late_events": figures.counts.late,
            "latency_samples": len(figures.latencies),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p99,
            "watermark": mark,
            "watermark_lag_s": None if mark is None or not live else figures.end - mark / 1000,
            "live": live,
        }],
        schema={**MONITORING.schema, "interval_start": pl.Int64, "interval_end": pl.Int64, "watermark": pl.Int64},
    )
    return row.with_columns(as_time(name) for name in ("interval_start", "interval_end", "watermark"))


@operator
def monitor(step_id: str, reports: Stream[Report], interval_s: float, live: bool = True,
            clock: Callable[[], float] = time.time) -> Stream[tuple[str, pl.DataFrame]]:
    """Reports -> ``(worker, row)`` every ``interval_s`` per worker, and ``("total", row)``."""
    by_worker = op.key_on("by_worker", reports, lambda r: r.worker)
    per_worker = op.stateful_batch(
        "worker_figures", by_worker, lambda resume: WorkerMonitor(interval_s, resume, clock)
    )
    together = op.key_on("together", op.key_rm("unkey", per_worker), lambda _: TOTAL)
    totals = op.stateful_batch("total_figures", together, lambda resume: TotalMonitor(interval_s, resume, clock))
    figures = op.merge("workers_and_total", per_worker, totals)
    return op.map("rows", figures, lambda kv: (kv[0], monitoring_row(kv[1], live)))
