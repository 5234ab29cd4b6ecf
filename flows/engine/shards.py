"""Keyed window state sharded over workers: route, shard, gather.

1. :func:`route` (per source batch, where the batch is): assign windows,
   split off late events, reduce what is on time (partial aggregates, or the
   raw rows a function needs) and send each shard its part together with
   the partition's watermark. Every shard hears every partition's watermark
   in partition order, because the watermark travels in-band with the data.
2. :class:`WindowShard` (a ``stateful_batch`` keyed by shard, named by
   :func:`~flows.engine.routing.balanced_keys` so shards spread evenly):
   hold what arrives (:mod:`flows.engine.state`), and close a window when
   the minimum watermark over the declared partitions (leaving out idle
   ones) reaches its end; a session when it reaches its end plus the gap
   (only then can no on-time event still touch it). Closed windows leave
   state at once.
3. :class:`WindowGather` (one key per analytic, fixed windows): once every
   shard has closed a window, emit all its rows together, exactly once, in
   window order, and a quality row for it. :class:`SessionGather` (sessions,
   when asked for): emit closed sessions in one deterministic order, for
   analytics that consume them in sequence.

Results depend only on the events and the settings, never on batch sizes,
worker counts or how partitions interleave (tests/oracle.py checks it).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import EVENTS, LAST_TS, Analytic, WindowedAggregate
from flows.engine.errors import DmpError, StateError
from flows.engine.lateness import MISSED, split_late
from flows.engine.routing import balanced_keys
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, StampedBatch
from flows.engine.sessions import session_partials
from flows.engine.state import open_state, split_closed
from flows.engine.windows import WINDOW_END, WINDOW_START, FixedWindow, SessionWindow, Window

QUALITY_COUNTS = ("late", "duplicates", "dead_letters")


@dataclass(frozen=True)
class ShardUpdate:
    """What one source batch tells one shard: its rows and the partition's watermark."""

    partition: str
    rows: pl.DataFrame
    watermark: int
    idle: bool = False
    read_at: float = 0.0


@dataclass(frozen=True)
class Routed:
    """A source batch split for an analytic: late events, one update per shard, quality counts."""

    partition: str
    late: pl.DataFrame
    updates: list[tuple[str, ShardUpdate]]
    tally: pl.DataFrame | None  # window_start, late, duplicates, dead_letters


@dataclass(frozen=True)
class ClosedWindows:
    """What a shard has just closed, and how far it has closed.

    ``rows``: result rows (partial aggregates merged, with their ``events``,
    or a function's output). ``counts``: a function's on-time events per
    window (aggregates count theirs in ``rows``). Every window ending at or
    before ``closed_until`` is final at this shard; ``watermark`` is the
    minimum watermark that closed them. ``dropped``: events that reached a
    window after it closed, per window (only possible after idleness).
    ``read_at``: when the source batch whose progress released them was read
    (wall-clock seconds; the earliest, if several; ``None`` at the end of
    input), for latency figures.
    """

    rows: pl.DataFrame
    closed_until: int
    watermark: int = BEGINNING_OF_TIME
    counts: pl.DataFrame | None = None
    dropped: pl.DataFrame | None = None
    read_at: float | None = None


def shard_of(frame: pl.DataFrame, keys: Sequence[str], shards: int) -> pl.Series:
    """Stable shard number of each row's key: CRC-32 of the key text, mod ``shards``.

    CRC-32 is the same in every process, platform and library version, so a
    key's state stays on one shard across workers and restarts. It is
    computed once per distinct key in the frame. No keys: shard 0.

    >>> shard_of(pl.DataFrame({"product_id": ["a", "b", "a"]}), ["product_id"], 16).to_list()
    [3, 9, 3]
    """
    if not keys:
        return pl.Series("_shard", [0] * frame.height, dtype=pl.UInt32)
    text = pl.col(keys[0]) if len(keys) == 1 else pl.concat_str([pl.col(k) for k in keys], separator="\x1f")
    key_text = frame.select(text.fill_null("").alias("_key"))["_key"]
    distinct = key_text.unique()
    numbers = [zlib.crc32(key.encode()) % shards for key in distinct.to_list()]
    lookup = pl.DataFrame({"_key": distinct, "_shard": pl.Series(numbers, dtype=pl.UInt32)})
    return key_text.to_frame().join(lookup, on="_key", how="left", maintain_order="left")["_shard"]


