"""Helpers for testing flows with Bytewax's ``TestingSource`` / ``TestingSink``.

In: records (event dicts, JSON strings or bytes) you want a flow to see.
Out: the flow's output streams as Polars frames: :meth:`CapturedOutputs.typed`
gives the typed rows a stream's declaration says; :meth:`CapturedOutputs.frame`
the rows as JSON Lines files show them (times as ISO-8601 text).

>>> from bytewax.testing import TestingSource
>>> from flows import dmp
>>> from flows.engine.config import Settings
>>> captured = CapturedOutputs()
>>> events = [{"event_type": "purchase", "ts": "2024-03-01T10:00:05Z", "user_id": 1,
...            "product_id": "p1", "price": 9.5}]
>>> flow = dmp.build(Settings(window_ms=60_000), source=TestingSource(batches(events)),
...                  partitions=["input"], outputs=captured.outputs())
>>> run(flow)
>>> captured.frame("leaderboard").select("window_start", "product_id", "revenue").rows()
[('2024-03-01T10:00:00Z', 'p1', 9.5)]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from flows.engine.aggregate import WindowSpec
from flows.engine.analytics import registry
from flows.engine.operators import decode, stamp_event_time, window
from flows.engine.schema import DEFAULT_PARTITION, RawBatch
from flows.engine.sinks import Outputs

__all__ = ["CapturedOutputs", "WindowedOutputs", "batches", "interleave", "run", "windowed_flow"]


class CapturedOutputs:
    """A ``TestingSink`` per output stream (and the summary), read back as frames."""

    def __init__(self, streams: Sequence[str] | None = None) -> None:
        names = [s.name for s in registry.streams()] if streams is None else list(streams)
        self.items: dict[str, list[Any]] = {name: [] for name in names}
        self.summaries: list[dict] = []

    def outputs(self) -> Outputs:
        return Outputs({name: TestingSink(items) for name, items in self.items.items()},
                       summary=TestingSink(self.summaries))

    def typed(self, stream: str) -> pl.DataFrame:
        """Every row the stream emitted, in arrival order, typed as its declaration says."""
        declared = registry.stream(stream)
        frames = [declared.conform(value) for _key, value in self.items[stream] if value.height]
        return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=declared.schema)

    def frame(self, stream: str) -> pl.DataFrame:
        """Every row the stream emitted, in arrival order, as JSON Lines show it (empty frame if none)."""
        rows = self.typed(stream)
        return registry.stream(stream).to_json(rows) if rows.height else pl.DataFrame()

    def sorted_frame(self, stream: str, by: Sequence[str] | None = None) -> pl.DataFrame:
        """The stream's rows in a canonical order, for comparisons across runs."""
        frame = self.frame(stream)
        return frame.sort(list(by) if by else frame.columns) if frame.height else frame

    @property
    def summary(self) -> dict | None:
        return self.summaries[-1] if self.summaries else None


def _bytes(record: Any) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    return json.dumps(record).encode()


def batches(
    records: Iterable[Any],
    *,
    partition: str = DEFAULT_PARTITION,
    size: int = 1000,
    sizes: Sequence[int] | None = None,
    as_lines: bool = False,
    last: bool = True,
) -> list[RawBatch]:
    """Split records into the raw batches one source partition would emit.

    ``sizes`` gives each batch's length (the rest go in a final batch);
    otherwise batches hold ``size`` records. ``as_lines`` makes JSON Lines
    chunks instead of message lists. ``last`` marks the final batch as the
    end of the partition.
    """
    encoded = [_bytes(record) for record in records]
    cuts: list[int] = []
    position = 0
    for length in sizes if sizes is not None else []:
        position = min(len(encoded), position + max(0, length))
        cuts.append(position)
    if sizes is None:
        cuts = list(range(size, len(encoded), size))
    bounds = [0, *[c for c in cuts if 0 < c < len(encoded)], len(encoded)]
    out: list[RawBatch] = []
    line = 1
    for start, end in zip(bounds, bounds[1:]):
        chunk = encoded[start:end]
        payload: bytes | list[bytes] = b"".join(r + b"\n" for r in chunk) if as_lines else chunk
        out.append(
            RawBatch(partition, payload, origin=partition, first_line=line,
                     offsets=None if as_lines else list(range(start, end)), lines=len(chunk) if as_lines else None)
        )
        line += len(chunk)
    if not out:
        out.append(RawBatch(partition, [], origin=partition))
    if last:
        final = out[-1]
        out[-1] = dataclasses.replace(final, last=True)
    return out


