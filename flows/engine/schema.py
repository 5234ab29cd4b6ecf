"""The event contract and the batch types that flow between steps.

Every source decodes into one Polars schema, :data:`EVENT_SCHEMA`; every
record that cannot be decoded becomes a row of :data:`DEAD_LETTER_SCHEMA`.
Items on the hot path are batches (one frame per item), never single events:

``RawBatch`` (bytes from one source partition)
  -> ``EventBatch`` (decoded events of that partition, in partition order)
  -> ``StampedBatch`` (the same events, each stamped with the watermark it met).

Times are integer epoch milliseconds (UTC) inside the engine; outputs render
them as ISO-8601 with ``Z``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from flows.engine.aggregate import EVENTS
from flows.engine.windows import WINDOW_END, WINDOW_START

EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase")
EventType = pl.Enum(EVENT_TYPES)

# Typed: a mix of dtype classes and instances (the Enum) would otherwise infer as dict[str, object].
_EVENT_DTYPES: dict[str, pl.DataType | type[pl.DataType]] = (
    {
        "event_id": pl.String,
        "event_type": EventType,
        "ts": pl.Int64,  # event time, epoch milliseconds UTC
        "user_id": pl.String,
        "session_id": pl.String,
        "product_id": pl.String,
        "category": pl.String,
        "category_id": pl.String,
        "brand": pl.String,
        "price": pl.Float64,
        "quantity": pl.Int64,
    }
)
EVENT_SCHEMA = pl.Schema(_EVENT_DTYPES)

# Every event has these (they are validated); the others are decoded only
# when a flow asks for them (projection pushdown: parsing fewer string
# columns is most of what makes decoding cheaper).
REQUIRED_FIELDS = ("event_type", "ts", "user_id", "product_id", "price", "quantity")
OPTIONAL_FIELDS = ("event_id", "session_id", "category", "category_id", "brand")


def event_schema(optional: Sequence[str] | None = None) -> pl.Schema:
    """``EVENT_SCHEMA`` restricted to the required fields plus ``optional`` ones (all by default)."""
    wanted = set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS if optional is None else optional)
    unknown = wanted - set(EVENT_SCHEMA.names())
    if unknown:
        msg = f"unknown event fields {sorted(unknown)}; known: {EVENT_SCHEMA.names()}"
        raise ValueError(msg)
    return pl.Schema({name: dtype for name, dtype in EVENT_SCHEMA.items() if name in wanted})


DEAD_LETTER_SCHEMA = pl.Schema(
    {
        "reason": pl.String,
        "raw": pl.Binary,  # the record's bytes, unchanged
        "source": pl.String,  # "path:line" or "topic/partition@offset"
        "key": pl.Binary,  # the message key, when the record came from Kafka
        "events_before": pl.Int64,  # decoded events of its batch before it (places it in event time)
    }
)

SEQ = "seq"
"""Each decoded event's number in its partition (0, 1, ...): with the partition, it names the event."""

# Watermark sentinels. Far from the Int64 limits so arithmetic never overflows.
BEGINNING_OF_TIME = -(2**62)
END_OF_TIME = 2**62

RecordFormat = Literal["jsonl", "csv"]

# Partition name of items that arrive without one (e.g. from a TestingSource).
DEFAULT_PARTITION = "input"


@dataclass(frozen=True)
class RawBatch:
    """Undecoded records read from one source partition, in partition order.

    ``payload`` is either one chunk of whole lines (files, the simulator) or
    a list of messages (one record each, e.g. from Kafka).
    """

    partition: str
    payload: bytes | Sequence[bytes]
    format: RecordFormat = "jsonl"
    origin: str = DEFAULT_PARTITION
    """Where the records came from, for dead letters: a path or topic/partition."""
    first_line: int = 1
    """Line number of the chunk's first line (chunks only)."""
    offsets: Sequence[int] | None = None
    """Position of each message (message lists only)."""
    keys: Sequence[bytes | None] | None = None
    """Key of each message (message lists from Kafka), kept for dead letters."""
    csv_header: tuple[str, ...] | None = None
    lines: int | None = None
    """Lines of the chunk as the source counted them (``None``: count them from the payload)."""
    last: bool = False
    """True on the partition's final batch: it has ended and will send nothing more."""
    idle: bool = False
    """True on an empty marker: the partition has been quiet for DMP_IDLE_TIMEOUT."""
    read_at: float = field(default_factory=time.time)
    """Wall-clock time the batch was read (seconds), for latency figures."""
    read_to: int | None = None
    """Bytes of its partition read up to the end of this batch (files), for progress; ``None``: not known."""


