"""Window specifications: which event-time windows an event belongs to.

Three kinds, all in epoch milliseconds and aligned to the Unix epoch, so
the same event always lands in the same windows whatever the batch, worker
or run:

- :class:`TumblingWindow`: back-to-back ``[start, start + size)``.
- :class:`SlidingWindow`: ``size`` long, a new one every ``slide`` (which
  divides ``size``); an event belongs to every window covering it.
- :class:`SessionWindow`: per key, events closer than ``gap`` belong to one
  session ``[first_ts, last_ts + gap)``; sessions that an event bridges merge.

Lateness is decided per window: an event is late for a fixed window when the
window's end is <= the watermark the event met, and late for sessions when
``ts + gap`` is <= it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import polars as pl

WINDOW_START = "window_start"
WINDOW_END = "window_end"


class _Fixed:
    """What tumbling and sliding windows share: ``size_ms`` long, one every ``slide_ms``."""

    size_ms: int
    slide_ms: int

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


@dataclass(frozen=True)
class SessionWindow:
    """Per key, a session is a run of events each less than ``gap_ms`` after the previous.

    A session ``[first_ts, last_ts + gap)`` ends ``gap`` after its last event.
    """

    gap_ms: int

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            msg = f"a session gap must be > 0 ms; got {self.gap_ms}"
            raise ValueError(msg)

    @property
    def extent_ms(self) -> int:
        return self.gap_ms


FixedWindow = Union[TumblingWindow, SlidingWindow]
Window = Union[TumblingWindow, SlidingWindow, SessionWindow]
