"""Bounded state: what the windowing engine holds over a long high-cardinality run.

    python bench/state_size.py                            # 10 minutes, a sample every 30 s
    python bench/state_size.py --minutes 1 --interval 10  # a quick check

The built-in simulator runs forever, as fast as it can (1,000,000 shoppers,
100,000 products, 2,000 events per second of event time on average, over 4
partitions), into one Bytewax worker: decode -> stamp event time (30 s
allowed lateness, duplicate event ids dropped) -> three windowed analytics
side by side on the same stamped stream, 8 state shards each:

- ``trends``: per product, tumbling 1-minute windows;
- ``trends_sliding``: the same, 5 minutes long, one every minute;
- ``sessions``: per shopper, 30-minute gap (purchases per session).

Every ``--interval`` seconds of wall time it samples the state, from inside
the worker (so nothing races it), and prints one row; after ``--minutes``
the source ends, and the table (the curve) is printed again with each
size's range after the warm-up. Per row:

- ``ev time``: event time reached (the newest event, h:mm since the start);
  ``traffic``: the simulator's daily-cycle multiplier of the event rate there;
- per analytic, ``open``: rows its shards hold, i.e. open (window, key)
  partial aggregates or open sessions, pending unmerged partials included;
  ``MB``: those frames' ``estimated_size()``; ``closed``: result rows
  emitted so far (state that left);
- ``gather rows``/``KB``: rows the gather steps hold (window rows waiting for
  every shard, per-window quality counts);
- ``dedup ids``/``MB``: event ids the partitions remember for de-duplication;
- ``snapshot MB``: every window and watermark logic's ``snapshot()``,
  pickled: what recovery would store besides the source positions;
- ``RSS MB``: the process's resident memory (``VmRSS``).

Why these sizes: 100,000 products with Zipf popularity put tens of thousands
of products in every minute's window (five times that in the sliding
windows). Sessions are the big state: a shopper returns every ~20 minutes of
event time on average, so with a 30-minute gap nearly every shopper who came
in the last hour holds an open session; that is ~1M rows, bounded by the
number of shoppers, while a quarter of the gaps are longer than 30 minutes,
so sessions close all the time too. The dedup horizon is the lateness plus
the longest window extent (the session gap), 30.5 minutes: older events are
late for every analytic anyway, so the partitions remember ~6M ids. The
simulator builds a 100,000-product catalog in ~0.15 s per partition and
generates ~500k events/s, so it never limits the run. Event time starts at
19:00 UTC, near the peak of the daily cycle (x1.6, ~3,200 events/s), where
the rate moves by under 5% for the next three hours: flat state then means
bounded state, not a quieter night. 2,000 (not more) events/s because the
session state needs ``lateness + 2 * gap`` = 60.5 minutes of event time to
fill (a session is final once the watermark passes its end plus one more
gap), and ten wall minutes at ~35k events/s (2 cores, shared) must cover
that and as much again. State size depends on the event time reached, not
on how fast the machine gets there.

The flow is built from the engine's own operators; their ``observe`` hook
hands the bench every stateful logic they build, to be measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.engine.aggregate import Sum, WindowedAggregate, WindowSpec  # noqa: E402
from flows.engine.analytics.trends import trends_aggregate  # noqa: E402
from flows.engine.config import SimSettings  # noqa: E402
from flows.engine.gather import WindowGather  # noqa: E402
from flows.engine.operators import decode, decoder, stamp_event_time, window  # noqa: E402
from flows.engine.schema import ClosedWindows  # noqa: E402
from flows.engine.setting import instant  # noqa: E402
from flows.engine.shards import WindowShard  # noqa: E402
from flows.engine.sources import ReadAheadSource, SimSource  # noqa: E402
from flows.engine.sources.simulator import daily_cycle  # noqa: E402
from flows.engine.watermark import PartitionWatermark  # noqa: E402
from flows.engine.windows import SessionWindow, SlidingWindow, TumblingWindow  # noqa: E402

LATENESS_MS = 30_000
SESSION_GAP_MS = 1_800_000
START = "2024-01-01T19:00:00Z"  # the peak of the simulator's daily cycle (see the docstring)
START_MS = instant(START)
EVENT_FIELDS = ("event_id",)
MB = 1 << 20


def analytics() -> list[WindowSpec]:
    """The three analytics measured side by side."""
    tumbling = trends_aggregate(TumblingWindow(60_000))
    sliding = dataclasses.replace(trends_aggregate(SlidingWindow(300_000, 60_000)), name="trends_sliding")
    sessions = WindowedAggregate(
        "sessions", ("user_id",), SessionWindow(SESSION_GAP_MS), {"purchases": Sum(pl.col("event_type") == "purchase")}
    )
    return [tumbling, sliding, sessions]


# -- sampling -------------------------------------------------------------------------
@dataclass
class Sample:
    """One point of the curve; sizes in rows and bytes."""

    wall_s: float
    events: int
    event_time_ms: int | None
    shard_rows: dict[str, int]
    shard_bytes: dict[str, int]
    gather_rows: int
    gather_bytes: int
    dedup_rows: int
    dedup_bytes: int
    snapshot_bytes: int
    rss_bytes: int
    closed: dict[str, int]


@dataclass
class Probe:
    """Keeps every stateful logic the flow builds, and samples them on the worker's thread.

    ``tick`` is called with each decoded batch; when ``interval_s`` has passed
    since the last sample it takes one, and after ``run_s`` it takes the last
    one and sets ``stop``, which ends the source.
    """

    interval_s: float
    run_s: float
    started: float = field(default_factory=time.monotonic)
    shards: dict[str, list[WindowShard]] = field(default_factory=dict)
    gathers: dict[str, WindowGather] = field(default_factory=dict)
    clocks: list[PartitionWatermark] = field(default_factory=list)
    events: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    table: list[Column] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def keep(self, *args: Any) -> None:
        """Keep a logic the flow built: ``keep(logic)`` or ``keep(analytic_name, logic)``."""
        name, logic = args if len(args) == 2 else (None, args[0])
        if isinstance(logic, WindowShard):
            self.shards.setdefault(name, []).append(logic)  # type: ignore[arg-type]
        elif isinstance(logic, WindowGather):
            self.gathers[name] = logic  # type: ignore[index]
        elif isinstance(logic, PartitionWatermark):
            self.clocks.append(logic)

    def count_closed(self, name: str, closed: ClosedWindows) -> None:
        self.closed[name] = self.closed.get(name, 0) + closed.rows.height

    def tick(self, events: int) -> None:
        self.events += events
        if self.stop.is_set():
            return
        elapsed = time.monotonic() - self.started
        due = (len(self.samples) + 1) * self.interval_s
        if elapsed >= min(due, self.run_s):
            self.samples.append(self.sample(elapsed))
            print(row(self.table, self.samples[-1], self.samples[-2] if len(self.samples) > 1 else None), flush=True)
            if elapsed >= self.run_s:
                self.stop.set()

    def sample(self, elapsed: float) -> Sample:
        shard_rows, shard_bytes = {}, {}
        for name, logics in self.shards.items():
            frames = [frame for logic in logics for frame in _shard_frames(logic)]
            shard_rows[name] = sum(frame.height for frame in frames)
            shard_bytes[name] = sum(frame.estimated_size() for frame in frames)
        gathered = [frame for logic in self.gathers.values() for frame in [*logic.pending, *logic.counts]]
        seen = [logic.clock.seen for logic in self.clocks if logic.clock.seen is not None]
        # What recovery would store; snapshot() merges pending partials, as Bytewax's own calls do.
        logics = [*(s for group in self.shards.values() for s in group), *self.gathers.values(), *self.clocks]
        snapshot_bytes = sum(len(pickle.dumps(logic.snapshot(), pickle.HIGHEST_PROTOCOL)) for logic in logics)
        times = [logic.clock.max_ts for logic in self.clocks if logic.clock.max_ts is not None]
        return Sample(
            wall_s=elapsed,
            events=self.events,
            event_time_ms=max(times) if times else None,
            shard_rows=shard_rows,
            shard_bytes=shard_bytes,
            gather_rows=sum(frame.height for frame in gathered),
            gather_bytes=sum(frame.estimated_size() for frame in gathered),
            dedup_rows=sum(ids.size for ids in seen),
            dedup_bytes=sum(g.ids.estimated_size() + g.hashes.nbytes + g.times.nbytes
                            for ids in seen for g in ids.generations),
            snapshot_bytes=snapshot_bytes,
            rss_bytes=rss_bytes(),
            closed=dict(self.closed),
        )


def _shard_frames(logic: WindowShard) -> list[pl.DataFrame]:
    return [*logic.state.frames(), *logic.dropped]


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- the flow -------------------------------------------------------------------------
class UntilStopped(FixedPartitionedSource):
    """A partitioned source whose partitions end once ``stop`` is set."""

    def __init__(self, inner: FixedPartitionedSource, stop: threading.Event):
        self.inner = inner
        self.stop = stop

    def partitions(self) -> list[str]:
        return self.inner.partitions()  # type: ignore[attr-defined]

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _UntilStoppedPartition:
        return _UntilStoppedPartition(self.inner.build_part(step_id, for_part, resume_state), self.stop)


class _UntilStoppedPartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition, stop: threading.Event):
        self.inner = inner
        self.stop = stop

    def next_batch(self) -> list[Any]:
        if self.stop.is_set():
            raise StopIteration
        return self.inner.next_batch()

    def next_awake(self) -> Any:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class Discard(DynamicSink):
    """Drops everything (the outputs are not what is measured)."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition:
        return _DiscardPartition()


