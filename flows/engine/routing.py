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
from flows.engine.schema import QUALITY_COUNTS, StampedBatch
from flows.engine.windows import MISSED, WINDOW_START, FixedWindow


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
    updates = [
        (key, ShardUpdate(batch.partition, by_shard.get(number, empty), batch.watermark, batch.idle, batch.read_at))
        for number, key in enumerate(balanced_keys(shards))
    ]
    tally = quality_tally(batch, late, spec.window) if spec.window.counts_quality else None  # type: ignore[arg-type]
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
        count = batch.dead_letters
        parts.append(pl.DataFrame({WINDOW_START: [start] * count, "kind": ["dead_letters"] * count}))
    if not parts:
        return None
    counted = pl.concat(parts, how="vertical").group_by(WINDOW_START).agg(
        (pl.col("kind") == kind).sum().cast(pl.Int64).alias(kind) for kind in QUALITY_COUNTS
    )
    return counted
