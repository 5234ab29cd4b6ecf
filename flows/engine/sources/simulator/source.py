"""The simulated shop as a Bytewax source: runs of slices in delivery order, rendered as JSON Lines.

In: :class:`~flows.engine.config.SimSettings`. Out: :class:`RawBatch` items
(JSON Lines, the same path as any file) from ``partitions`` source
partitions, like a topic keyed by user. Each batch generates a run of
slices at once (as many as make ~20,000 events; one at a time when paced by
``speed``) and releases every event due before the next slice starts: no
later slice can deliver anything earlier, so the events come out in one
total order, (delivery, time, session, id), however the runs are cut. The
records :mod:`.slices` marked are corrupted. A run ends after its records
(``DMP_SIM_EVENTS``) or at the end of its event time (``DMP_SIM_DURATION``),
when what is still undelivered goes out. A partition's snapshot (next slice,
undelivered events, records emitted) resumes it exactly.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import polars as pl
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.config import SimSettings
from flows.engine.present import iso
from flows.engine.schema import RawBatch
from flows.engine.sources.simulator import corruption
from flows.engine.sources.simulator.catalog import Catalog, make_catalog
from flows.engine.sources.simulator.draws import Draws
from flows.engine.sources.simulator.shoppers import SLICE_MS
from flows.engine.sources.simulator.slices import empty_slice, end_ms, generate_slices

_BATCH_RECORDS = 20_000
_MAX_RUN = 1_440  # slices generated at once, at most (a day): bounds a quiet run's memory


def render(events: pl.DataFrame, catalog: Catalog, partition: int) -> pl.DataFrame:
    """Slice events -> the JSON records a shop would send (still a frame)."""
    product = events["product"]
    return events.select(
        pl.format("e{}-{}", pl.lit(partition), pl.col("uid")).alias("event_id"),
        pl.col("event_type"),
        iso("ts", millis=True).alias("ts"),
        pl.col("user_id"),
        pl.format("s{}", pl.col("session")).alias("session_id"),
        catalog.product_id.gather(product),
        catalog.category.gather(product),
        catalog.category_id.gather(product),
        catalog.brand.gather(product),
        catalog.price.gather(product),
        pl.col("quantity"),
    )


@dataclass(frozen=True)
class SimPosition:
    """A simulator partition's snapshot: next slice, undelivered events, records emitted."""

    next_slice: int
    undelivered: pl.DataFrame
    emitted: int
    done: bool = False


class SimSource(FixedPartitionedSource[RawBatch, SimPosition]):
    """The simulated shop as a partitioned source; see the module docstring."""

    def __init__(self, settings: SimSettings):
        self.settings = settings

    def partitions(self) -> list[str]:
        return [f"sim-{p}" for p in range(self.settings.partitions)]

    def list_parts(self) -> list[str]:
        return self.partitions()

    def build_part(self, step_id: str, for_part: str, resume_state: SimPosition | None) -> SimPartition:
        return SimPartition(self.settings, int(for_part.removeprefix("sim-")), resume_state)

    def quota(self, partition: int) -> int | None:
        """Records partition ``partition`` emits in total (``None``: as many as its event time holds)."""
        total, parts = self.settings.events, self.settings.partitions
        if not total:
            return None
        return total // parts + (1 if partition < total % parts else 0)


class SimPartition(StatefulSourcePartition[RawBatch, SimPosition]):
    def __init__(self, settings: SimSettings, partition: int, resume: SimPosition | None):
        self.settings = settings
        self.partition = partition
        self.name = f"sim-{partition}"
        self.catalog = make_catalog(settings.products, settings.seed)
        self.draws = Draws(settings.seed, partition)
        self.quota = SimSource(settings).quota(partition)
        end = end_ms(settings)
        self.end_slice = None if end is None else -(-(end - settings.start_ms) // SLICE_MS)
        self.position = resume if resume is not None else SimPosition(0, empty_slice(), 0)
        self.started = time.monotonic()
        self.first_slice = self.position.next_slice
        self.per_slice = settings.events_per_second * SLICE_MS / 1000 / settings.partitions  # events, on average
        self.run = 1 if settings.speed > 0 else max(1, min(_MAX_RUN, math.ceil(_BATCH_RECORDS / self.per_slice)))

    def next_awake(self) -> datetime | None:
        if self.settings.speed <= 0:
            return None
        # Pace event time: slice k is released once (k * slice) / speed wall seconds passed.
        due = (self.position.next_slice - self.first_slice) * SLICE_MS / 1000 / self.settings.speed
        return datetime.fromtimestamp(time.time() + max(0.0, due - (time.monotonic() - self.started)), timezone.utc)

    def next_batch(self) -> list[RawBatch]:
        position = self.position
        if position.done:
            raise StopIteration
        if self.settings.speed > 0 and self.next_awake() > datetime.now(timezone.utc):  # type: ignore[operator]
            return []
        first = position.next_slice
        stop = first + self.run
        remaining = None if self.quota is None else self.quota - position.emitted
        if remaining is not None:  # no more slices than the records left fill, on average
            stop = min(stop, first + max(1, math.ceil(remaining / self.per_slice)))
        end_slice = self.end_slice
        ended = end_slice is not None and stop >= end_slice
        if end_slice is not None and ended:
            stop = max(first, end_slice)
        events = pl.concat([position.undelivered, generate_slices(self.settings, self.catalog, self.partition, first,
                                                                  stop, self.draws)])
        # Every event of a later slice is delivered at or after its start: those due before it are final.
        due = pl.lit(True) if ended else pl.col("deliver_at") < self._slice_start(stop)
        deliver = events.filter(due).sort(["deliver_at", "ts", "session", "uid"])
        undelivered = events.filter(~due)
        last = ended or (remaining is not None and deliver.height >= remaining)
        if remaining is not None and deliver.height >= remaining:
            deliver = deliver.head(remaining)
        self.position = SimPosition(stop, undelivered, position.emitted + deliver.height, done=last)
        if deliver.height == 0 and not last:
            return []
        return [RawBatch(self.name, self._encode(deliver), "jsonl", origin=self.name, first_line=position.emitted + 1,
                         lines=deliver.height, last=last)]

    def _slice_start(self, index: int) -> int:
        return self.settings.start_ms + index * SLICE_MS

    def _encode(self, events: pl.DataFrame) -> bytes:
        """JSON Lines of the events, those marked ``broken`` corrupted in place.

        The few broken records split the batch into runs of whole ones,
        each written by Polars in one go (splitting the whole payload into
        lines costs more than writing it).
        """
        records = render(events, self.catalog, self.partition)
        broken = events["broken"].to_numpy()
        rows = np.flatnonzero(broken >= 0)
        if not rows.size:
            return _ndjson(records)
        bad = corruption.corrupt(records[rows], broken[rows].tolist())
        chunks, start = [], 0
        for row, line in zip(rows.tolist(), bad):
            chunks += [_ndjson(records[start:row]), line, b"\n"]
            start = row + 1
        chunks.append(_ndjson(records[start:]))
        return b"".join(chunks)

    def snapshot(self) -> SimPosition:
        return self.position


def _ndjson(records: pl.DataFrame) -> bytes:
    """JSON Lines, each line ending in a newline (nothing for no records)."""
    if not records.height:
        return b""
    out = io.BytesIO()
    records.write_ndjson(out)
    return out.getvalue()