def drain(part: Any, limit: int | None = None) -> list:
    """Every item of a source partition (``build_part``'s result) until it ends, or the first ``limit``."""
    items: list = []
    while limit is None or len(items) < limit:
        try:
            items.extend(part.next_batch())
        except StopIteration:
            break
    return items


def read_source(source: Any) -> dict[str, list]:
    """Each partition of a fresh (not resumed) ``FixedPartitionedSource``, drained: name -> its items."""
    return {name: drain(source.build_part("read", name, None)) for name in source.partitions()}


def interleave(per_partition: Mapping[str, Sequence[RawBatch]], order: Sequence[str]) -> list[RawBatch]:
    """Merge partitions' batch lists, taking the next batch of ``order[i]`` at step i.

    Each partition keeps its own order; ``order`` names a partition once per
    batch it has (extra or missing names are tolerated: leftovers go last).
    """
    queues = {name: list(items) for name, items in per_partition.items()}
    merged: list[RawBatch] = []
    for name in order:
        if queues.get(name):
            merged.append(queues[name].pop(0))
    for items in queues.values():
        merged.extend(items)
    return merged


def run(flow: Dataflow, workers: int = 1, **kwargs: Any) -> None:
    """Run a flow to completion in this process, with ``workers`` worker threads."""
    if workers == 1:
        run_main(flow, **kwargs)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers, **kwargs)


@dataclass
class WindowedOutputs:
    """What :func:`windowed_flow` captured: ``(key, frame)`` items, in arrival order."""

    results: list[Any] = field(default_factory=list)
    late: list[Any] = field(default_factory=list)
    quality: list[Any] = field(default_factory=list)
    dead_letters: list[Any] = field(default_factory=list)

    def frame(self, stream: str) -> pl.DataFrame:
        """Every row of a stream, as one frame (engine form: times in epoch ms)."""
        frames = [value for _key, value in getattr(self, stream) if value.height]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def windowed_flow(
    spec: WindowSpec,
    source: Source | Sequence[Any],
    partitions: Sequence[str],
    *,
    lateness_ms: int = 0,
    dedup_horizon_ms: int | None = None,
    shards: int = 2,
    fields: Sequence[str] | None = None,
    sinks: Mapping[str, Sink] | None = None,
) -> tuple[Dataflow, WindowedOutputs]:
    """The engine around one windowed analytic: decode, stamp, window, captured.

    ``source`` is a Bytewax source or a list of items for a ``TestingSource``
    (e.g. from :func:`batches` and :func:`interleave`). Run the flow with
    :func:`run`, then read the returned :class:`WindowedOutputs`. ``sinks``
    replaces the capture of some streams (``results``, ``late``,
    ``quality``, ``dead_letters``), e.g. with file sinks for recovery tests.
    """
    captured = WindowedOutputs()
    streams = ("results", "late", "quality", "dead_letters")
    chosen: dict[str, Sink] = {name: TestingSink(getattr(captured, name)) for name in streams}
    chosen.update(sinks or {})
    flow = Dataflow(f"test_{spec.name}")
    raw = op.input("read", flow, source if isinstance(source, Source) else TestingSource(list(source)))
    decoded = decode("decode", raw, fields)
    stamped = stamp_event_time("stamp_event_time", decoded.events, lateness_ms, dedup_horizon_ms)
    windows = window("windows", stamped, spec, partitions, shards)
    op.output("results", op.map("rows", windows.results, lambda kv: (kv[0], kv[1].rows)), chosen["results"])
    op.output("late", windows.late, chosen["late"])
    op.output("quality", windows.quality, chosen["quality"])
    op.output("dead_letters", decoded.dead_letters, chosen["dead_letters"])
    return flow, captured
