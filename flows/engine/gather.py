"""Gathering: what every shard closed -> complete windows, each emitted once, in order.

:class:`WindowGather` (one key per analytic, fixed windows): once every
shard has closed a window, emit all its rows together, exactly once, in
window order, and a quality row for it. :class:`SessionGather` (sessions,
when asked for): emit closed sessions in one deterministic order, for
analytics that consume them in sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import EVENTS, LAST_TS, WindowSpec
from flows.engine.errors import DmpError
from flows.engine.placement import balanced_keys
from flows.engine.schema import AS_OF, BEGINNING_OF_TIME, COUNT_COLUMNS, DROPPED, END_OF_TIME, ClosedWindows
from flows.engine.state import split_closed
from flows.engine.windows import WINDOW_END, WINDOW_START, FixedWindow


@dataclass
class GatherState:
    """Snapshot of a gather step: each shard's progress, rows and counts not yet complete."""

    progress: dict[str, int]
    watermarks: dict[str, int]
    pending: list[pl.DataFrame]
    counts: list[pl.DataFrame]
    closed_until: int


GatherItem = tuple  # ("closed", shard, ClosedWindows)


class WindowGather(StatefulBatchLogic[GatherItem, object, GatherState]):
    """Assembles complete windows from what every shard closed; emits each once.

    Runs under one key per analytic. A window is complete when every shard
    has closed it; then its rows from all shards go out together (a
    :class:`ClosedWindows`), sorted by window and key, in window order.

    Quality rows (frames, see :data:`QUALITY_SCHEMA`) come one window later:
    every late event, duplicate and dead letter is reported ``as_of`` the
    window end its partition's watermark had reached when it came (routed
    with that watermark through the first shard, see
    :func:`~flows.engine.routing.route`), so once every shard has passed
    ``as_of`` plus one slide, no more news of that report can come. A
    window's ``at_close`` row (``as_of`` its own end) has its on-time events
    and the news reported by then; news reported later (a very late event, or
    rows dropped after an idle partition came back) goes out as an
    ``after_close`` row for that ``as_of``. So a window's rows add up to exact
    totals, and, but for idleness, are the same whatever the batching, the
    interleaving of partitions or the worker count.
    """

    STEP = "gather_windows"

    def __init__(self, spec: WindowSpec, shards: int, resume: GatherState | None) -> None:
        self.spec = spec
        self.window: FixedWindow = spec.window  # type: ignore[assignment]
        keys = balanced_keys(shards)
        known = resume.progress if resume is not None else {}
        self.progress = {key: known.get(key, BEGINNING_OF_TIME) for key in keys}
        marks = resume.watermarks if resume is not None else {}
        self.watermarks = {key: marks.get(key, BEGINNING_OF_TIME) for key in keys}
        self.pending: list[pl.DataFrame] = list(resume.pending) if resume is not None else []
        self.counts: list[pl.DataFrame] = list(resume.counts) if resume is not None else []
        self.closed_until = resume.closed_until if resume is not None else BEGINNING_OF_TIME

    def on_batch(self, values: list[GatherItem]) -> tuple[list[object], bool]:
        read_at = []
        for item in values:
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
                self.counts.append(self._at_close(closed.counts))
            if closed.dropped is not None and closed.dropped.height:
                self.counts.append(self._unreported(_as_counts(closed.dropped, DROPPED)))
            if closed.news is not None and closed.news.height:
                self.counts.append(self._unreported(_as_counts(closed.news)))
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
                counts = self.spec.emitted_counts(done)
                if counts is not None:
                    self.counts.append(self._at_close(counts))
        self.closed_until = max(until, before)
        if self.counts:
            counts = self.counts[0] if len(self.counts) == 1 else pl.concat(self.counts, how="vertical")
            # A report is complete once every shard has passed its as_of by one slide (see the docstring).
            done, rest = split_closed(counts, counts[AS_OF] + self.window.slide_ms, self.closed_until)
            self.counts = [rest] if rest.height else []
            if done.height:
                out.append(self._quality(done))
        return out

    def _watermark(self) -> int:
        return min(self.watermarks.values())

    def _unreported(self, counts: pl.DataFrame) -> pl.DataFrame:
        """News as of a report already made (only when an idle partition comes back) joins the next one."""
        if self.closed_until == BEGINNING_OF_TIME:
            return counts
        return counts.with_columns(pl.max_horizontal(AS_OF, pl.lit(self.closed_until)).alias(AS_OF))

    def _at_close(self, counts: pl.DataFrame) -> pl.DataFrame:
        """On-time events per window, reported as of the window's end."""
        return _as_counts(counts.with_columns((pl.col(WINDOW_START) + self.window.size_ms).alias(AS_OF)), EVENTS)

    def _quality(self, counts: pl.DataFrame) -> pl.DataFrame:
        """Quality rows of complete reports: one per window and ``as_of``, ``at_close`` at the window's end."""
        size = self.window.size_ms
        totals = counts.group_by(WINDOW_START, AS_OF).agg(pl.col(COUNT_COLUMNS).sum()).sort(WINDOW_START, AS_OF)
        return totals.select(
            WINDOW_START,
            (pl.col(WINDOW_START) + size).alias(WINDOW_END),
            pl.when(pl.col(AS_OF) == pl.col(WINDOW_START) + size).then(pl.lit("at_close"))
            .otherwise(pl.lit("after_close")).alias("report"),
            AS_OF,
            *COUNT_COLUMNS,
        )

    def snapshot(self) -> GatherState:
        # Frames as they are: Bytewax snapshots every epoch, recovery or not.
        return GatherState(dict(self.progress), dict(self.watermarks), list(self.pending), list(self.counts),
                           self.closed_until)


@dataclass
class SessionGatherState:
    progress: dict[str, int]
    pending: list[pl.DataFrame]


class SessionGather(StatefulBatchLogic[GatherItem, ClosedWindows, SessionGatherState]):
    """Closed sessions of every shard, released in one order that never depends on timing.

    Runs under one key per analytic. A session closes at ``last_ts + 2 *
    gap``, so once every shard has closed up to ``U``, every session closing
    at or before ``U`` is here: they are released, sorted by (closing point,
    keys, start), as a :class:`ClosedWindows` whose ``closed_until`` is
    ``U``. Concatenated, the releases are the same sequence of sessions for
    any batching, interleaving or worker count.
    """

    STEP = "gather_sessions"

    def __init__(self, spec: WindowSpec, shards: int, resume: SessionGatherState | None) -> None:
        if not spec.results_carry_last_ts:
            # A function's result rows need not carry their session's last event, which orders them.
            msg = f"{spec.name!r}: only a WindowedAggregate's sessions can be gathered, not a function's"
            raise DmpError(msg)
        self.spec = spec
        self.gap = spec.window.gap_ms  # type: ignore[union-attr]
        known = resume.progress if resume is not None else {}
        self.progress = {key: known.get(key, BEGINNING_OF_TIME) for key in balanced_keys(shards)}
        self.pending: list[pl.DataFrame] = list(resume.pending) if resume is not None else []
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
        return SessionGatherState(dict(self.progress), list(self.pending))


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
        AS_OF,
        *(pl.col(c).cast(pl.Int64) if c in present else pl.lit(0, pl.Int64).alias(c) for c in COUNT_COLUMNS),
    )