def route(batch: StampedBatch, spec: Analytic, shards: int) -> Routed:
    """Split one stamped batch into late events, per-shard updates and quality counts."""
    on_time, late = split_late(batch.events, spec.window)
    if isinstance(spec, WindowedAggregate):
        rows = session_partials(on_time, spec) if isinstance(spec.window, SessionWindow) else spec.partial(on_time)
    else:
        rows = on_time.select([*spec.needed, WINDOW_START] if not isinstance(spec.window, SessionWindow) else spec.needed)
    by_shard: dict[int, pl.DataFrame] = {}
    if rows.height:
        rows = rows.with_columns(shard_of(rows, spec.keys, shards).alias("_shard"))
        for (number,), part in rows.partition_by("_shard", as_dict=True).items():
            by_shard[int(number)] = part.drop("_shard")
    empty = rows.clear().drop("_shard", strict=False)
    updates = [
        (key, ShardUpdate(batch.partition, by_shard.get(number, empty), batch.watermark, batch.idle, batch.read_at))
        for number, key in enumerate(balanced_keys(shards))
    ]
    tally = None if isinstance(spec.window, SessionWindow) else quality_tally(batch, late, spec.window)
    return Routed(batch.partition, late, updates, tally)


def quality_tally(batch: StampedBatch, late: pl.DataFrame, window: FixedWindow) -> pl.DataFrame | None:
    """Late events, duplicates and dead letters of one batch, counted per window.

    Late events count in every window they missed; duplicates in every
    window their time falls in; dead letters (which have no time) in the
    (latest) window of the partition's newest event when they arrived.
    """
    parts = []
    if late.height:
        parts.append(late.select(pl.col(MISSED).explode().alias(WINDOW_START), pl.lit("late").alias("kind")))
    if batch.duplicates is not None and batch.duplicates.height:
        assigned = window.assign(batch.duplicates.select("ts"))
        parts.append(assigned.select(WINDOW_START, pl.lit("duplicates").alias("kind")))
    if batch.dead_letters and batch.stream_time is not None:
        start = (batch.stream_time // window.slide_ms) * window.slide_ms  # the latest window holding it
        parts.append(pl.DataFrame({WINDOW_START: [start] * batch.dead_letters, "kind": ["dead_letters"] * batch.dead_letters}))
    if not parts:
        return None
    counted = pl.concat(parts, how="vertical").group_by(WINDOW_START).agg(
        (pl.col("kind") == kind).sum().cast(pl.Int64).alias(kind) for kind in QUALITY_COUNTS
    )
    return counted


@dataclass
class ShardState:
    """Snapshot of one shard: partition watermarks and idleness, open state, progress."""

    shards: int
    watermarks: dict[str, int]
    idle: set[str]
    open: pl.DataFrame | None
    closed_until: int


class WindowShard(StatefulBatchLogic[ShardUpdate, ClosedWindows, ShardState]):
    """Window state of one shard of one analytic; see the module docstring."""

    def __init__(self, spec: Analytic, partitions: Sequence[str], shards: int, resume: ShardState | None) -> None:
        self.spec = spec
        self.window: Window = spec.window
        self.shards = shards
        if resume is not None and resume.shards != shards:
            msg = (
                f"window state of {spec.name!r} was written with DMP_SHARDS={resume.shards} "
                f"but this run has DMP_SHARDS={shards}; keys would land on other shards. "
                "Run with the same DMP_SHARDS or start from an empty recovery store."
            )
            raise StateError(msg)
        known = resume.watermarks if resume is not None else {}
        self.watermarks = {p: known.get(p, BEGINNING_OF_TIME) for p in partitions}
        self.idle = set(resume.idle) & set(partitions) if resume is not None else set()
        self.state = open_state(spec, resume.open if resume is not None else None)
        self.dropped: list[pl.DataFrame] = []
        self.closed_until = resume.closed_until if resume is not None else BEGINNING_OF_TIME

    # -- input ----------------------------------------------------------------------
    def on_batch(self, values: list[ShardUpdate]) -> tuple[list[ClosedWindows], bool]:
        progressed: list[float] = []  # read times of the batches that moved a watermark
        for update in values:
            if update.partition not in self.watermarks:
                msg = (
                    f"window {self.spec.name!r} got a batch from partition {update.partition!r}, "
                    f"which the flow did not declare (declared: {sorted(self.watermarks)}); "
                    "pass every source partition to the flow's `partitions`"
                )
                raise DmpError(msg)
            if update.idle:
                self.idle.add(update.partition)
            else:
                self.idle.discard(update.partition)
            if update.rows.height:
                self._take(update.rows)
            if update.watermark > self.watermarks[update.partition]:
                self.watermarks[update.partition] = update.watermark
                progressed.append(update.read_at)
        return self._close(self._progress(), min(progressed, default=None)), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[ClosedWindows], bool]:
        # End of input: every partition has ended, so every window closes.
        return self._close(END_OF_TIME), StatefulBatchLogic.RETAIN

    def _progress(self) -> int:
        """The minimum watermark of the partitions that are not idle (all idle: the maximum)."""
        active = [wm for partition, wm in self.watermarks.items() if partition not in self.idle]
        return min(active) if active else max(self.watermarks.values())

    def _take(self, rows: pl.DataFrame) -> None:
        if not isinstance(self.window, SessionWindow) and self.closed_until > BEGINNING_OF_TIME:
            # A window that already closed can only get rows after a partition
            # was left out as idle and came back with old events: count them.
            ends = rows[WINDOW_START] + self.window.size_ms
            if ends.min() <= self.closed_until:
                late_rows, rows = split_closed(rows, ends, self.closed_until)
                self.dropped.append(self._counts(late_rows))
        if rows.height:
            self.state.add(rows)

    # -- closing ----------------------------------------------------------------------
    def _close(self, watermark: int, read_at: float | None = None) -> list[ClosedWindows]:
        if watermark >= END_OF_TIME:
            until = END_OF_TIME
        elif isinstance(self.window, SessionWindow):
            until = watermark
        else:
            until = self.window.closed_until(watermark)
        if until <= self.closed_until and not self.dropped:
            return []
        done = self.state.close(until)
        if done is None and not self.spec.gathers and not self.dropped:
            self.closed_until = max(until, self.closed_until)
            return []  # sessions: nothing closed, and nobody waits for progress
        self.closed_until = max(until, self.closed_until)
        rows, counts = self._results(done)
        dropped = pl.concat(self.dropped, how="vertical") if self.dropped else None
        self.dropped = []
        # Fixed windows: emitted even when empty, the gather step needs every shard's progress.
        return [ClosedWindows(rows, self.closed_until, watermark, counts, dropped, read_at)]

    def _results(self, done: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        if isinstance(self.spec, WindowedAggregate):
            # The rows carry their event counts; the gather step adds them up once.
            rows = done if done is not None else self.spec.empty()
            if isinstance(self.window, SessionWindow):
                rows = rows.with_columns((pl.col(LAST_TS) + self.window.gap_ms).alias(WINDOW_END))
            return rows, None
        if done is None:
            return pl.DataFrame(), None
        counts = self._counts(done) if self.spec.gathers else None
        if isinstance(self.window, SessionWindow):
            done = done.with_columns((pl.col(LAST_TS) + self.window.gap_ms).alias(WINDOW_END))
        return self.spec.function(done), counts

    def _counts(self, rows: pl.DataFrame) -> pl.DataFrame:
        if isinstance(self.spec, WindowedAggregate):
            return rows.group_by(WINDOW_START).agg(pl.col(EVENTS).sum())
        return rows.group_by(WINDOW_START).agg(pl.len().cast(pl.Int64).alias(EVENTS))

    def snapshot(self) -> ShardState:
        return ShardState(self.shards, dict(self.watermarks), set(self.idle), self.state.held(), self.closed_until)


@dataclass
class GatherState:
    """Snapshot of a gather step: each shard's progress, rows and counts not yet complete."""

    progress: dict[str, int]
    watermarks: dict[str, int]
    pending: pl.DataFrame | None
    counts: pl.DataFrame | None
    closed_until: int


GatherItem = tuple  # ("closed", shard, ClosedWindows) | ("tally", frame)


class WindowGather(StatefulBatchLogic[GatherItem, object, GatherState]):
    """Assembles complete windows from what every shard closed; emits each once.

    Runs under one key per analytic. A window is complete when every shard
    has closed it; then its rows from all shards go out together (a
    :class:`ClosedWindows`), sorted by window and key, in window order,
    followed by its quality row (a frame, see :data:`QUALITY_SCHEMA`):
    on-time events, and the late events, duplicates and dead letters known
    when it closed, marked ``report = "at_close"``. News about a window that
    arrives after it closed (a very late event, or rows dropped after an
    idle partition came back) goes out as an ``"after_close"`` row, so
    summing a window's quality rows always reconciles with the other outputs.
    """

    def __init__(self, spec: Analytic, shards: int, resume: GatherState | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.window: FixedWindow = spec.window  # type: ignore[assignment]
        self.clock = clock
        keys = balanced_keys(shards)
        known = resume.progress if resume is not None else {}
        self.progress = {key: known.get(key, BEGINNING_OF_TIME) for key in keys}
        marks = resume.watermarks if resume is not None else {}
        self.watermarks = {key: marks.get(key, BEGINNING_OF_TIME) for key in keys}
        self.pending: list[pl.DataFrame] = [resume.pending] if resume is not None and resume.pending is not None else []
        self.counts: list[pl.DataFrame] = [resume.counts] if resume is not None and resume.counts is not None else []
        self.closed_until = resume.closed_until if resume is not None else BEGINNING_OF_TIME

    def on_batch(self, values: list[GatherItem]) -> tuple[list[object], bool]:
        read_at = []
        for item in values:
            if item[0] == "tally":
                self.counts.append(_as_counts(item[1]))
                continue
            _, shard, closed = item
            if shard not in self.progress:
                msg = f"gather of {self.spec.name!r} got shard {shard!r}, not one of {sorted(self.progress)}"
                raise DmpError(msg)
            if closed.read_at is not None:
                read_at.append(closed.read_at)
            self.progress[shard] = max(self.progress[shard], closed.closed_until)
            self.watermarks[shard] = max(self.watermarks[shard], closed.watermark)
            if closed.rows.height:
                self.pending.append(closed.rows)
            if closed.counts is not None and closed.counts.height:
                self.counts.append(_as_counts(closed.counts, EVENTS))
            if closed.dropped is not None and closed.dropped.height:
                self.counts.append(_as_counts(closed.dropped, DROPPED))
        return self._emit(min(self.progress.values()), min(read_at, default=None)), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[object], bool]:
        return self._emit(END_OF_TIME), StatefulBatchLogic.RETAIN

    def _emit(self, until: int, read_at: float | None = None) -> list[object]:
        out: list[object] = []
        before, size = self.closed_until, self.window.size_ms
        if until > before and self.pending:
            rows = self.pending[0] if len(self.pending) == 1 else pl.concat(self.pending, how="vertical_relaxed")
            done, rest = split_closed(rows, rows[WINDOW_START] + size, until)
            self.pending = [rest] if rest.height else []
            if done.height:
                out.append(ClosedWindows(done.sort(self.spec.group), until, self._watermark(), read_at=read_at))
                if isinstance(self.spec, WindowedAggregate):
                    counts = done.group_by(WINDOW_START).agg(pl.col(EVENTS).sum())
                    self.counts.append(_as_counts(counts, EVENTS))
        self.closed_until = max(until, before)
        if self.counts:
            counts = self.counts[0] if len(self.counts) == 1 else pl.concat(self.counts, how="vertical")
            done, rest = split_closed(counts, counts[WINDOW_START] + size, self.closed_until)
            self.counts = [rest] if rest.height else []
            if done.height:
                old, fresh = split_closed(done, done[WINDOW_START] + size, before)
                if fresh.height:
                    out.append(self._quality(fresh, "at_close"))
                if old.height:
                    out.append(self._quality(old, "after_close"))
        return out

    def _watermark(self) -> int:
        return min(self.watermarks.values())

    def _quality(self, counts: pl.DataFrame, report: str) -> pl.DataFrame:
        """Quality rows of windows (``report``: ``at_close`` or ``after_close``)."""
        watermark = self._watermark()
        known = watermark < END_OF_TIME and watermark > BEGINNING_OF_TIME
        now_ms = int(self.clock() * 1000)
        totals = counts.group_by(WINDOW_START).agg(pl.col(COUNT_COLUMNS).sum()).sort(WINDOW_START)
        return totals.select(
            WINDOW_START,
            (pl.col(WINDOW_START) + self.window.size_ms).alias(WINDOW_END),
            pl.lit(report).alias("report"),
            *COUNT_COLUMNS,
            pl.lit(watermark if known else None, pl.Int64).alias("watermark"),
            pl.lit((now_ms - watermark) / 1000 if known else None, pl.Float64).alias("watermark_lag_s"),
            pl.lit(now_ms, pl.Int64).alias("reported_at"),
        )

    def snapshot(self) -> GatherState:
        pending = pl.concat(self.pending, how="vertical_relaxed") if self.pending else None
        counts = pl.concat(self.counts, how="vertical") if self.counts else None
        self.pending = [pending] if pending is not None else []
        self.counts = [counts] if counts is not None else []
        return GatherState(dict(self.progress), dict(self.watermarks), pending, counts, self.closed_until)


@dataclass
class SessionGatherState:
    progress: dict[str, int]
    pending: pl.DataFrame | None


class SessionGather(StatefulBatchLogic[GatherItem, ClosedWindows, SessionGatherState]):
    """Closed sessions of every shard, released in one order that never depends on timing.

    Runs under one key per analytic. A session closes at ``last_ts + 2 *
    gap``, so once every shard has closed up to ``U``, every session closing
    at or before ``U`` is here: they are released, sorted by (closing point,
    keys, start), as a :class:`ClosedWindows` whose ``closed_until`` is
    ``U``. Concatenated, the releases are the same sequence of sessions for
    any batching, interleaving or worker count.
    """

    def __init__(self, spec: Analytic, shards: int, resume: SessionGatherState | None) -> None:
        if not isinstance(spec, WindowedAggregate):
            # A function's result rows need not carry their session's last event, which orders them.
            msg = f"{spec.name!r}: only a WindowedAggregate's sessions can be gathered, not a function's"
            raise DmpError(msg)
        self.spec = spec
        self.gap = spec.window.gap_ms  # type: ignore[union-attr]
        known = resume.progress if resume is not None else {}
        self.progress = {key: known.get(key, BEGINNING_OF_TIME) for key in balanced_keys(shards)}
        self.pending: list[pl.DataFrame] = [resume.pending] if resume is not None and resume.pending is not None else []
        self.closed_until = BEGINNING_OF_TIME

    def on_batch(self, values: list[GatherItem]) -> tuple[list[ClosedWindows], bool]:
        for _, shard, closed in values:
            if shard not in self.progress:
                msg = f"gather of {self.spec.name!r} got shard {shard!r}, not one of {sorted(self.progress)}"
                raise DmpError(msg)
            self.progress[shard] = max(self.progress[shard], closed.closed_until)
            if closed.rows.height:
                self.pending.append(closed.rows)
        read_at = min((closed.read_at for _, _, closed in values if closed.read_at is not None), default=None)
        return self._release(min(self.progress.values()), read_at), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[ClosedWindows], bool]:
        return self._release(END_OF_TIME), StatefulBatchLogic.RETAIN

    def _release(self, until: int, read_at: float | None = None) -> list[ClosedWindows]:
        if until <= self.closed_until:
            return []
        self.closed_until = until
        empty = self.spec.empty().with_columns(pl.lit(None, pl.Int64).alias(WINDOW_END))  # as shards send them
        rows = pl.concat(self.pending, how="vertical") if self.pending else empty
        done, rest = split_closed(rows, rows[LAST_TS] + 2 * self.gap, until)
        self.pending = [rest] if rest.height else []
        # Closing points are last_ts + 2 * gap: ordering by last_ts orders by close.
        return [ClosedWindows(done.sort([LAST_TS, *self.spec.keys, WINDOW_START]), until, until, read_at=read_at)]

    def snapshot(self) -> SessionGatherState:
        pending = pl.concat(self.pending, how="vertical") if self.pending else None
        self.pending = [pending] if pending is not None else []
        return SessionGatherState(dict(self.progress), pending)


DROPPED = "dropped_after_idle"
COUNT_COLUMNS = (EVENTS, *QUALITY_COUNTS, DROPPED)
QUALITY_SCHEMA = pl.Schema(
    {
        WINDOW_START: pl.Int64,
        WINDOW_END: pl.Int64,
        "report": pl.String,
        **{name: pl.Int64 for name in COUNT_COLUMNS},
        "watermark": pl.Int64,
        "watermark_lag_s": pl.Float64,
        "reported_at": pl.Int64,
    }
)
"""One quality row (engine form; outputs render times as ISO-8601)."""


def _as_counts(counts: pl.DataFrame, column: str | None = None) -> pl.DataFrame:
    """Any per-window counts as rows of every count column (zeros elsewhere).

    ``column`` names where a frame's ``events`` go (tallies already have theirs).
    """
    present = counts.columns
    if column is not None:
        counts = counts.rename({EVENTS: column})
        present = [WINDOW_START, column]
    return counts.select(
        WINDOW_START,
        *(pl.col(c).cast(pl.Int64) if c in present else pl.lit(0, pl.Int64).alias(c) for c in COUNT_COLUMNS),
    )
