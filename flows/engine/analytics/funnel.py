"""Ordered conversion funnel: per window and category, who viewed, then carted, then bought.

In: events (``ts``, ``user_id``, ``event_type``, ``category``) in tumbling
event-time windows; only on-time events count (the engine leaves late ones
out). Out, per (window, category) with at least one viewer, plus a row with
``category = "*"`` per window over all events whatever their category:

- For each user, in that window and category: ``v``, the time of their
  first ``view``; ``c``, their first ``add_to_cart`` at or after ``v``;
  ``p``, their first ``purchase`` at or after ``c`` (earliest-greedy, the
  standard ordered funnel; equal times count as in order). Carts and
  purchases without an earlier view do not count; ``remove_from_cart`` is
  ignored.
- ``viewed``, ``carted``, ``purchased``: distinct users with ``v``, ``c``, ``p``.
- ``view_to_cart`` = carted / viewed; ``cart_to_purchase`` = purchased /
  carted (null when nobody carted); ``conversion`` = purchased / viewed.
- ``median_time_to_purchase_s``: median of ``p - v`` over the users who
  purchased, in seconds (the mean of the two middle values for an even
  count; null when nobody purchased).

Events without a category count only in the ``"*"`` row. The ``"*"`` row
follows a user across categories: a view in one category and a cart in
another count as a cart in the ``"*"`` row only. Windows are
independent: a view in one window and a purchase in the next make no
funnel in either.

The run summary adds the windows up (:data:`FUNNEL_FINDING`): a user counts
once per window, as in the rows; and names the categories converting best
and worst among those with at least 1% of the viewers.

Two steps, so that each user's events are in one shard:
:func:`funnel_function` runs per shard on each closed window's events and
gives every viewer's stage times; :func:`funnel_rows` counts them per
complete window (every shard's rows together).

>>> events = pl.DataFrame({"ts": [0, 5_000, 9_000, 1_000, 2_000],
...     "user_id": ["u1", "u1", "u1", "u2", "u2"],
...     "event_type": ["view", "add_to_cart", "purchase", "add_to_cart", "view"],
...     "category": ["shoes", "shoes", "shoes", "shoes", "hats"], "window_start": [0] * 5})
>>> stages = funnel_function(TumblingWindow(3_600_000)).function(events)
>>> funnel_rows(stages, 3_600_000).select(
...     "category", "viewed", "carted", "purchased", "median_time_to_purchase_s").rows()
[('*', 2, 1, 1, 9.0), ('hats', 1, 0, 0, None), ('shoes', 1, 1, 1, 9.0)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import polars as pl

from flows.engine.aggregate import WindowedFunction
from flows.engine.analytics.registry import Analytic
from flows.engine.findings import Finding, lasting, share, sum_by
from flows.engine.present import as_time, seconds
from flows.engine.setting import Group, duration, positive, setting, whole_seconds
from flows.engine.streams import FLOAT, INT, TEXT, TIME, Column, OutputStream
from flows.engine.windows import WINDOW_END, WINDOW_START, TumblingWindow
from flows.engine.wiring import Wiring

ALL_CATEGORIES = "*"

STAGE_SCHEMA = pl.Schema(
    {
        WINDOW_START: pl.Int64,
        "category": pl.String,
        "user_id": pl.String,
        "viewed_at": pl.Int64,
        "carted_at": pl.Int64,
        "purchased_at": pl.Int64,
    }
)
"""What :func:`funnel_function` gives: one row per window, category and user who viewed."""

_STAGES = ("viewed", "carted", "purchased")
MIN_CATEGORY_SHARE = 0.01
"""A category must have this share of all viewers to be named the best or worst converting (not one lone buyer)."""


def _funnel_totals(rows: pl.DataFrame) -> pl.DataFrame:
    """Funnel rows -> per category (and window length): windows, and users at each stage summed over them."""
    length = (pl.col(WINDOW_END) - pl.col(WINDOW_START)).dt.total_milliseconds().alias("window_ms")
    return rows.group_by("category", length).agg(pl.len().cast(pl.Int64).alias("windows"), pl.col(_STAGES).sum())


def _funnel_result(totals: pl.DataFrame) -> dict[str, Any]:
    overall = totals.filter(pl.col("category") == ALL_CATEGORIES)
    if not overall.height:
        return {"windows": 0}
    viewed, carted, purchased = (int(overall[name].sum()) for name in _STAGES)
    categories = totals.filter(pl.col("category") != ALL_CATEGORIES).group_by("category").agg(pl.col(_STAGES).sum())
    big = categories.filter(pl.col("viewed") >= MIN_CATEGORY_SHARE * viewed).with_columns(
        (pl.col("purchased") / pl.col("viewed")).alias("conversion"))

    def category(row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name in ("category", "viewed", "purchased", "conversion")}

    by_rate = big.sort(["conversion", "category"], descending=[True, False])
    return {
        "windows": int(overall["windows"].sum()), "window_s": overall.select(pl.col("window_ms").max()).item() / 1000,
        "viewed": viewed, "carted": carted, "purchased": purchased,
        "view_to_cart": carted / viewed, "cart_to_purchase": purchased / carted if carted else None,
        "conversion": purchased / viewed, "categories": categories.height,
        "best_category": category(by_rate.row(0, named=True)) if big.height else None,
        "worst_category": category(by_rate.row(-1, named=True)) if big.height > 1 else None,
    }


def _funnel_lines(found: dict[str, Any]) -> list[str]:
    if not found["windows"]:
        return []
    viewed, carted, purchased = (found[name] for name in _STAGES)
    categories = [f"{which} {c['category']} {share(c['purchased'], c['viewed'])}"
                  for which in ("best", "worst") if (c := found[f"{which}_category"]) is not None]
    counted = f"users per {lasting(found['window_s'] * 1000)} window"
    return [f"viewed {viewed:,} -> carted {carted:,} ({share(carted, viewed)}) -> bought {purchased:,} "
            f"({share(purchased, carted)}): {share(purchased, viewed)} conversion",
            f"{counted}; {', '.join(categories)}" if categories else counted]


FUNNEL_FINDING = Finding(_funnel_totals, sum_by("category", "window_ms"), _funnel_result, _funnel_lines)
"""Viewers, carts and buyers of every window together (``*`` rows), and the best and worst converting categories."""

FUNNEL = OutputStream(
    "funnel",
    row="window and category (and `*` for all)",
    fields="`window_start`, `window_end`, `category`, `viewed`, `carted`, `purchased` (distinct users at each "
    "ordered step), `view_to_cart`, `cart_to_purchase`, `conversion` (purchased / viewed), "
    "`median_time_to_purchase_s` (first view to first purchase, over the users who purchased)",
    key=(WINDOW_START, "category"),
    columns=(
        Column(WINDOW_START, TIME, nullable=False),
        Column(WINDOW_END, TIME, nullable=False),
        Column("category", TEXT, nullable=False),
        *(Column(name, INT, nullable=False) for name in ("viewed", "carted", "purchased")),
        Column("view_to_cart", FLOAT, nullable=False),
        Column("cart_to_purchase", FLOAT),
        Column("conversion", FLOAT, nullable=False),
        Column("median_time_to_purchase_s", FLOAT),
    ),
    finding=FUNNEL_FINDING,
)
OUTPUT_SCHEMA = FUNNEL.schema

_GROUP = [WINDOW_START, "category", "user_id"]


def funnel_function(window: TumblingWindow) -> WindowedFunction:
    """The per-user stage times, declared for the engine (keyed by user, so a user is in one shard)."""
    return WindowedFunction("funnel", ("user_id",), window, ("event_type", "category"), funnel_stages)


def funnel_stages(events: pl.DataFrame) -> pl.DataFrame:
    """On-time events of closed windows -> each viewer's stage times (:data:`STAGE_SCHEMA`).

    ``events`` has ``ts``, ``user_id``, ``event_type``, ``category`` and
    ``window_start``. One row per (window, category or ``"*"``, user) with a
    view; ``carted_at`` / ``purchased_at`` are null for a stage not reached.

    Each stage is a plain per-group minimum over the events of one type, joined
    to the stage before it: a condition on another aggregate inside one
    ``group_by`` (first cart at or after the first view) makes Polars evaluate
    every group on its own, ~4x slower on a window's ~100,000 users.
    """
    columns = events.select(WINDOW_START, "category", "user_id", "ts", "event_type")
    scoped = pl.concat(
        [
            columns.filter(pl.col("category").is_not_null()),
            columns.with_columns(pl.lit(ALL_CATEGORIES, pl.String).alias("category")),
        ],
        how="vertical",
    )
    viewed = scoped.filter(pl.col("event_type") == "view").group_by(_GROUP).agg(pl.col("ts").min().alias("viewed_at"))
    carted = _first_after(scoped, "add_to_cart", viewed, "carted_at")  # without a view, no cart passes
    purchased = _first_after(scoped, "purchase", carted, "purchased_at")
    stages = viewed.join(carted, on=_GROUP, how="left").join(purchased, on=_GROUP, how="left")
    return stages.select(pl.col(name).cast(dtype) for name, dtype in STAGE_SCHEMA.items())


def _first_after(events: pl.DataFrame, kind: str, before: pl.DataFrame, name: str) -> pl.DataFrame:
    """Per group of ``before`` (keys and one time), the first ``kind`` event at or after that time, as ``name``."""
    after = before.columns[-1]
    return (
        events.filter(pl.col("event_type") == kind)
        .join(before, on=_GROUP, how="inner")
        .filter(pl.col("ts") >= pl.col(after))
        .group_by(_GROUP)
        .agg(pl.col("ts").min().alias(name))
    )


def funnel_rows(stages: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """Stage times of complete windows (:data:`STAGE_SCHEMA`) -> output rows (:data:`FUNNEL`).

    Rows per (window, category) sorted by window then category (``"*"``
    sorts first); ``window_end`` is ``window_start + window_ms``.
    """
    if not stages.height:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    counts = (
        stages.group_by(WINDOW_START, "category")
        .agg(
            pl.len().cast(pl.Int64).alias("viewed"),
            pl.col("carted_at").count().cast(pl.Int64).alias("carted"),
            pl.col("purchased_at").count().cast(pl.Int64).alias("purchased"),
            (pl.col("purchased_at") - pl.col("viewed_at")).median().alias("median_ms"),
        )
        .sort(WINDOW_START, "category")
    )
    viewed, carted, purchased = pl.col("viewed"), pl.col("carted"), pl.col("purchased")
    # Column by column division is correctly rounded (unlike division by a scalar).
    return counts.select(
        as_time(WINDOW_START).alias("window_start"),
        as_time(pl.col(WINDOW_START) + window_ms).alias("window_end"),
        "category",
        viewed,
        carted,
        purchased,
        (carted / viewed).alias("view_to_cart"),
        pl.when(carted > 0).then(purchased / carted).alias("cart_to_purchase"),
        (purchased / viewed).alias("conversion"),
        seconds(pl.col("median_ms")).alias("median_time_to_purchase_s"),
    )


@dataclass(frozen=True)
class FunnelSettings(Group):
    """The ordered conversion funnel."""

    funnel_window_ms: int = setting("DMP_FUNNEL_WINDOW", "1h", duration, "Tumbling window of the funnel",
                                    positive, whole_seconds)

    @property
    def window(self) -> TumblingWindow:
        return TumblingWindow(self.funnel_window_ms)


def wire(w: Wiring) -> None:
    """funnel_windows (per user) -> funnel_rates -> funnel."""
    window = w.group(FunnelSettings).window
    steps = w.window("funnel", funnel_function(window))
    w.write(FUNNEL, op.map_value("funnel_rates", steps.results, lambda done: funnel_rows(done.rows, window.size_ms)))


ANALYTICS = (
    Analytic(
        "funnel", 30, "per window and category: users who viewed, then carted, then bought",
        streams=(FUNNEL,), wire=wire, settings=FunnelSettings, fields=("category",),
        dedup_windows=lambda settings: (settings.group(FunnelSettings).window,),
    ),
)
