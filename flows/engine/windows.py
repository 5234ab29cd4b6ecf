"""Window kinds: which event-time windows an event belongs to, and when it is late for one.

Three kinds, all in epoch milliseconds and aligned to the Unix epoch, so
the same event always lands in the same windows whatever the batch, worker
or run:

- :class:`TumblingWindow`: back-to-back ``[start, start + size)``.
- :class:`SlidingWindow`: ``size`` long, a new one every ``slide`` (which
  divides ``size``); an event belongs to every window covering it.
- :class:`SessionWindow`: per key, events closer than ``gap`` belong to one
  session ``[first_ts, last_ts + gap)``; sessions that an event bridges merge.

Each kind carries the behaviour that differs between them, so the engine
never asks which kind it has: :meth:`split_late` (stamped events -> the
on-time rows an analytic aggregates, and the late events with the windows
they missed), :meth:`closed_until` (how far a watermark closes), the
state shape that holds its open windows, and how its gather step works.

Lateness is decided per window: an event is late for a fixed window whose
end is <= the watermark it met (it still counts in the windows it is on
time for, as Flink does), and late for sessions when ``ts + gap`` is <= it.
Late records carry ``window_start`` / ``window_end`` (the first window
missed) and ``missed`` (the starts of every window missed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from flows.engine.aggregate import WindowSpec
    from flows.engine.gather import SessionGather, WindowGather
    from flows.engine.state import FixedWindows, Sessions

WINDOW_START = "window_start"
WINDOW_END = "window_end"
MISSED = "missed"
LAST_TS = "last_ts"  # sessions: the time of their last event
_EVENT = "_event"


def _no_late(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.clear().with_columns(
        pl.lit(None, pl.Int64).alias(WINDOW_END), pl.lit(None, pl.List(pl.Int64)).alias(MISSED)
    )


class _Fixed:
    """What tumbling and sliding windows share: ``size_ms`` long, one every ``slide_ms``."""

    size_ms: int
    slide_ms: int
    gathers_by_default = True
    """Fixed windows' results are gathered: every shard's rows of a window together."""
    counts_quality = True
    """A quality row per window."""
    held_columns: tuple[str, ...] = ()
    """Columns of held partial aggregates besides the window start and keys."""

    @property
    def extent_ms(self) -> int:
        """How long after an event's time its last window can still be open."""
        return self.size_ms

    @property
    def windows_per_event(self) -> int:
        return self.size_ms // self.slide_ms

    def start(self, ts: pl.Expr) -> pl.Expr:
        """Start of the latest window holding each ``ts`` (floor division, so negatives work)."""
        return (ts // self.slide_ms) * self.slide_ms

    def end(self, start: pl.Expr) -> pl.Expr:
        return start + self.size_ms

    def closed_until(self, watermark: int) -> int:
        """The latest window end a watermark has passed (windows ending there are closed)."""
        return (watermark // self.slide_ms) * self.slide_ms

    def assign(self, events: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - each kind has its own
        raise NotImplementedError

    def late(self, ts: pl.Expr, watermark: pl.Expr) -> pl.Expr:
        """Late for at least one window: the first window holding ``ts`` ends at or before the watermark."""
        return (self.start(ts) + self.slide_ms) <= watermark

    def raw_columns(self, needed: list[str]) -> list[str]:
        """The columns a function's shard keeps of each on-time row."""
        return [*needed, WINDOW_START]

    def reduce(self, spec: WindowSpec, on_time: pl.DataFrame) -> pl.DataFrame:
        """An aggregate's partial rows of one batch's on-time rows: per window and key."""
        return spec.partial(on_time)  # type: ignore[union-attr]

    def already_closed(self, rows: pl.DataFrame, closed_until: int) -> pl.Series | None:
        """The rows' window ends, if some of them closed at or before ``closed_until`` (else ``None``)."""
        ends = rows[WINDOW_START] + self.size_ms
        return ends if ends.min() <= closed_until else None  # type: ignore[operator]

    def with_end(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Closed rows as a function gets them (fixed windows: ``window_start`` says it all)."""
        return rows

    def open_state(self, spec: WindowSpec, held: Sequence[pl.DataFrame]) -> FixedWindows:
        from flows.engine.state import FixedWindows

        return FixedWindows(spec, held)

    @property
    def gatherer(self) -> type[WindowGather]:
        """Complete windows from every shard, each once, in window order, with their quality rows."""
        from flows.engine.gather import WindowGather

        return WindowGather


@dataclass(frozen=True)
class TumblingWindow(_Fixed):
    """Back-to-back windows of ``size_ms``: ``[k * size, (k + 1) * size)``.

    >>> w = TumblingWindow(60_000)
    >>> w.assign(pl.DataFrame({"ts": [59_999, 60_000, -1]}))[WINDOW_START].to_list()
    [0, 60000, -60000]
    """

    size_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0:
            msg = f"window size must be > 0 ms; got {self.size_ms}"
            raise ValueError(msg)

    @property
    def slide_ms(self) -> int:  # type: ignore[override]
        return self.size_ms

    def assign(self, events: pl.DataFrame) -> pl.DataFrame:
        """Each event with the start of its window."""
        return events.with_columns(self.start(pl.col("ts")).alias(WINDOW_START))

    def split_late(self, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Stamped events -> (on-time rows with ``window_start``, late events)."""
        assigned = self.assign(events)
        late = (pl.col(WINDOW_START) + self.size_ms) <= pl.col("watermark")
        mask = assigned.select(late.alias("late"))["late"]
        if not mask.any():
            return assigned, _no_late(assigned)
        late_events = assigned[mask.arg_true()].with_columns(
            (pl.col(WINDOW_START) + self.size_ms).alias(WINDOW_END),
            pl.concat_list(WINDOW_START).alias(MISSED),
        )
        return assigned[(~mask).arg_true()], late_events


@dataclass(frozen=True)
class SlidingWindow(_Fixed):
    """Windows ``size_ms`` long starting every ``slide_ms``: ``[k * slide, k * slide + size)``.

    Each event belongs to ``size / slide`` windows.

    >>> w = SlidingWindow(300_000, slide_ms=60_000)
    >>> w.assign(pl.DataFrame({"ts": [90_000]}))[WINDOW_START].to_list()
    [60000, 0, -60000, -120000, -180000]
    """

    size_ms: int
    slide_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.slide_ms <= 0 or self.size_ms % self.slide_ms:
            msg = f"a sliding window's slide must divide its size; got size {self.size_ms} ms, slide {self.slide_ms} ms"
            raise ValueError(msg)

    def assign(self, events: pl.DataFrame) -> pl.DataFrame:
        """Each event once per window covering it, with that window's start."""
        latest = self.start(pl.col("ts"))
        back = pl.int_ranges(0, self.windows_per_event, dtype=pl.Int64) * self.slide_ms
        return events.with_columns((latest - back).alias(WINDOW_START)).explode(WINDOW_START)

    def split_late(self, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Stamped events -> (an on-time row per (event, window it counts in), late events).

        A late event names every window it missed in ``missed``; it still
        counts in the others.
        """
        rows = self.assign(events.with_row_index(_EVENT))
        mask = rows.select(((pl.col(WINDOW_START) + self.size_ms) <= pl.col("watermark")).alias("late"))["late"]
        if not mask.any():
            return rows.drop(_EVENT), _no_late(rows.drop(_EVENT))
        missed = (
            rows[mask.arg_true()]
            .group_by(_EVENT, maintain_order=True)
            .agg(pl.col(WINDOW_START).sort().alias(MISSED))
        )
        late_events = (
            events.with_row_index(_EVENT)
            .join(missed, on=_EVENT, how="inner", maintain_order="right")
            .with_columns(
                pl.col(MISSED).list.first().alias(WINDOW_START),
                (pl.col(MISSED).list.first() + self.size_ms).alias(WINDOW_END),
            )
            .drop(_EVENT)
        )
        return rows[(~mask).arg_true()].drop(_EVENT), late_events


@dataclass(frozen=True)
class SessionWindow:
    """Per key, a session is a run of events each less than ``gap_ms`` after the previous.

    A session ``[first_ts, last_ts + gap)`` ends ``gap`` after its last event.
    """

    gap_ms: int
    gathers_by_default = False
    """Sessions are emitted as each shard closes them, unless an analytic asks for one order."""
    counts_quality = False
    held_columns = (LAST_TS,)

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            msg = f"a session gap must be > 0 ms; got {self.gap_ms}"
            raise ValueError(msg)

    @property
    def extent_ms(self) -> int:
        return self.gap_ms

    def closed_until(self, watermark: int) -> int:
        """Sessions close against the watermark itself (at ``last_ts + 2 * gap``)."""
        return watermark

    def split_late(self, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Stamped events -> (on-time events, late events): late when ``ts + gap`` <= the watermark met."""
        rows = events.with_columns(pl.col("ts").alias(WINDOW_START))
        mask = rows.select(((pl.col("ts") + self.gap_ms) <= pl.col("watermark")).alias("late"))["late"]
        if not mask.any():
            return rows, _no_late(rows)
        late_events = rows[mask.arg_true()].with_columns(
            (pl.col("ts") + self.gap_ms).alias(WINDOW_END),
            pl.concat_list(WINDOW_START).alias(MISSED),
        )
        return rows[(~mask).arg_true()], late_events

    def late(self, ts: pl.Expr, watermark: pl.Expr) -> pl.Expr:
        """Late: the session the event would start has ended (``ts + gap`` at or before the watermark)."""
        return (ts + self.gap_ms) <= watermark

    def raw_columns(self, needed: list[str]) -> list[str]:
        return needed

    def reduce(self, spec: WindowSpec, on_time: pl.DataFrame) -> pl.DataFrame:
        """An aggregate's partial sessions of one batch (one row per key and run)."""
        from flows.engine.sessions import session_partials

        return session_partials(on_time, spec)  # type: ignore[arg-type]

    def already_closed(self, rows: pl.DataFrame, closed_until: int) -> pl.Series | None:
        """Sessions never get rows after they close: a late event's session had ended."""
        return None

    def with_end(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Closed sessions with their end, ``last_ts + gap``."""
        return rows.with_columns((pl.col(LAST_TS) + self.gap_ms).alias(WINDOW_END))

    def open_state(self, spec: WindowSpec, held: Sequence[pl.DataFrame]) -> Sessions:
        from flows.engine.state import Sessions

        return Sessions(spec, held)

    @property
    def gatherer(self) -> type[SessionGather]:
        """Closed sessions of every shard in one order (close, keys, start)."""
        from flows.engine.gather import SessionGather

        return SessionGather


FixedWindow = TumblingWindow | SlidingWindow
Window = TumblingWindow | SlidingWindow | SessionWindow
