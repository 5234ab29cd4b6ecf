"""Product sales leaderboard: the global top N products by revenue per window.

In: complete trend windows (every shard's rows, see
:class:`~flows.engine.shards.WindowGather`). Out, per window, up to N
rows: ``window_start``, ``window_end``, ``rank`` (1..N), ``product_id``,
``revenue``, ``units``, ``purchases``; only products with purchases in the
window; ordered by revenue desc, then units desc, then product_id asc.
Because the windows are complete, this is the true global top N.
"""

from __future__ import annotations

import polars as pl

from flows.engine.money import money
from flows.engine.present import iso
from flows.engine.windows import WINDOW_START

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


def top_n(rows: pl.DataFrame, n: int) -> pl.DataFrame:
    """The top ``n`` products with purchases per window, ranked.

    >>> rows = pl.DataFrame({"window_start": [0, 0, 0, 0], "product_id": ["b", "a", "c", "d"],
    ...     "revenue_micros": [5, 5, 9, 0], "units": [1, 1, 1, 0], "purchases": [1, 1, 1, 0]})
    >>> top_n(rows, 2).select("rank", "product_id").rows()
    [(1, 'c'), (2, 'a')]
    """
    sold = rows.select(WINDOW_START, "product_id", "revenue_micros", "units", "purchases")
    sold = sold[(sold["purchases"] > 0).arg_true()]
    ranked = sold.sort(
        [WINDOW_START, "revenue_micros", "units", "product_id"], descending=[False, True, True, False]
    )
    # Sorted by window: rank = row index minus the index of its window's first row.
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    first = pl.when(pl.col(WINDOW_START) != pl.col(WINDOW_START).shift(1)).then(index).forward_fill()
    ranked = ranked.with_columns((index - first.fill_null(0) + 1).alias("rank"))
    return ranked[(ranked["rank"] <= n).arg_true()]


def leaderboard(rows: pl.DataFrame, n: int, window_ms: int) -> pl.DataFrame:
    """Complete window rows -> leaderboard output rows (:data:`OUTPUT_SCHEMA`)."""
    return top_n(rows, n).select(
        iso(WINDOW_START).alias("window_start"),
        iso(pl.col(WINDOW_START) + window_ms).alias("window_end"),
        pl.col("rank"),
        "product_id",
        money("revenue_micros").alias("revenue"),
        "units",
        "purchases",
    )
