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

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME, SEQ, EventBatch, StampedBatch
from flows.engine.screen import Screen, ScreenState

_SEEN_SCHEMA = {"event_id": pl.String, "ts": pl.Int64}


@dataclass
class PartitionClock:
    """Snapshot of one partition's event-time progress and recent event ids."""

    max_ts: int | None = None
    ended: bool = False
    seen: pl.DataFrame | None = None
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
        batch_max = events["ts"].max()
        max_ts = batch_max if max_ts is None else max(max_ts, batch_max)  # type: ignore[type-var]
    return stamped, max_ts


def deduplicate(
    stamped: pl.DataFrame, seen: pl.DataFrame | None, horizon_ms: int, lateness_ms: int, max_ts: int | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(kept events, duplicates, ids to remember) for one stamped batch of one partition.

    An event is a duplicate when an earlier event of its partition had the
    same ``event_id`` and a time no older than ``horizon_ms`` before the
    newest time the partition had delivered when the event arrived (its
    ``watermark`` plus the lateness). That depends only on earlier events,
    so it is the same whatever the batching. ``seen`` holds ``event_id`` and
    ``ts`` of earlier events inside the horizon; ``max_ts`` is the
    partition's newest time after this batch.

    >>> events = pl.DataFrame({"event_id": ["a", "b", "a", None, None], "ts": [1, 2, 3, 4, 5],
    ...                        "watermark": [0, 1, 2, 3, 4]})
    >>> kept, dups, seen = deduplicate(events, pl.DataFrame({"event_id": ["b"], "ts": [0]}), 100, 0, 5)
    >>> kept["ts"].to_list(), dups["ts"].to_list(), sorted(seen["event_id"].to_list())
    ([1, 4, 5], [2, 3], ['a', 'a', 'b', 'b'])
    """
    ids = stamped["event_id"]
    known = seen is not None and seen.height > 0
    nulls = ids.null_count()
    # Cheap checks first: most batches repeat no id at all (n_unique counts null once).
    repeats = ids.n_unique() - (1 if nulls else 0) < ids.len() - nulls
    if not repeats and known:
        repeats = bool(ids.is_in(seen["event_id"].implode()).any())  # type: ignore[index]
    mask = _duplicates(stamped, seen if known else None, horizon_ms - lateness_ms) if repeats else None
    if mask is not None and mask.any():
        duplicates, kept = stamped[mask.arg_true()], stamped[(~mask).arg_true()]
    else:
        duplicates, kept = stamped.clear(), stamped
    fresh = stamped.select(_SEEN_SCHEMA.keys())
    fresh = fresh[ids.is_not_null().arg_true()] if ids.null_count() else fresh
    remembered = pl.concat([seen, fresh], how="vertical") if known else fresh
    if max_ts is not None and remembered.height:
        oldest = remembered["ts"].min()
        if oldest is not None and oldest < max_ts - horizon_ms:
            remembered = remembered[(remembered["ts"] >= max_ts - horizon_ms).arg_true()]
    return kept, duplicates, remembered


def _duplicates(stamped: pl.DataFrame, seen: pl.DataFrame | None, reach_ms: int) -> pl.Series:
    """Which rows repeat an id seen earlier within the horizon (``reach_ms``: horizon - lateness)."""
    frame = stamped.select("event_id", "ts", "watermark")
    earlier = pl.col("ts").cum_max().shift(1).over("event_id")  # newest earlier time of the id, in batch
    if seen is not None:
        ids = frame["event_id"].unique().implode()
        before = seen.filter(pl.col("event_id").is_in(ids)).group_by("event_id").agg(pl.col("ts").max().alias("_seen"))
        frame = frame.join(before, on="event_id", how="left", maintain_order="left")
        earlier = pl.max_horizontal(earlier, pl.col("_seen"))
    duplicate = pl.col("event_id").is_not_null() & (earlier >= pl.col("watermark") - reach_ms).fill_null(False)
    return frame.select(duplicate.alias("dup"))["dup"]


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
            events = batch.events.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + clock.decoded).alias(SEQ))
            clock.decoded += events.height
            quarantined = None
            if self.screen is not None:
                events, quarantined, clock.screened = self.screen.screen(events, clock.screened,
                                                                         ended=batch.last)
            events, clock.max_ts = stamp(events, clock.max_ts, self.lateness_ms)
            duplicates = None
            if self.horizon is not None and "event_id" in events.columns and events.height:
                events, duplicates, clock.seen = deduplicate(
                    events, clock.seen, self.horizon, self.lateness_ms, clock.max_ts
                )
            clock.ended = clock.ended or batch.last
            dead_letters = clock.unplaced + batch.dead_letters
            clock.unplaced = dead_letters if clock.max_ts is None else 0
            out.append(
                StampedBatch(
                    batch.partition,
                    events,
                    self.watermark(),
                    batch.read_at,
                    duplicates=duplicates if duplicates is not None and duplicates.height else None,
                    dead_letters=dead_letters if clock.max_ts is not None else 0,
                    stream_time=clock.max_ts,
                    idle=batch.idle,
                    quarantined=quarantined if quarantined is not None and quarantined.height else None,
                )
            )
        return out, StatefulBatchLogic.RETAIN

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
        return PartitionClock(clock.max_ts, clock.ended, clock.seen, clock.unplaced, clock.decoded,
                              ScreenState(clock.screened.newest, clock.screened.held), clock.partition)
