"""Window specifications: which event-time windows an event belongs to.

Windows are half-open ``[start, end)`` intervals of epoch milliseconds,
aligned to the Unix epoch, so the same event always lands in the same
window whatever the batch, worker or run.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class TumblingWindow:
    """Back-to-back windows of ``size_ms``: ``[k * size, (k + 1) * size)``.

    >>> w = TumblingWindow(60_000)
    >>> pl.DataFrame({"ts": [59_999, 60_000, -1]}).select(w.start(pl.col("ts")))["ts"].to_list()
    [0, 60000, -60000]
    """

    size_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0:
            msg = f"window size must be > 0 ms; got {self.size_ms}"
            raise ValueError(msg)

    def start(self, ts: pl.Expr) -> pl.Expr:
        """Start of the window holding each ``ts`` (floor division, so negatives work)."""
        return (ts // self.size_ms) * self.size_ms

    def end(self, start: pl.Expr) -> pl.Expr:
        return start + self.size_ms

    def closed_until(self, watermark: int) -> int:
        """The latest window end that a watermark has passed (windows ending there are closed)."""
        return (watermark // self.size_ms) * self.size_ms
