"""Product sales leaderboard: the global top N products by revenue per window.

In: closed trend windows from every shard. Out, per window, up to N rows:
``window_start``, ``window_end``, ``rank`` (1..N), ``product_id``,
``revenue``, ``units``, ``purchases``; only products with purchases in the
window; ordered by revenue desc, then units desc, then product_id asc.

Each shard sends its own top N per closed window (a product lives on one
shard, so the global top N is among them) together with how far it has
closed; one merger emits a window once *every* shard has closed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import WINDOW_START, ClosedWindows
from flows.engine.present import iso, money
from flows.engine.schema import BEGINNING_OF_TIME, END_OF_TIME

OUTPUT_SCHEMA = pl.Schema(
    {
        "window_start": pl.String,
        "window_end": pl.String,
        "rank": pl.Int64,
        "product_id": pl.String,
        "revenue": pl.Float64,
        "units": pl.Int64,
        "purchases": pl.Int64,
    }
)

_COLUMNS = [WINDOW_START, "product_id", "revenue_micros", "units", "purchases"]


def top_n(rows: pl.DataFrame, n: int) -> pl.DataFrame:
    """The top ``n`` products with purchases per window, ranked.

    >>> rows = pl.DataFrame({"window_start": [0, 0, 0, 0], "product_id": ["b", "a", "c", "d"],
    ...     "revenue_micros": [5, 5, 9, 0], "units": [1, 1, 1, 0], "purchases": [1, 1, 1, 0]})
    >>> top_n(rows, 2).select("rank", "product_id").rows()
    [(1, 'c'), (2, 'a')]
    """
    ranked = (
        rows.filter(pl.col("purchases") > 0)
        .select(_COLUMNS)
        .sort(
            [WINDOW_START, "revenue_micros", "units", "product_id"],
            descending=[False, True, True, False],
        )
        .group_by(WINDOW_START, maintain_order=True)
        .head(n)
    )
    return ranked.with_columns((pl.int_range(pl.len()).over(WINDOW_START) + 1).alias("rank"))


def present(ranked: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """Ranked engine rows -> output rows (:data:`OUTPUT_SCHEMA`)."""
    return ranked.select(
        iso(WINDOW_START).alias("window_start"),
        iso(pl.col(WINDOW_START) + window_ms).alias("window_end"),
        pl.col("rank").cast(pl.Int64),
        "product_id",
        money("revenue_micros").alias("revenue"),
        "units",
        "purchases",
    )


@dataclass(frozen=True)
class Candidates:
    """One shard's top rows for the windows it just closed, and its progress."""

    shard: str
    rows: pl.DataFrame
    closed_until: int


def candidates(shard: str, closed: ClosedWindows, n: int) -> Candidates:
    return Candidates(shard, top_n(closed.rows, n).drop("rank"), closed.closed_until)


@dataclass
class MergeState:
    progress: dict[str, int]
    pending: pl.DataFrame | None


class LeaderboardMerge(StatefulBatchLogic[Candidates, pl.DataFrame, MergeState]):
    """Merges every shard's candidates; emits a window when all shards closed it."""

    def __init__(self, n: int, shards: int, window_ms: int, resume: MergeState | None) -> None:
        self.n = n
        self.window_ms = window_ms
        known = resume.progress if resume is not None else {}
        self.progress = {str(s): known.get(str(s), BEGINNING_OF_TIME) for s in range(shards)}
        self.pending = resume.pending if resume is not None else None

    def on_batch(self, values: list[Candidates]) -> tuple[list[pl.DataFrame], bool]:
        frames = [self.pending] if self.pending is not None else []
        for item in values:
            frames.append(item.rows)
            self.progress[item.shard] = max(self.progress[item.shard], item.closed_until)
        self.pending = pl.concat(frames, how="vertical") if frames else None
        return self._emit(min(self.progress.values())), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[pl.DataFrame], bool]:
        # End of input: every shard has sent everything it will ever send.
        return self._emit(END_OF_TIME), StatefulBatchLogic.RETAIN

    def _emit(self, until: int) -> list[pl.DataFrame]:
        if self.pending is None or not self.pending.height:
            return []
        done = pl.col(WINDOW_START) + self.window_ms <= until
        ready = self.pending.filter(done)
        if not ready.height:
            return []
        self.pending = self.pending.filter(~done)
        return [present(top_n(ready, self.n), self.window_ms)]

    def snapshot(self) -> MergeState:
        return MergeState(dict(self.progress), self.pending)
