"""Shard state: the open windows of one shard of one analytic, closed as watermarks pass.

:class:`WindowShard` is a ``stateful_batch`` keyed by shard (names from
:func:`~flows.engine.placement.balanced_keys`, so shards spread evenly over
workers). It holds what :mod:`flows.engine.routing` sends it
(:mod:`flows.engine.state`) and closes a window when the minimum watermark
over the declared partitions (leaving out idle ones) reaches its end; a
session when it reaches its end plus the gap (only then can no on-time
event still touch it). Closed windows leave state at once and go to
:mod:`flows.engine.gather`.

Results depend only on the events and the settings, never on batch sizes,
worker counts or how partitions interleave (tests/oracle.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import WindowSpec
from flows.engine.errors import DmpError, StateError
from flows.engine.routing import PLACEMENT, ShardUpdate
from flows.engine.schema import AS_OF, BEGINNING_OF_TIME, END_OF_TIME, ClosedWindows
from flows.engine.state import open_state, split_closed
from flows.engine.windows import WINDOW_START, FixedWindow, Window


@dataclass
class ShardState:
    """Snapshot of one shard: partition watermarks and idleness, open state, progress."""

    shards: int
    placement: int
    """How keys were placed (:data:`~flows.engine.routing.PLACEMENT`) when this state was written."""
    watermarks: dict[str, int]
    idle: set[str]
    open: list[pl.DataFrame]
    closed_until: int
    news: list[pl.DataFrame]


class WindowShard(StatefulBatchLogic[ShardUpdate, ClosedWindows, ShardState]):
    """Window state of one shard of one analytic; see the module docstring."""

    def __init__(self, spec: WindowSpec, partitions: Sequence[str], shards: int, resume: ShardState | None) -> None:
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
        if resume is not None and resume.placement != PLACEMENT:
            msg = (
                f"window state of {spec.name!r} was written by a Polars that hashes keys differently "
                f"(a Polars upgrade?); keys would land on other shards. Resume with the Polars version that "
                "wrote it, or start from an empty recovery store."
            )
            raise StateError(msg)
        known = resume.watermarks if resume is not None else {}
        self.watermarks = {p: known.get(p, BEGINNING_OF_TIME) for p in partitions}
        self.idle = set(resume.idle) & set(partitions) if resume is not None else set()
        self.state = open_state(spec, resume.open if resume is not None else ())
        self.dropped: list[pl.DataFrame] = []
        self.news: list[pl.DataFrame] = list(resume.news) if resume is not None else []
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
            if update.news is not None and update.news.height:
                self.news.append(update.news)  # reported with the progress this update brings
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
        if self.closed_until > BEGINNING_OF_TIME:
            # A window that already closed can only get rows after a partition
            # was left out as idle and came back with old events: count them.
            ends = self.window.already_closed(rows, self.closed_until)
            if ends is not None:
                assert isinstance(self.window, FixedWindow)  # sessions never have rows of closed windows
                late_rows, rows = split_closed(rows, ends, self.closed_until)
                reported = pl.max_horizontal(pl.lit(self.closed_until), pl.col(WINDOW_START) + self.window.size_ms)
                self.dropped.append(self.spec.counts(late_rows).with_columns(reported.alias(AS_OF)))
        if rows.height:
            self.state.add(rows)

    # -- closing ----------------------------------------------------------------------
    def _close(self, watermark: int, read_at: float | None = None) -> list[ClosedWindows]:
        until = END_OF_TIME if watermark >= END_OF_TIME else self.window.closed_until(watermark)
        if until <= self.closed_until and not self.dropped and not self.news:
            return []
        done = self.state.close(until)
        if done is None and not self.spec.gathers and not self.dropped and not self.news:
            self.closed_until = max(until, self.closed_until)
            return []  # sessions: nothing closed, and nobody waits for progress
        self.closed_until = max(until, self.closed_until)
        rows, counts = self.spec.results(done)
        dropped = pl.concat(self.dropped, how="vertical") if self.dropped else None
        news = pl.concat(self.news, how="vertical") if self.news else None
        self.dropped, self.news = [], []
        # Fixed windows: emitted even when empty, the gather step needs every shard's progress.
        return [ClosedWindows(rows, self.closed_until, watermark, counts, dropped, read_at, news)]

    def snapshot(self) -> ShardState:
        return ShardState(self.shards, PLACEMENT, dict(self.watermarks), set(self.idle), self.state.held(),
                          self.closed_until, list(self.news))