class _DiscardPartition(StatelessSinkPartition):
    def write_batch(self, items: list[Any]) -> None:
        pass


def build(sim: SimSettings, specs: Sequence[WindowSpec], shards: int, probe: Probe) -> Dataflow:
    """The measured flow: simulator -> decode -> stamp -> every analytic -> discard."""
    source = ReadAheadSource(UntilStopped(SimSource(sim), probe.stop), decoder(EVENT_FIELDS), 2)
    partitions = source.partitions()
    horizon_ms = LATENESS_MS + max(spec.window.extent_ms for spec in specs)

    flow = Dataflow("state_size")
    raw = op.input("read", flow, source)  # RawBatch (decoded ahead) per partition
    decoded = decode("decode", raw, EVENT_FIELDS)  # Decoded(events, dead_letters, tallies)
    op.inspect("sample_state", decoded.events, lambda _step, batch: probe.tick(batch.events.height))
    stamped = stamp_event_time(  # StampedBatch
        "stamp_event_time", decoded.events, LATENESS_MS, horizon_ms, observe=probe.keep
    )
    outputs = [decoded.dead_letters]
    for spec in specs:
        windowed = window(  # Windowed
            f"{spec.name}_windows", stamped, spec, partitions, shards, observe=functools.partial(probe.keep, spec.name)
        )
        count = functools.partial(probe.count_closed, spec.name)
        op.inspect(f"count_{spec.name}_closed", windowed.results, lambda _step, kv, count=count: count(kv[1]))
        outputs += [windowed.results, windowed.late, windowed.quality]
    op.output("discard", op.merge("everything", *outputs), Discard())
    return flow


