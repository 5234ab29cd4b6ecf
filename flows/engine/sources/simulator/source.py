"""The simulated shop as a Bytewax source: slices in delivery order, rendered as JSON Lines, a few corrupted.

In: :class:`~flows.engine.config.SimSettings`. Out: :class:`RawBatch` items
(JSON Lines, the same path as any file) from ``partitions`` source
partitions, like a topic keyed by user. Each partition generates its slices
in order and releases the events due before the next slice starts (no later
slice can deliver anything earlier), sorted by delivery time; a given
fraction of records is corrupted on purpose. A partition's snapshot (slice
number, undelivered events, count) resumes it exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import polars as pl
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.config import SimSettings
from flows.engine.present import iso
from flows.engine.schema import RawBatch
from flows.engine.sources.simulator.catalog import Catalog, make_catalog
from flows.engine.sources.simulator.shoppers import SLICE_MS
from flows.engine.sources.simulator.slices import empty_slice, generate_slice

_BATCH_RECORDS = 20_000


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


_CORRUPTIONS = (
    lambda record: json.dumps(record)[: len(json.dumps(record)) // 2].encode(),  # truncated
    lambda record: b"<html><body>502 Bad Gateway</body></html>",  # not JSON
    lambda record: json.dumps({k: v for k, v in record.items() if k != "user_id"}).encode(),
    lambda record: json.dumps({**record, "ts": "yesterday"}).encode(),
    lambda record: json.dumps({**record, "price": -abs(record.get("price") or 1.0)}).encode(),
    lambda record: json.dumps({**record, "event_type": "click"}).encode(),
    lambda record: json.dumps(record).encode().replace(b'"', b'\xff"', 1),  # not UTF-8
)


def corrupt(records: pl.DataFrame, rng: np.random.Generator) -> list[bytes]:
    """Malformed versions of some records, one of several realistic kinds each."""
    kinds = rng.integers(0, len(_CORRUPTIONS), size=records.height)
    return [_CORRUPTIONS[kind](record) for kind, record in zip(kinds, records.iter_rows(named=True))]


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
        """Records partition ``partition`` emits in total (``None``: unbounded)."""
        total, parts = self.settings.events, self.settings.partitions
        if total == 0:
            return None
        return total // parts + (1 if partition < total % parts else 0)


class SimPartition(StatefulSourcePartition[RawBatch, SimPosition]):
    def __init__(self, settings: SimSettings, partition: int, resume: SimPosition | None):
        self.settings = settings
        self.partition = partition
        self.name = f"sim-{partition}"
        self.catalog = make_catalog(settings.products, settings.seed)
        self.quota = SimSource(settings).quota(partition)
        self.position = resume if resume is not None else SimPosition(0, empty_slice(), 0)
        self.started = time.monotonic()
        self.first_slice = self.position.next_slice

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
        # Generate slices until enough events are due. Every event of a later
        # slice has deliver_at >= its ts >= the next slice's start, so the
        # events due before that start are final and can go out in order.
        pending = [position.undelivered]
        index = position.next_slice
        remaining = None if self.quota is None else self.quota - position.emitted
        settled, unsettled = 0, [position.undelivered]  # events surely due; frames not yet all due
        while True:
            frame = generate_slice(self.settings, self.catalog, self.partition, index)
            pending.append(frame)
            unsettled.append(frame)
            index += 1
            boundary = self._slice_start(index)
            # Only the last few slices (stragglers: up to ten) can still hold undue events,
            # so counting stays linear in the slices generated, however sparse they are.
            partly, still = 0, []
            for waiting in unsettled:
                due = int((waiting["deliver_at"] < boundary).sum())
                if due == waiting.height:
                    settled += due
                else:
                    partly += due
                    still.append(waiting)
            unsettled = still
            ready = settled + partly
            if ready >= _BATCH_RECORDS or self.settings.speed > 0 or (remaining is not None and ready >= remaining):
                break
        events = pl.concat(pending, how="vertical")
        due = pl.col("deliver_at") < self._slice_start(index)
        deliver = events.filter(due).sort(["deliver_at", "ts", "session", "uid"])
        undelivered = events.filter(~due)
        last = remaining is not None and deliver.height >= remaining
        if last:
            deliver = deliver.head(remaining)
        payload = self._encode(deliver, index)
        self.position = SimPosition(index, undelivered, position.emitted + deliver.height, done=last)
        return [RawBatch(self.name, payload, "jsonl", origin=self.name, first_line=position.emitted + 1,
                         lines=deliver.height, last=last)]

    def _slice_start(self, index: int) -> int:
        return self.settings.start_ms + index * SLICE_MS

    def _encode(self, events: pl.DataFrame, index: int) -> bytes:
        """JSON Lines of the events, a random few corrupted in place."""
        records = render(events, self.catalog, self.partition)
        rng = np.random.default_rng([self.settings.seed, self.partition, index, 0xBAD])
        broken = rng.random(records.height) < self.settings.malformed_rate
        if not broken.any():
            return records.write_ndjson().encode()
        lines = records.write_ndjson().encode().split(b"\n")
        for row, line in zip(np.flatnonzero(broken), corrupt(records.filter(pl.Series(broken)), rng)):
            lines[row] = line
        return b"\n".join(lines)

    def snapshot(self) -> SimPosition:
        return self.position
