"""Per-partition event-time progress: the watermark each event meets.

In: :class:`EventBatch` items of one source partition, in partition order
(this logic runs in a ``stateful_batch`` keyed by partition). Out:
:class:`StampedBatch` items: the same events with a ``watermark`` column
holding the partition's watermark *just before* each event arrived, and the
partition's watermark after the batch.

A partition's watermark is the largest event time it has delivered so far
minus the allowed lateness (event by event, in partition order), and
:data:`END_OF_TIME` once the partition has ended. Deciding lateness is left
to each windowed analytic, because an event is late for a window, not in
general: it is late when its window's end is <= the watermark it met.

State is one integer per partition, so it snapshots with the source's
position and a resumed run stamps exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, EventBatch, StampedBatch


@dataclass
class PartitionClock:
    """Snapshot of one partition's event-time progress."""

    max_ts: int | None = None
    ended: bool = False


def stamp(events: pl.DataFrame, max_ts: int | None, lateness_ms: int) -> tuple[pl.DataFrame, int | None]:
    """Add the ``watermark`` each event met; return it with the new largest event time.

    >>> frame = pl.DataFrame({"ts": [10, 5, 30, 20]})
    >>> stamped, new_max = stamp(frame, max_ts=12, lateness_ms=4)
    >>> stamped["watermark"].to_list(), new_max
    ([8, 8, 8, 26], 30)
    """
    carry = BEGINNING_OF_TIME if max_ts is None else max_ts
    seen_before = pl.max_horizontal(pl.col("ts").cum_max().shift(1, fill_value=carry), pl.lit(carry))
    watermark = pl.when(seen_before == BEGINNING_OF_TIME).then(BEGINNING_OF_TIME).otherwise(seen_before - lateness_ms)
    stamped = events.with_columns(watermark.alias("watermark"))
    if events.height:
        batch_max = events["ts"].max()
        max_ts = batch_max if max_ts is None else max(max_ts, batch_max)  # type: ignore[type-var]
    return stamped, max_ts


class PartitionWatermark(StatefulBatchLogic[EventBatch, StampedBatch, PartitionClock]):
    """Stamps the events of one partition; see the module docstring."""

    def __init__(self, lateness_ms: int, resume: PartitionClock | None) -> None:
        self.lateness_ms = lateness_ms
        self.clock = resume if resume is not None else PartitionClock()

    def on_batch(self, values: list[EventBatch]) -> tuple[list[StampedBatch], bool]:
        out = []
        for batch in values:
            events, self.clock.max_ts = stamp(batch.events, self.clock.max_ts, self.lateness_ms)
            self.clock.ended = self.clock.ended or batch.last
            out.append(StampedBatch(batch.partition, events, self.watermark(), batch.read_at))
        return out, StatefulBatchLogic.RETAIN

    def watermark(self) -> int:
        if self.clock.ended:
            return END_OF_TIME
        if self.clock.max_ts is None:
            return BEGINNING_OF_TIME
        return self.clock.max_ts - self.lateness_ms

    def snapshot(self) -> PartitionClock:
        return PartitionClock(self.clock.max_ts, self.clock.ended)