# -- the report -----------------------------------------------------------------------
SHORT = {"trends": "trends", "trends_sliding": "sliding", "sessions": "sessions"}


@dataclass(frozen=True)
class Column:
    """One column of the curve; ``size`` names the sizes checked for flatness."""

    label: str
    width: int
    value: Callable[[Sample, Sample | None], Any]
    spec: str = ",.0f"
    size: str | None = None

    def cell(self, sample: Sample, before: Sample | None) -> str:
        return format(self.value(sample, before), self.spec).rjust(self.width)


def columns(names: Sequence[str]) -> list[Column]:
    """Wall time, events, event time and traffic, then each analytic's state, then the rest."""
    per_analytic = [
        column
        for name in names
        for column in (
            Column(f"{SHORT[name]} open", 13, lambda s, _, n=name: s.shard_rows[n], size=f"{SHORT[name]} rows"),
            Column("MB", 6, lambda s, _, n=name: s.shard_bytes[n] / MB, ".1f", size=f"{SHORT[name]} MB"),
            Column("closed", 11, lambda s, _, n=name: s.closed.get(n, 0)),
        )
    ]
    return [
        Column("wall", 5, lambda s, _: "{}:{:02}".format(*divmod(round(s.wall_s), 60)), ""),
        Column("events", 11, lambda s, _: s.events),
        Column("events/s", 8, events_per_second),
        Column("ev time", 7, lambda s, _: since_start(s.event_time_ms), ""),
        Column("traffic", 7, lambda s, _: daily_cycle(s.event_time_ms or START_MS), ".2f"),
        *per_analytic,
        Column("gather rows", 11, lambda s, _: s.gather_rows, size="gather rows"),
        Column("KB", 6, lambda s, _: s.gather_bytes / 1024, size="gather KB"),
        Column("dedup ids", 10, lambda s, _: s.dedup_rows, size="dedup ids"),
        Column("MB", 6, lambda s, _: s.dedup_bytes / MB, ".1f", size="dedup MB"),
        Column("snapshot MB", 11, lambda s, _: s.snapshot_bytes / MB, ".1f", size="snapshot MB"),
        Column("RSS MB", 6, lambda s, _: s.rss_bytes / MB, size="RSS MB"),
    ]


