"""One slice of one partition: every event of the sessions that start in it, with its delivery time.

In: the settings, the catalog, a partition and a slice index. Out: a frame
of :data:`SLICE_SCHEMA`: the shoppers' sessions (as many as a Poisson draw
around the daily cycle's rate, times any planted anomaly's factor), the
planted sessions, and a delivery delay per event (up to ``disorder_ms``, a
few stragglers up to ten minutes). A pure function of (seed, partition,
index).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.anomalies import anomaly_factor
from flows.engine.sources.simulator.catalog import Catalog
from flows.engine.sources.simulator.planted import plant_sessions
from flows.engine.sources.simulator.shoppers import (
    EVENTS_PER_SESSION,
    PART_SCHEMA,
    SLICE_MS,
    daily_cycle,
    ordinary_sessions,
)

STRAGGLER_MAX_MS = 600_000
SLICE_SCHEMA = pl.Schema(
    {
        "ts": pl.Int64,
        "deliver_at": pl.Int64,
        "event_type": pl.String,
        "user_id": pl.Int64,
        "session": pl.Int64,
        "uid": pl.Int64,
        "product": pl.Int64,
        "quantity": pl.Int64,
    }
)


def generate_slice(settings: SimSettings, catalog: Catalog, partition: int, index: int) -> pl.DataFrame:
    """Events of the sessions that start in one slice (planted ones included), for one partition.

    Columns: ``ts``, ``deliver_at`` (epoch ms), ``event_type``, ``user_id``,
    ``session``, ``product`` (catalog index), ``quantity``. Deterministic in
    (seed, partition, index).
    """
    rng = np.random.default_rng([settings.seed, partition, index])
    start = settings.start_ms + index * SLICE_MS
    share = settings.events_per_second * (SLICE_MS / 1000) / settings.partitions
    mean_sessions = share * daily_cycle(start + SLICE_MS / 2) / EVENTS_PER_SESSION
    if settings.anomalies:
        mean_sessions *= anomaly_factor(settings, index)
    sessions = rng.poisson(mean_sessions)
    extra = plant_sessions(settings, catalog, partition, index, mean_sessions, sessions) if settings.plant else None
    if sessions == 0 and extra is None:
        return empty_slice()
    user, parts = ordinary_sessions(rng, settings, catalog, partition, start, sessions)
    frames = [
        pl.DataFrame({"ts": ts, "session": sess, "product": prod}, schema=PART_SCHEMA).with_columns(
            pl.lit(kind).alias("event_type"),
            pl.Series("quantity", qty, dtype=pl.Int64) if qty is not None else pl.lit(None, pl.Int64).alias("quantity"),
        )
        for ts, kind, sess, prod, qty in parts
    ]
    if extra is not None:
        user = np.concatenate([user, extra.user])
        frames.append(extra.events)
    events = pl.concat(frames, how="vertical")
    delay = rng.uniform(0, settings.disorder_ms, size=events.height)
    straggler = rng.random(events.height) < settings.straggler_rate
    delay[straggler] = rng.uniform(settings.disorder_ms, STRAGGLER_MAX_MS, size=int(straggler.sum()))
    return events.with_columns(
        pl.Series("user_id", user[events["session"].to_numpy()]),
        # Unique across partitions and slices: ids a real shop would never reuse.
        (pl.col("session") + (partition * 1_000_003 + index) * 100_000).alias("session"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + index * 10_000_000).alias("uid"),
        (pl.col("ts") + pl.Series(delay.astype(np.int64))).alias("deliver_at"),
    ).select(SLICE_SCHEMA.names())



def empty_slice() -> pl.DataFrame:
    return pl.DataFrame(schema=SLICE_SCHEMA)
