"""Per-partition event time: the watermark each event meets, and duplicates dropped.

In: :class:`EventBatch` items of one source partition, in partition order
(this logic runs in a ``stateful_batch`` keyed by partition). Out:
:class:`StampedBatch` items: the same events, each with the ``watermark``
column holding the partition's watermark *just before* it arrived, the
partition's watermark after the batch, and what was dropped as duplicates.

- Watermark: the largest event time the partition has delivered so far,
  event by event, minus the allowed lateness; :data:`END_OF_TIME` once the
  partition has ended. Deciding lateness is left to each windowed analytic,
  because an event is late for a window, not in general.
- Duplicates: an event whose ``event_id`` the same partition delivered
  before, at a time within a horizon (the allowed lateness plus the longest
  window: anything older is late anyway) of the newest time the partition
  had delivered, is dropped and counted. The first occurrence wins, in
  partition order, so the outcome does not depend on batching; events
  without an ``event_id`` are never duplicates. Duplicates do move the
  watermark like any event (a retried event has its original's time).
- Idle markers pass through: the partition's watermark stays, flagged idle.

State is small (an integer and the ids inside the horizon) and snapshots
with the source's position, so a resumed run stamps exactly as an
uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.dedup import SeenIds
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, SEQ, EventBatch, StampedBatch
from flows.engine.screen import Screen, ScreenState


@dataclass
class PartitionClock:
    """Snapshot of one partition's event-time progress and recent event ids."""

    max_ts: int | None = None
    ended: bool = False
    seen: SeenIds | None = None
    unplaced: int = 0
    """Dead letters that arrived before the partition's first event (no time to count them at yet)."""
    decoded: int = 0
    """Events the partition has decoded so far: the next one's ``seq``."""
    screened: ScreenState = field(default_factory=ScreenState)
    partition: str | None = None


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
        batch_max = cast(int, events["ts"].max())  # Polars types max() as any scalar; ts is Int64, not empty
        max_ts = batch_max if max_ts is None else max(max_ts, batch_max)
    return stamped, max_ts


class PartitionWatermark(StatefulBatchLogic[EventBatch, StampedBatch, PartitionClock]):
    """Stamps (and de-duplicates) the events of one partition; see the module docstring.

    ``dedup_horizon_ms`` of ``None`` turns de-duplication off.
    """

    def __init__(self, lateness_ms: int, dedup_horizon_ms: int | None, resume: PartitionClock | None,
                 screen: Screen | None = None) -> None:
        self.lateness_ms = lateness_ms
        self.horizon = dedup_horizon_ms
        self.screen = screen
        self.clock = resume if resume is not None else PartitionClock()

    def on_batch(self, values: list[EventBatch]) -> tuple[list[StampedBatch], bool]:
        out = []
        clock = self.clock
        for batch in values:
            clock.partition = batch.partition
            first_seq, newest_before = clock.decoded, clock.max_ts
            events = batch.events.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first_seq).alias(SEQ))
            clock.decoded += events.height
            quarantined = None
            if self.screen is not None:
                events, quarantined, clock.screened = self.screen.screen(events, clock.screened,
                                                                         ended=batch.last)
            events, clock.max_ts = stamp(events, clock.max_ts, self.lateness_ms)
            placed = self._place(batch.dead_letters_at, first_seq, newest_before, events)
            if clock.unplaced and events.height:  # dead letters before the partition's first event: placed at it
                first = int(events["ts"][0])
                placed = [*([(first, first - self.lateness_ms)] * clock.unplaced), *placed]
                clock.unplaced = 0
            duplicates = None
            if self.horizon is not None and "event_id" in events.columns and events.height:
                clock.seen = clock.seen if clock.seen is not None else SeenIds()
                events, duplicates = clock.seen.deduplicate(events, self.horizon, self.lateness_ms, clock.max_ts)
            clock.ended = clock.ended or batch.last
            out.append(
                StampedBatch(
                    batch.partition,
                    events,
                    self.watermark(),
                    batch.read_at,
                    duplicates=duplicates if duplicates is not None and duplicates.height else None,
                    dead_letters=len(placed),
                    dead_letter_times=tuple(placed),
                    stream_time=clock.max_ts,
                    idle=batch.idle,
                    quarantined=quarantined if quarantined is not None and quarantined.height else None,
                )
            )
        return out, StatefulBatchLogic.RETAIN

    def _place(self, at: tuple[int, ...], first_seq: int, newest_before: int | None, accepted: pl.DataFrame
               ) -> list[tuple[int, int]]:
        """Each dead letter's place in event time: the partition's newest accepted event before it, and the
        watermark then.

        "Before it" in partition order: accepted events with a smaller
        ``seq``, except a jump the dead letter stands between with its
        follower (the jump was only accepted because of that follower).
        Dead letters before the partition's first event wait for it.
        """
        if not at:
            return []
        seqs, ts = accepted[SEQ].to_numpy(), accepted["ts"].to_numpy()
        newest = np.maximum.accumulate(ts) if ts.size else ts
        jumps = set(self.clock.screened.jumps)
        placed = []
        for position in (first_seq + a for a in at):  # dead letters are few: a loop over them, not events
            count = int(np.searchsorted(seqs, position))
            if count and int(seqs[count - 1]) == position - 1 and position - 1 in jumps:
                count -= 1
            time = max(int(newest[count - 1]), newest_before if newest_before is not None else -(2**62)) \
                if count else newest_before
            if time is None:
                self.clock.unplaced += 1
                continue
            placed.append((time, time - self.lateness_ms))
        return placed

    def on_eof(self) -> tuple[list[StampedBatch], bool]:
        """The input ended: a jump still held waits for nothing more, so it is accepted (see :mod:`screen`)."""
        clock = self.clock
        if clock.screened.held is None or clock.partition is None:
            return [], StatefulBatchLogic.RETAIN
        empty = clock.screened.held.clear().drop(SEQ)
        return self.on_batch([EventBatch(clock.partition, empty, 0, last=True)])[0], StatefulBatchLogic.RETAIN

    def watermark(self) -> int:
        if self.clock.ended:
            return END_OF_TIME
        if self.clock.max_ts is None:
            return BEGINNING_OF_TIME
        return self.clock.max_ts - self.lateness_ms

    def snapshot(self) -> PartitionClock:
        clock = self.clock
        seen = clock.seen.copy() if clock.seen is not None else None
        return PartitionClock(clock.max_ts, clock.ended, seen, clock.unplaced, clock.decoded,
                              ScreenState(clock.screened.newest, clock.screened.held), clock.partition)
