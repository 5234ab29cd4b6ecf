"""Trends and leaderboard logic, on frame literals."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.analytics.leaderboard import LEADERBOARD, leaderboard, top_n
from flows.engine.analytics.trends import TRENDS, TrendChange, compare_with_previous, trends_aggregate
from flows.engine.money import money
from flows.engine.schema import ClosedWindows
from flows.engine.windows import TumblingWindow

MINUTE = 60_000


def window_rows(rows: list[tuple]) -> pl.DataFrame:
    """(window_start, product, views, purchases, revenue_micros) rows."""
    return pl.DataFrame(
        rows,
        schema={"window_start": pl.Int64, "product_id": pl.String, "views": pl.Int64,
                "purchases": pl.Int64, "revenue_micros": pl.Int64},
        orient="row",
    )


@pytest.mark.parametrize(
    ("before", "now", "trend"),
    [
        ((5, 1, 10), (5, 1, 20), "up"),  # more revenue
        ((5, 1, 30), (9, 2, 20), "down"),  # revenue decides before purchases and views
        ((5, 1, 20), (5, 2, 20), "up"),  # same revenue, more purchases
        ((5, 1, 20), (4, 1, 20), "down"),  # same revenue and purchases, fewer views
        ((5, 1, 20), (5, 1, 20), "flat"),
    ],
)
def test_trend_compares_revenue_then_purchases_then_views(before, now, trend):
    previous = window_rows([(0, "a", *before)])
    current = window_rows([(MINUTE, "a", *now)])
    result = compare_with_previous(current, previous, MINUTE)
    assert result["trend"].to_list() == [trend]
    assert result["revenue_change_micros"].to_list() == [now[2] - before[2]]


def test_a_product_absent_from_the_preceding_window_is_new():
    previous = window_rows([(0, "a", 5, 1, 10)])
    current = window_rows([(2 * MINUTE, "a", 5, 1, 10), (2 * MINUTE, "b", 1, 0, 0)])  # a skipped a window
    result = compare_with_previous(current, previous, MINUTE)
    assert result.select("product_id", "trend", "revenue_change_micros").rows() == [
        ("a", "new", 10),
        ("b", "new", 0),
    ]


def test_trend_change_compares_consecutive_windows_closed_together():
    logic = TrendChange(TumblingWindow(MINUTE), resume=None)
    closed = window_rows([(0, "a", 1, 0, 0), (MINUTE, "a", 3, 1, 5_000_000)])
    closed = closed.with_columns(
        pl.lit(0, pl.Int64).alias(c) for c in ("carts", "removes", "units")
    )
    (out,), _ = logic.on_batch([ClosedWindows(closed, 2 * MINUTE)])
    out = TRENDS.to_json(out)
    assert out.select("window_start", "trend", "revenue_change").rows() == [
        ("1970-01-01T00:00:00Z", "new", 0.0),
        ("1970-01-01T00:01:00Z", "up", 5.0),
    ]
    assert logic.snapshot()["window_start"].to_list() == [MINUTE]  # only the last window is kept


def test_revenue_counts_price_times_quantity_of_purchases_only():
    spec = trends_aggregate(TumblingWindow(MINUTE))
    events = pl.DataFrame(
        {
            "window_start": [0, 0, 0, 0],
            "product_id": ["a"] * 4,
            "event_type": ["purchase", "purchase", "view", "purchase"],
            "price": [19.99, 0.1, 500.0, None],
            "quantity": [3, 7, 1, 2],
        }
    )
    row = spec.partial(events).row(0, named=True)
    assert row["revenue_micros"] == 19_990_000 * 3 + 100_000 * 7  # a priceless purchase adds 0
    assert (row["purchases"], row["units"], row["views"]) == (3, 12, 1)
    assert pl.select(money(pl.lit(row["revenue_micros"]))).item() == 60.67


def board_rows(rows: list[tuple]) -> pl.DataFrame:
    """(window_start, product, revenue_micros, units, purchases) rows."""
    return pl.DataFrame(
        rows,
        schema={"window_start": pl.Int64, "product_id": pl.String, "revenue_micros": pl.Int64,
                "units": pl.Int64, "purchases": pl.Int64},
        orient="row",
    )


def test_leaderboard_orders_by_revenue_then_units_then_product_id():
    rows = board_rows(
        [
            (0, "b", 100, 1, 1),
            (0, "a", 100, 1, 1),
            (0, "c", 100, 5, 1),
            (0, "d", 900, 1, 1),
            (0, "e", 0, 0, 0),  # no purchases: never ranked
            (MINUTE, "z", 1, 1, 1),
        ]
    )
    ranked = top_n(rows, 3)
    assert ranked.select("window_start", "rank", "product_id").rows() == [
        (0, 1, "d"),
        (0, 2, "c"),
        (0, 3, "a"),
        (MINUTE, 1, "z"),
    ]


def test_leaderboard_rows_show_money_and_window_times():
    rows = board_rows([(0, "b", 70, 1, 1), (0, "a", 50, 2, 1)])
    expected = pl.DataFrame(
        {
            "window_start": ["1970-01-01T00:00:00Z"] * 2,
            "window_end": ["1970-01-01T00:01:00Z"] * 2,
            "rank": [1, 2],
            "product_id": ["b", "a"],
            "revenue": [0.00007, 0.00005],
            "units": [1, 2],
            "purchases": [1, 1],
        }
    )
    assert_frame_equal(LEADERBOARD.to_json(leaderboard(rows, 5, MINUTE)), expected)
    assert leaderboard(rows, 5, MINUTE).schema == LEADERBOARD.schema  # typed: times are UTC datetimes
