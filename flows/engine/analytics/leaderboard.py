"""Product sales leaderboard: the global top N products by revenue per window.

In: complete trend windows (every shard's rows, see
:class:`~flows.engine.shards.WindowGather`). Out, per window, up to N
rows: ``window_start``, ``window_end``, ``rank`` (1..N), ``product_id``,
``revenue``, ``units``, ``purchases``; only products with purchases in the
window; ordered by revenue desc, then units desc, then product_id asc.
Because the windows are complete, this is the true global top N. The run
summary names the products first in the most windows.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from flows.engine.findings import Finding, listed, sum_by
from flows.engine.money import money
from flows.engine.present import as_time
from flows.engine.streams import INT, MONEY, TEXT, TIME, Column, OutputStream
from flows.engine.windows import WINDOW_END, WINDOW_START

_LEADERS_SHOWN = 3


def _leaders(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.filter(pl.col("rank") == 1).group_by("product_id").agg(pl.len().cast(pl.Int64).alias("windows"))


def _leaders_result(leaders: pl.DataFrame) -> dict[str, Any]:
    top = leaders.sort(["windows", "product_id"], descending=[True, False]).head(_LEADERS_SHOWN)
    return {"windows": int(leaders["windows"].sum()),
            "most_often_first": [{"product_id": p, "windows": n} for p, n in top.iter_rows()]}


def _leaders_lines(found: dict[str, Any]) -> list[str]:
    if not found["windows"]:
        return []
    firsts = listed((p["product_id"], p["windows"]) for p in found["most_often_first"])
    return [f"most often first of {found['windows']:,} windows: {firsts}"]


LEADERS = Finding(_leaders, sum_by("product_id"), _leaders_result, _leaders_lines)
"""The products ranked first in the most windows (ties: the smaller id), of the windows with sales."""

LEADERBOARD = OutputStream(
    "leaderboard",
    row="rank in a window",
    fields="`window_start`, `window_end`, `rank` (1..N), `product_id`, `revenue`, `units`, `purchases`: the top N "
    "products with purchases, by revenue desc, then units desc, then product_id asc (as text), over all shards",
    key=(WINDOW_START, "rank"),
    columns=(
        Column(WINDOW_START, TIME, nullable=False),
        Column(WINDOW_END, TIME, nullable=False),
        Column("rank", INT, nullable=False),
        Column("product_id", TEXT, nullable=False),
        Column("revenue", MONEY, nullable=False),
        Column("units", INT, nullable=False),
        Column("purchases", INT, nullable=False),
    ),
    finding=LEADERS,
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
    """Complete window rows -> typed leaderboard rows (:data:`LEADERBOARD`)."""
    return top_n(rows, n).select(
        as_time(WINDOW_START).alias("window_start"),
        as_time(pl.col(WINDOW_START) + window_ms).alias("window_end"),
        pl.col("rank"),
        "product_id",
        money("revenue_micros").alias("revenue"),
        "units",
        "purchases",
    )
