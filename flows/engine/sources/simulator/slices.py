"""Slices of one partition: every event of the sessions that start in them, with delivery times, at once.

In: the settings, the catalog, a partition and a run of slices (``first ..
stop-1``; slice i is the minute ``i`` minutes after the start). Out: a frame
of :data:`SLICE_SCHEMA`, in generation order: for each slice, the shoppers'
sessions (a Poisson number around the daily cycle's rate, times any planted
anomaly's factor) and the planted ones, each event with a delivery time (up
to ``disorder_ms`` after it; a few stragglers up to ten minutes), an id
``uid`` (``slice << 32 | its number in the slice``) and whether and how it
will be corrupted (``broken``: -1, or a way of :mod:`.corruption`). A run
with a duration drops events at or after its end (sessions under way are
cut there), so every window before the end is whole.

Every draw is addressed by (seed, partition, slice, item, field)
(:mod:`.draws`), so a slice is the same whichever run of slices it is
generated in: generating a day at once costs about what one slice used to.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator import corruption
from flows.engine.sources.simulator.anomalies import anomaly_factors
from flows.engine.sources.simulator.catalog import FIRST_USER_ID, Catalog
from flows.engine.sources.simulator.draws import Draws, Field, poisson
from flows.engine.sources.simulator.planted import plant_sessions
from flows.engine.sources.simulator.shoppers import (
    EVENT_TYPES,
    EVENTS_PER_SESSION,
    SLICE_MS,
    Events,
    daily_cycle,
    ordinary_sessions,
    spans,
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
        "broken": pl.Int8,
    }
)
_KINDS = dict(enumerate(EVENT_TYPES))
# session = (partition << 51) | (slice << 24) | number: 4,096 partitions, 2^27 slices (255 years), 16M sessions each.
_SLICE_BITS, _NUMBER_BITS = 27, 24


def end_ms(settings: SimSettings) -> int | None:
    """Where a run's event time ends (exclusive), or ``None``: a record count (or nothing) ends it instead."""
    if settings.events is None and settings.duration_ms > 0:
        return settings.start_ms + settings.duration_ms
    return None


def generate_slices(settings: SimSettings, catalog: Catalog, partition: int, first: int, stop: int,
                    draws: Draws | None = None) -> pl.DataFrame:
    """Events of the sessions that start in slices ``first .. stop-1`` (planted ones included), for one partition.

    Columns :data:`SLICE_SCHEMA`: ``ts``, ``deliver_at`` (epoch ms),
    ``event_type``, ``user_id``, ``session``, ``uid``, ``product`` (catalog
    index), ``quantity`` (purchases), ``broken``. A function of (seed,
    partition, slice) for each slice: the same whichever run it comes in.
    ``draws`` (those of ``settings.seed`` and ``partition``) saves making them.
    """
    draws = draws if draws is not None else Draws(settings.seed, partition)
    slices = np.arange(first, stop, dtype=np.int64)
    share = settings.events_per_second * (SLICE_MS / 1000) / settings.partitions
    means = share * daily_cycle(settings.start_ms + slices * SLICE_MS + SLICE_MS / 2) / EVENTS_PER_SESSION
    if settings.anomalies:
        means = means * anomaly_factors(settings, slices)
    counts = poisson(means, draws.uniform(slices, 0, Field.SESSIONS))
    parts = [ordinary_sessions(draws, settings, catalog, partition, slices, counts)]
    if settings.plant and slices.size:
        parts.append(plant_sessions(draws, settings, catalog, partition, slices, means, counts))
    return _frame(settings, draws, partition, Events.concat(parts))


def generate_slice(settings: SimSettings, catalog: Catalog, partition: int, index: int) -> pl.DataFrame:
    """Events of the sessions that start in slice ``index``: :func:`generate_slices` of one slice."""
    return generate_slices(settings, catalog, partition, index, index + 1)


def _frame(settings: SimSettings, draws: Draws, partition: int, events: Events) -> pl.DataFrame:
    """The events (each part in slice order) as a slice frame: numbered, delivered, marked for corruption."""
    events = events.by_slice()  # slice by slice, the parts in order within each
    s, ts = events.slice, events.ts
    _, _, rank = spans(np.unique(s, return_counts=True)[1])

    # Delivery: up to disorder_ms late, a few stragglers later (one draw decides both).
    u = draws.uniform(s, rank, Field.DELIVERY)
    rate, disorder = settings.straggler_rate, settings.disorder_ms
    straggler = u < rate
    delay = np.where(straggler, disorder + u / max(rate, 1e-300) * (STRAGGLER_MAX_MS - disorder),
                     (u - rate) / (1.0 - rate) * disorder).astype(np.int64)
    u = draws.uniform(s, rank, Field.CORRUPTION)
    broken = np.where(u < settings.malformed_rate,
                      np.minimum(u / max(settings.malformed_rate, 1e-300) * corruption.KINDS, corruption.KINDS - 1),
                      -1).astype(np.int8)

    session = (np.int64(partition) << (_SLICE_BITS + _NUMBER_BITS)) | (s << _NUMBER_BITS) | events.session
    frame = pl.DataFrame(
        {
            "ts": ts,
            "deliver_at": ts + delay,
            "event_type": pl.Series(events.kind).replace_strict(_KINDS, return_dtype=pl.String),
            "user_id": FIRST_USER_ID + events.user,
            "session": session,
            "uid": (s << 32) | rank,
            "product": events.product,
            "quantity": pl.Series(events.quantity).replace(0, None),
            "broken": broken,
        },
        schema=SLICE_SCHEMA,
    )
    end = end_ms(settings)
    return frame if end is None else frame.filter(pl.col("ts") < end)


def empty_slice() -> pl.DataFrame:
    return pl.DataFrame(schema=SLICE_SCHEMA)
