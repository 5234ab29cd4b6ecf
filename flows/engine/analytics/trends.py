"""Purchase trends: per product and event-time window, what shoppers did.

In: events. Out, per (window, product) with at least one event: ``views``,
``carts`` (add_to_cart), ``removes`` (remove_from_cart), ``purchases``,
``units`` (sum of purchase quantities), ``revenue`` (sum of price x quantity
over purchases; a purchase without a price adds 0), and a change indicator
against the same product in the *immediately preceding* window:

- ``revenue_change``: revenue minus the previous window's revenue (0 there
  when the product had no events in it); with sliding windows the previous
  window is the one starting one slide earlier;
- ``trend``: ``new`` when the product had no events in the preceding window,
  else ``up``/``down``/``flat`` comparing (revenue, purchases, views) in that
  order, so a product with views but no sales still trends.

A product that goes quiet produces no row (the next row it gets is ``new``).

The run summary tells how many windows there were, over what span of event
time, and the busiest window (:data:`TRENDS_FINDING`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import ExactSum, Sum, WindowedAggregate
from flows.engine.analytics.leaderboard import LEADERBOARD, leaderboard
from flows.engine.analytics.registry import Analytic
from flows.engine.errors import ConfigError
from flows.engine.findings import Finding, amount, iso, lasting, micros, minute, sum_by
from flows.engine.money import line_micros, money
from flows.engine.present import as_time
from flows.engine.schema import ClosedWindows
from flows.engine.setting import Group, at_least, duration, integer, optional, positive, setting, whole_seconds
from flows.engine.streams import INT, MONEY, TEXT, TIME, Column, OutputStream
from flows.engine.windows import WINDOW_END, WINDOW_START, FixedWindow, SlidingWindow, TumblingWindow
from flows.engine.wiring import Wiring


def trends_aggregate(window: FixedWindow) -> WindowedAggregate:
    """The per-product counters, declared for the engine (tumbling or sliding windows)."""
    event_type = pl.col("event_type")
    purchase = event_type == "purchase"
    return WindowedAggregate(
        name="trends",
        keys=("product_id",),
        window=window,
        measures={
            "views": Sum(event_type == "view"),
            "carts": Sum(event_type == "add_to_cart"),
            "removes": Sum(event_type == "remove_from_cart"),
            "purchases": Sum(purchase),
            "units": Sum(pl.when(purchase).then(pl.col("quantity")).otherwise(0)),
            "revenue_micros": ExactSum(pl.when(purchase).then(line_micros()).otherwise(0)),
        },
    )


def compare_with_previous(rows: pl.DataFrame, previous: pl.DataFrame, step_ms: int) -> pl.DataFrame:
    """Add ``revenue_change_micros`` and ``trend`` to complete window rows.

    ``previous`` holds the rows of the last window completed before ``rows``;
    ``rows`` may span several consecutive windows, ``step_ms`` apart (the slide). One sorted pass: a row's
    predecessor is the row before it when that is the same product in the
    window just before (a join costs several times more on these frames).

    >>> prev = pl.DataFrame({"window_start": [0], "product_id": ["a"], "views": [3],
    ...     "purchases": [1], "revenue_micros": [5_000_000]})
    >>> now = pl.DataFrame({"window_start": [60_000, 60_000], "product_id": ["a", "b"],
    ...     "views": [1, 2], "purchases": [1, 0], "revenue_micros": [7_000_000, 0]})
    >>> compare_with_previous(now, prev, 60_000).select("product_id", "revenue_change_micros", "trend").rows()
    [('a', 2000000, 'up'), ('b', 0, 'new')]
    """
    both = pl.concat([previous.select(rows.columns), rows], how="vertical") if previous.height else rows
    adjacent = (pl.col("product_id").shift(1) == pl.col("product_id")) & (
        pl.col(WINDOW_START).shift(1) == pl.col(WINDOW_START) - step_ms
    )

    def before(column: str) -> pl.Expr:
        return pl.when(adjacent).then(pl.col(column).shift(1))

    up, down = pl.lit(False), pl.lit(False)
    for column in ("views", "purchases", "revenue_micros"):  # least significant first
        now, prev = pl.col(column), before(column)
        up = (now > prev) | ((now == prev) & up)
        down = (now < prev) | ((now == prev) & down)
    trend = (
        pl.when(~adjacent.fill_null(False))
        .then(pl.lit("new"))
        .when(up)
        .then(pl.lit("up"))
        .when(down)
        .then(pl.lit("down"))
        .otherwise(pl.lit("flat"))
    )
    change = pl.col("revenue_micros") - before("revenue_micros").fill_null(0)
    compared = both.sort(["product_id", WINDOW_START]).with_columns(
        change.alias("revenue_change_micros"), trend.alias("trend")
    )
    if previous.height:  # previous rows were only there to be looked back at
        compared = compared[(compared[WINDOW_START] > previous[WINDOW_START].max()).arg_true()]
    return compared.sort([WINDOW_START, "product_id"])


def present(rows: pl.DataFrame, window: FixedWindow) -> pl.DataFrame:
    """Engine rows -> typed output rows (:data:`TRENDS`)."""
    return rows.select(
        as_time(WINDOW_START).alias("window_start"),
        as_time(pl.col(WINDOW_START) + window.size_ms).alias("window_end"),
        "product_id",
        "views",
        "carts",
        "removes",
        "purchases",
        "units",
        money("revenue_micros").alias("revenue"),
        money("revenue_change_micros").alias("revenue_change"),
        "trend",
    )


class TrendChange(StatefulBatchLogic[ClosedWindows, pl.DataFrame, pl.DataFrame | None]):
    """Complete trend windows (in window order) -> output rows with the change indicator.

    Keeps only the rows of the last complete window (bounded by the
    catalog), since "previous" means the immediately preceding window.
    """

    def __init__(self, window: FixedWindow, resume: pl.DataFrame | None) -> None:
        self.window = window
        self.last = resume

    def on_batch(self, values: list[ClosedWindows]) -> tuple[list[pl.DataFrame], bool]:
        out = []
        for closed in values:
            rows = closed.rows
            if not rows.height:
                continue
            previous = self.last if self.last is not None else rows.clear()
            compared = compare_with_previous(rows, previous, self.window.slide_ms)
            out.append(present(compared, self.window))
            last_start = rows[WINDOW_START].max()
            self.last = rows[(rows[WINDOW_START] == last_start).arg_true()]
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> pl.DataFrame | None:
        return self.last


@dataclass(frozen=True)
class TrendSettings(Group):
    """Trends and the leaderboard."""

    window_ms: int = setting("DMP_WINDOW", "1m", duration,
                             "Event-time window length of trends and the leaderboard, aligned to the Unix epoch "
                             "(whole seconds)", positive, whole_seconds)
    window_slide_ms: int | None = setting("DMP_WINDOW_SLIDE", "", optional(duration),
                                          "Start a window every this often (sliding windows; must divide "
                                          "`DMP_WINDOW`); unset: tumbling windows", positive, whole_seconds)
    top_n: int = setting("DMP_TOP_N", "10", integer, "Rows per window in the leaderboard", at_least(1))

    def check(self) -> None:
        if self.window_slide_ms is not None and self.window_ms % self.window_slide_ms:
            raise ConfigError(f"DMP_WINDOW_SLIDE: must divide DMP_WINDOW ({self.window_ms} ms); "
                              f"got {self.window_slide_ms} ms")

    @property
    def window(self) -> FixedWindow:
        """The trend windows: tumbling, or sliding when ``DMP_WINDOW_SLIDE`` is set."""
        slide = self.window_slide_ms
        if slide is None or slide == self.window_ms:
            return TumblingWindow(self.window_ms)
        return SlidingWindow(self.window_ms, slide)


def window_totals(rows: pl.DataFrame) -> pl.DataFrame:
    """Trends rows -> per window (and its length): events, products with events, views, purchases, revenue (micros)."""
    length = (pl.col(WINDOW_END) - pl.col(WINDOW_START)).dt.total_milliseconds().alias("window_ms")
    return rows.group_by(WINDOW_START, length).agg(
        pl.sum_horizontal("views", "carts", "removes", "purchases").sum().alias("events"),
        pl.len().cast(pl.Int64).alias("products"), pl.col("views", "purchases").sum(),
        micros("revenue").sum().alias("revenue_micros"),
    )


def _windows_result(windows: pl.DataFrame) -> dict[str, Any]:
    if not windows.height:
        return {"windows": 0}
    busiest = windows.sort(["events", WINDOW_START], descending=[True, False]).head(1).with_columns(
        iso(WINDOW_START)).row(0, named=True)
    window_ms, first, last = windows.select(
        pl.col("window_ms").max(), pl.col(WINDOW_START).min(),
        (pl.col(WINDOW_START) + pl.duration(milliseconds=pl.col("window_ms"))).max().alias("to"),
    ).with_columns(iso(WINDOW_START), iso("to")).row(0)
    return {
        "windows": windows.height, "window_s": window_ms / 1000, "from": first, "to": last,
        "busiest": {"window_start": busiest[WINDOW_START], "events": busiest["events"],
                    "views": busiest["views"], "purchases": busiest["purchases"],
                    "revenue": amount(busiest["revenue_micros"]), "products": busiest["products"]},
    }


def _windows_lines(found: dict[str, Any]) -> list[str]:
    if not found["windows"]:
        return ["no windows"]
    busiest = found["busiest"]
    return [f"{found['windows']:,} windows of {lasting(found['window_s'] * 1000)}, "
            f"{minute(found['from'])} to {minute(found['to'])}",
            f"busiest {minute(busiest['window_start'])}: {busiest['events']:,} events, {busiest['views']:,} views, "
            f"{busiest['purchases']:,} purchases, revenue {busiest['revenue']:,.2f}"]


TRENDS_FINDING = Finding(window_totals, sum_by(WINDOW_START, "window_ms"), _windows_result, _windows_lines)
"""Windows, their span of event time, and the busiest: the most events (views, carts, removes, purchases), earliest."""

TRENDS = OutputStream(
    "trends",
    row="product with at least one event in a window",
    fields="`window_start`, `window_end` (ISO-8601 UTC, `Z`), `product_id`, `views`, `carts` (add_to_cart), "
    "`removes` (remove_from_cart), `purchases`, `units` (sum of purchase quantities), `revenue` (sum of price x "
    "quantity over purchases; a purchase without a price adds 0), `revenue_change`, `trend`",
    key=(WINDOW_START, "product_id"),
    columns=(
        Column(WINDOW_START, TIME, nullable=False),
        Column(WINDOW_END, TIME, nullable=False),
        Column("product_id", TEXT, nullable=False),
        *(Column(name, INT, nullable=False) for name in ("views", "carts", "removes", "purchases", "units")),
        Column("revenue", MONEY, nullable=False),
        Column("revenue_change", MONEY, nullable=False),
        Column("trend", TEXT, nullable=False),
    ),
    finding=TRENDS_FINDING,
)


def wire(w: Wiring) -> None:
    """trends_windows -> compare_with_previous_window -> trends; rank_top_n -> leaderboard."""
    settings = w.group(TrendSettings)
    window, top_n = settings.window, settings.top_n
    windows = w.window("trends", trends_aggregate(window))  # Windowed(results, late, quality)
    trends = op.stateful_batch("compare_with_previous_window", windows.results, lambda r: TrendChange(window, r))
    board = op.map_value("rank_top_n", windows.results, lambda closed: leaderboard(closed.rows, top_n, window.size_ms))
    w.write(TRENDS, trends)
    w.write(LEADERBOARD, board)


ANALYTICS = (
    Analytic(
        "trends", 10, "per product and window: views, carts, purchases, revenue and a change indicator; the top N",
        streams=(TRENDS, LEADERBOARD), wire=wire, settings=TrendSettings,
        dedup_windows=lambda settings: (settings.group(TrendSettings).window,),
    ),
)
