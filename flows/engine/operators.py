"""Composite operators: the sub-graphs our flows are drawn with.

Each is an ``@operator`` (step id first) over batches, returning a stream or
a frozen dataclass of streams; errors and late data are streams too, never
swallowed:

- :func:`decode`: raw batches -> ``Decoded(events, dead_letters, tallies)``
- :func:`stamp_event_time`: events -> events stamped with their partition's
  watermark (and duplicates dropped)
- :func:`window`: stamped events -> ``Windowed(results, late, quality)``
- :func:`summarize`: tallies -> one run summary at the end of input (or at a Ctrl-C), to its sink
- :func:`write`: a stream to each of its sinks
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from flows.engine import interrupt
from flows.engine.aggregate import WindowSpec
from flows.engine.bounds import DEFAULT_BOUNDS, Bounds
from flows.engine.counts import Counts
from flows.engine.decode import decode_batch
from flows.engine.parse import Duplicates
from flows.engine.routing import route
from flows.engine.schema import DEFAULT_PARTITION, ClosedWindows, EventBatch, RawBatch, StampedBatch
from flows.engine.screen import Screen
from flows.engine.shards import WindowShard
from flows.engine.streams import OutputStream
from flows.engine.summary import RunSummary, Tally
from flows.engine.watermark import PartitionWatermark


def as_raw_batch(item: Any) -> RawBatch:
    """Accept what a test or a foreign source may emit, as a batch.

    A :class:`RawBatch` passes through; a single record (``bytes``, ``str``
    or an event ``dict``) or a list of them becomes a batch of messages of
    the default partition.
    """
    if isinstance(item, RawBatch):
        return item
    records = item if isinstance(item, (list, tuple)) else [item]
    payload = [_record_bytes(record) for record in records]
    return RawBatch(DEFAULT_PARTITION, payload, origin=DEFAULT_PARTITION)


def _record_bytes(record: Any) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    if isinstance(record, dict):
        return json.dumps(record).encode()
    msg = f"a source item must be a RawBatch, bytes, str, dict or a list of them; got {type(record).__name__}"
    raise TypeError(msg)


@dataclass(frozen=True)
class Decoded:
    events: Stream[EventBatch]
    """Decoded events of each source batch, in partition order."""
    dead_letters: KeyedStream[pl.DataFrame]
    """``DEAD_LETTER_SCHEMA`` frames keyed by partition (only non-empty ones)."""
    tallies: Stream[Tally]
    """Records / events / dead letters per batch, for reconciliation."""


@dataclass(frozen=True)
class DecodedBatch:
    """One source batch, decoded: its events and its dead letters."""

    events: EventBatch
    dead_letters: pl.DataFrame


class DecodeOptions(TypedDict):
    """The keyword arguments :func:`decoder` and :func:`decode` share, for passing them on as ``**options``."""

    bounds: Bounds
    duplicates: Duplicates


def decoder(
    optional: Sequence[str] | None = None, *, bounds: Bounds = DEFAULT_BOUNDS, duplicates: Duplicates = "first"
) -> Callable[[Any], DecodedBatch]:
    """The decoding function of :func:`decode`, for sources that decode ahead.

    Items that are already a :class:`DecodedBatch` pass through unchanged.
    ``bounds`` and ``duplicates`` are :func:`~flows.engine.decode.decode_batch`'s.
    """
    fields = tuple(optional) if optional is not None else None

    def decode_item(item: Any) -> DecodedBatch:
        if isinstance(item, DecodedBatch):
            return item
        raw = as_raw_batch(item)
        result = decode_batch(raw, fields, bounds=bounds, duplicates=duplicates)
        records = source_records(raw, result.events.height + result.dead_letters.height)
        at = tuple(result.dead_letters["events_before"].to_list()) if result.dead_letters.height else ()
        events = EventBatch(raw.partition, result.events, records, raw.last, raw.read_at, raw.idle, at, raw.read_to)
        return DecodedBatch(events, result.dead_letters)

    return decode_item


def source_records(raw: RawBatch, decoded: int) -> int:
    """The records of a batch as its source counts them, whatever the decoder made of them.

    Messages: one record each. A chunk: its lines (as the source counted
    them), less blank lines, which are counted only when the decoder's count
    differs, so the check costs nothing on clean data. The run summary
    reconciles this against decoded events plus dead letters, so a record the
    decoder lost makes ``reconciled`` false.
    """
    payload = raw.payload
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload)
    chunk = bytes(payload)
    lines = raw.lines if raw.lines is not None else chunk.count(b"\n") + (not chunk.endswith(b"\n") and bool(chunk))
    if lines == decoded:
        return lines
    return sum(1 for line in chunk.split(b"\n") if line.strip(b" \t\r"))  # blank lines are not records


@operator
def decode(
    step_id: str,
    up: Stream[Any],
    optional: Sequence[str] | None = None,
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    duplicates: Duplicates = "first",
) -> Decoded:
    """Decode raw batches into events; undecodable records become dead letters.

    ``optional`` names the optional event fields the flow uses (all by
    default); fields nobody uses are not parsed at all. An event outside
    ``bounds`` is a dead letter, and so (with ``duplicates="reject"``) is a
    JSON object giving a field twice. Batches a source already decoded
    (read-ahead) pass straight through.
    """
    decoded = op.map("decode_batch", up, decoder(optional, bounds=bounds, duplicates=duplicates))
    events = op.map("events", decoded, lambda d: d.events)
    dead = op.filter_map(
        "dead_letters", decoded, lambda d: (d.events.partition, d.dead_letters) if d.dead_letters.height else None
    )
    tallies = op.map(
        "tally",
        decoded,
        lambda d: Tally(Counts(records=d.events.records, events=d.events.events.height,
                               dead_letters=d.dead_letters.height), input=d.events.partition),
    )
    return Decoded(events, dead, tallies)


Observer = Callable[[Any], Any]
"""Called with every stateful logic a step builds, e.g. to watch its state size."""


def _observed(observe: Observer | None, logic: Any) -> Any:
    if observe is not None:
        observe(logic)
    return logic


@operator
def stamp_event_time(
    step_id: str,
    up: Stream[EventBatch],
    lateness_ms: int,
    dedup_horizon_ms: int | None = None,
    observe: Observer | None = None,
    screen: Screen | None = None,
) -> Stream[StampedBatch]:
    """Stamp each event with the watermark of its partition just before it arrived.

    Each event gets its number in its partition (``seq``); with ``screen``,
    events that may not move the watermark are quarantined first
    (:mod:`flows.engine.screen`).

    With ``dedup_horizon_ms``, events whose ``event_id`` the partition
    delivered before (within that much event time) are dropped and counted.
    """
    keyed = op.key_on("key_by_partition", up, lambda batch: batch.partition)
    stamped = op.stateful_batch(
        "partition_watermark",
        keyed,
        lambda resume: _observed(observe, PartitionWatermark(lateness_ms, dedup_horizon_ms, resume, screen)),
    )
    return op.key_rm("unkey", stamped)


@dataclass(frozen=True)
class Windowed:
    results: KeyedStream[ClosedWindows]
    """Closed windows' rows. Fixed windows: every shard's rows of complete
    windows together, in window order, each once, keyed by analytic. Sessions:
    as each shard closes them, keyed by shard; with ``gather``, released in
    one order (see :class:`SessionGather`) keyed by analytic, with every
    advance of ``closed_until`` (even with no rows)."""
    late: KeyedStream[pl.DataFrame]
    """Events late for a window they belong to (with ``window_start``,
    ``window_end``, ``missed`` and ``watermark``), keyed by partition."""
    quality: KeyedStream[pl.DataFrame]
    """Fixed windows: one row per window as it closes (and amendments for
    news that arrives after), keyed by analytic; see :class:`WindowGather`.
    Sessions: an empty stream (a stream all the same: Bytewax renders every
    port of a dataflow, e.g. for its API server, and a missing one breaks it)."""


@operator
def window(
    step_id: str,
    up: Stream[StampedBatch],
    spec: WindowSpec,
    partitions: Sequence[str],
    shards: int,
    observe: Observer | None = None,
) -> Windowed:
    """Run a windowed analytic (:mod:`flows.engine.aggregate`) over stamped events.

    Its state is split over ``shards`` keyed states spread over the workers;
    a window closes when the minimum watermark of all ``partitions`` (every
    source partition must be named) passes its end. ``observe`` sees every shard and gather logic.
    """
    declared = tuple(partitions)
    routed = op.map("route", up, lambda batch: route(batch, spec, shards))
    late = op.filter_map("late", routed, lambda r: (r.partition, r.late) if r.late.height else None)
    updates = op.flat_map("to_shards", routed, lambda r: r.updates)
    closed = op.stateful_batch(
        "shard_windows", updates, lambda resume: _observed(observe, WindowShard(spec, declared, shards, resume))
    )
    if not spec.gathers:
        return Windowed(op.filter("closed_rows", closed, lambda kv: kv[1].rows.height > 0), late, _nothing(late))
    shard_news = op.map("shard_news", closed, lambda kv: (spec.name, ("closed", kv[0], kv[1])))
    gatherer = spec.window.gatherer
    gathered = op.stateful_batch(  # sessions: empty releases too, they carry progress
        gatherer.STEP, shard_news, lambda resume: _observed(observe, gatherer(spec, shards, resume))
    )
    split = op.branch("results_or_quality", gathered, lambda kv: isinstance(kv[1], ClosedWindows))
    return Windowed(split.trues, late, split.falses)


def _nothing(up: KeyedStream[pl.DataFrame]) -> KeyedStream[pl.DataFrame]:
    return op.filter("no_quality", up, lambda _: False)


def only_events(batch: StampedBatch, condition: pl.Expr) -> StampedBatch:
    """The events of a batch that match ``condition``, with the partition's progress.

    Duplicates and dead letters stay with the unfiltered stream (quality counts them once).
    """
    return dataclasses.replace(batch, events=batch.events.filter(condition), duplicates=None, dead_letters=0,
                               dead_letter_times=())


@operator
def summarize(step_id: str, tallies: Stream[Tally], top: int, sink: Sink, max_dead_letter_share: float = 1.0,
              streams: Sequence[OutputStream] = ()) -> None:
    """Add up every tally; write one summary dict to ``sink`` when the input ends.

    ``streams`` are those whose findings come in tallies (in the order the summary shows them).

    If the run stops on Ctrl-C or SIGTERM instead, the worker holding the
    summary hands what it has so far, marked interrupted, to the sink's
    ``report`` (a :class:`~flows.engine.sinks.SummarySink` has one).
    """
    report = getattr(sink, "report", None)

    def build(resume: Any) -> RunSummary:
        logic = RunSummary(top, resume, max_dead_letter_share, streams)
        if report is not None:
            def interrupted() -> None:
                if not logic.ended:
                    report(logic.summary(interrupted=True))

            interrupt.on_stop(interrupted)
        return logic

    keyed = op.key_on("one_key", tallies, lambda _: "summary")
    summary = op.stateful_batch("run_summary", keyed, build)
    op.output("write", op.key_rm("unkey", summary), sink)


@operator
def write(step_id: str, up: Stream[Any], sinks: Sequence[Sink]) -> None:
    """Send a stream to every one of its sinks (files, Kafka, ...)."""
    for index, sink in enumerate(sinks):
        op.output(f"{type(sink).__name__.lower()}_{index}", up, sink)