@dataclass(frozen=True)
class EventBatch:
    """Decoded events of one source partition, in partition order."""

    partition: str
    events: pl.DataFrame  # EVENT_SCHEMA
    records: int  # input records this batch came from, as the source counted them
    last: bool = False
    read_at: float = 0.0
    idle: bool = False
    dead_letters_at: tuple[int, ...] = ()
    """One entry per record of the batch that could not be decoded: how many decoded events came before it."""
    read_to: int | None = None
    """Bytes of its partition read up to the end of this batch (files: the raw batch's), for progress."""

    @property
    def dead_letters(self) -> int:
        return len(self.dead_letters_at)


@dataclass(frozen=True)
class StampedBatch:
    """Events stamped with event-time progress of their partition.

    ``events`` has :data:`EVENT_SCHEMA` plus ``watermark`` (Int64): the
    partition's watermark just before the event arrived. ``watermark`` (the
    attribute) is the partition's watermark after the whole batch, or
    :data:`END_OF_TIME` once the partition has ended.
    """

    partition: str
    events: pl.DataFrame
    watermark: int
    read_at: float = 0.0
    duplicates: pl.DataFrame | None = None
    """Events dropped as duplicates (``ts`` and ``event_id``), for quality counts."""
    dead_letters: int = 0
    """Records of this batch that could not be decoded."""
    dead_letter_times: tuple[tuple[int, int], ...] = ()
    """For each dead letter: the partition's newest accepted event time before it, and the watermark then
    (where and when quality counts it; the same whatever the batching)."""
    stream_time: int | None = None
    """The partition's largest event time after this batch."""
    idle: bool = False
    """The partition is quiet: leave it out of the minimum watermark until it speaks again."""
    quarantined: pl.DataFrame | None = None
    """Events that may not move the watermark (:mod:`flows.engine.screen`), with a ``reason``."""




QUALITY_COUNTS = ("late", "duplicates", "dead_letters")


@dataclass(frozen=True)
class ClosedWindows:
    """What a shard has just closed, and how far it has closed.

    ``rows``: result rows (partial aggregates merged, with their ``events``,
    or a function's output). ``counts``: a function's on-time events per
    window (aggregates count theirs in ``rows``). Every window ending at or
    before ``closed_until`` is final at this shard; ``watermark`` is the
    minimum watermark that closed them. ``dropped``: events that reached a
    window after it closed, per window (only possible after idleness).
    ``read_at``: when the source batch whose progress released them was read
    (wall-clock seconds; the earliest, if several; ``None`` at the end of
    input), for latency figures.
    """

    rows: pl.DataFrame
    closed_until: int
    watermark: int = BEGINNING_OF_TIME
    counts: pl.DataFrame | None = None
    dropped: pl.DataFrame | None = None
    read_at: float | None = None
    news: pl.DataFrame | None = None
    """Quality counts routed through this shard (``window_start``, ``as_of``, counts), see :mod:`gather`."""


DROPPED = "dropped_after_idle"


COUNT_COLUMNS = (EVENTS, *QUALITY_COUNTS, DROPPED)


AS_OF = "as_of"
QUALITY_SCHEMA = pl.Schema(
    {
        WINDOW_START: pl.Int64,
        WINDOW_END: pl.Int64,
        "report": pl.String,
        AS_OF: pl.Int64,
        **{name: pl.Int64 for name in COUNT_COLUMNS},
    }
)
"""One quality row (engine form; outputs render times as ISO-8601)."""
