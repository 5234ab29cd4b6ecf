"""Routing: one stamped batch of an analytic -> late events, per-shard updates and quality counts.

Runs where the batch is (a stateless step per source batch): assign
windows, split off late events, reduce what is on time (partial
aggregates, or the raw rows a function needs) and send each shard its part
together with the partition's watermark. Every shard hears every
partition's watermark in partition order, because the watermark travels
in-band with the data. A key's shard is a stable hash of its text
(:func:`shard_of`); shard names come from :mod:`flows.engine.placement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from flows.engine.aggregate import WindowSpec
from flows.engine.placement import balanced_keys
from flows.engine.schema import AS_OF, QUALITY_COUNTS, StampedBatch
from flows.engine.windows import MISSED, WINDOW_START, FixedWindow


@dataclass(frozen=True)
class ShardUpdate:
    """What one source batch tells one shard: its rows and the partition's watermark."""

    partition: str
    rows: pl.DataFrame
    watermark: int
    idle: bool = False
    read_at: float = 0.0
    news: pl.DataFrame | None = None
    """Quality counts of the batch (first shard only): they travel with the watermark that reports them."""


@dataclass(frozen=True)
class Routed:
    """A source batch split for an analytic: late events, and one update per shard (quality counts in the first)."""

    partition: str
    late: pl.DataFrame
    updates: list[tuple[str, ShardUpdate]]


_SEED = 0xD3B


def shard_of(frame: pl.DataFrame, keys: Sequence[str], shards: int) -> pl.Series:
    """Shard number of each row's key: Polars' 64-bit hash of the key, mod ``shards``.

    Vectorised (~1 ms per 60,000 rows, against ~26 ms for CRC-32 taken one
    distinct key at a time in Python). Polars' hash is the same in every
    process of one Polars version, which is what placing keys across workers
    and processes needs; a recovery store records :data:`PLACEMENT` and a run
    whose Polars hashes differently refuses to resume from it (keys would
    land on other shards). No keys: shard 0.
    """
    if not keys:
        return pl.Series("_shard", [0] * frame.height, dtype=pl.UInt32)
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(list(keys))
    return frame.select((key.hash(_SEED) % shards).cast(pl.UInt32).alias("_shard")).to_series()


PLACEMENT = int(pl.Series(["dmp placement"]).hash(_SEED)[0])
"""A fingerprint of how keys are placed on shards (it changes when Polars' hash does)."""


def route(batch: StampedBatch, spec: WindowSpec, shards: int) -> Routed:
    """Split one stamped batch into late events, per-shard updates and quality counts."""
    on_time, late = spec.window.split_late(batch.events)
    rows = spec.reduce(on_time)
    by_shard: dict[int, pl.DataFrame] = {}
    if rows.height:
        rows = rows.with_columns(shard_of(rows, spec.keys, shards).alias("_shard"))
        for (number,), part in rows.partition_by("_shard", as_dict=True).items():
            by_shard[int(number)] = part.drop("_shard")
    empty = rows.clear().drop("_shard", strict=False)
    # Quality counts go to the first shard, with this batch's watermark: by the time every shard has passed
    # a window end, the counts reported as of it have reached the gather step (see flows.engine.gather).
    news = quality_tally(batch, late, spec.window) if spec.window.counts_quality else None  # type: ignore[arg-type]
    updates = [
        (key, ShardUpdate(batch.partition, by_shard.get(number, empty), batch.watermark, batch.idle, batch.read_at,
                          news if number == 0 else None))
        for number, key in enumerate(balanced_keys(shards))
    ]
    return Routed(batch.partition, late, updates)


def quality_tally(batch: StampedBatch, late: pl.DataFrame, window: FixedWindow) -> pl.DataFrame | None:
    """Late events, duplicates and dead letters of one batch, counted per window and report.

    Late events count in every window they missed; duplicates in every
    window their time falls in; dead letters (which have no time) in the
    latest window of their partition's newest event before them. Each is
    reported ``as_of`` the window end its partition's watermark had reached
    when it came (at least the window's own end: news while a window is open
    is reported when it closes). Both depend only on partition order, never
    on batching: quality rows are the same in every run over the same input.
    """
    slide, size = window.slide_ms, window.size_ms
    parts = []
    if late.height:
        missed = late.select(pl.col(MISSED).alias(WINDOW_START), "watermark").explode(WINDOW_START)
        parts.append(missed.with_columns(pl.lit("late").alias("kind")))
    if batch.duplicates is not None and batch.duplicates.height:
        assigned = window.assign(batch.duplicates.select("ts", "watermark"))
        parts.append(assigned.select(WINDOW_START, "watermark", pl.lit("duplicates").alias("kind")))
    if batch.dead_letter_times:
        times = pl.DataFrame(batch.dead_letter_times, schema={"ts": pl.Int64, "watermark": pl.Int64}, orient="row")
        parts.append(times.select(((pl.col("ts") // slide) * slide).alias(WINDOW_START), "watermark",
                                  pl.lit("dead_letters").alias("kind")))
    if not parts:
        return None
    reported = pl.max_horizontal((pl.col("watermark") // slide) * slide, pl.col(WINDOW_START) + size)
    return (
        pl.concat(parts, how="vertical")
        .with_columns(reported.alias(AS_OF))
        .group_by(WINDOW_START, AS_OF)
        .agg((pl.col("kind") == kind).sum().cast(pl.Int64).alias(kind) for kind in QUALITY_COUNTS)
    )