def events_per_second(sample: Sample, before: Sample | None) -> float:
    """Wall-clock rate since the sample before (since the start for the first)."""
    events, seconds = sample.events, sample.wall_s
    if before is not None:
        events, seconds = events - before.events, seconds - before.wall_s
    return events / seconds if seconds > 0 else 0.0


def since_start(ts_ms: int | None) -> str:
    """Event time as h:mm since the simulation's start."""
    if ts_ms is None:
        return "-"
    minutes = (ts_ms - START_MS) // 60_000
    return f"{minutes // 60}:{minutes % 60:02}"


def header(table: Sequence[Column]) -> str:
    return " ".join(column.label.rjust(column.width) for column in table)


def row(table: Sequence[Column], sample: Sample, before: Sample | None) -> str:
    return " ".join(column.cell(sample, before) for column in table)


def flatness(table: Sequence[Column], samples: Sequence[Sample], warm_up_ms: int) -> list[str]:
    """Min, max and max/min of each size over the samples past warm-up (in event time)."""
    warm = [s for s in samples if s.event_time_ms is not None and s.event_time_ms - START_MS >= warm_up_ms]
    if len(warm) < 2:
        return [f"fewer than two samples past the warm-up ({warm_up_ms / 60_000:.1f} min of event time): run longer"]
    lines = [f"after the warm-up ({warm_up_ms / 60_000:.1f} min of event time), {len(warm)} samples:"]
    for column in table:
        if column.size is None:
            continue
        values = [column.value(s, None) for s in warm]
        low, high = min(values), max(values)
        ratio = f"{high / low:.2f}" if low else "-"
        low_text, high_text = format(low, column.spec), format(high, column.spec)
        lines.append(f"  {column.size:<16} {low_text:>12} .. {high_text:>12}  max/min {ratio}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes to run")
    parser.add_argument("--interval", type=float, default=30.0, help="wall-clock seconds between samples")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="mean events per second of event time")
    parser.add_argument("--partitions", type=int, default=4, help="simulator partitions")
    parser.add_argument("--shards", type=int, default=8, help="window state shards (DMP_SHARDS)")
    args = parser.parse_args()

    sim = SimSettings(events=0, speed=0, users=args.users, products=args.products,
                      events_per_second=args.rate, partitions=args.partitions, start_ms=START_MS)
    specs = analytics()
    probe = Probe(args.interval, args.minutes * 60, table=columns([spec.name for spec in specs]))
    flow = build(sim, specs, args.shards, probe)
    print(f"simulator: {args.users:,} users, {args.products:,} products, {args.rate:,.0f} events/s of event time, "
          f"{args.partitions} partitions, from {START}; {args.shards} shards, 1 worker; "
          f"a sample every {args.interval:g} s for {args.minutes:g} min", flush=True)
    print(header(probe.table), flush=True)
    probe.started = time.monotonic()
    run_main(flow)
    print(f"stopped after {time.monotonic() - probe.started:.0f} s (the end of input closes every window)")
    print()
    print(header(probe.table))
    for index, sample in enumerate(probe.samples):
        print(row(probe.table, sample, probe.samples[index - 1] if index else None))
    print()
    print("\n".join(flatness(probe.table, probe.samples, LATENESS_MS + 2 * SESSION_GAP_MS)))


if __name__ == "__main__":
    main()
