"""The correctness oracle: the same windows computed as one batch with Polars.

Written from the semantics in the README, independently of the streaming
engine (no engine function is reused here except output formatting):

- per partition, in partition order, an event meets the watermark
  ``max(ts of earlier events of its partition) - lateness``;
- it is a duplicate (dropped) when an earlier event of its partition had the
  same ``event_id`` and a time ``>= max(earlier ts) - horizon``;
- it belongs to every window ``[s, s + size)``, ``s`` a multiple of the
  slide, and is late for those whose end is ``<=`` its watermark;
- on-time events are summed per (window, product); trends compare with the
  product's row in the window one slide earlier; the leaderboard ranks
  products with purchases by revenue desc, units desc, product_id asc.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from flows.engine.money import money
from flows.engine.present import iso
from tests import window_oracle

MICROS = 1_000_000


def stamp(
    events_by_partition: Mapping[str, pl.DataFrame], lateness_ms: int, horizon_ms: int | None = None,
    tolerance_ms: int | None = None, earliest_ms: int | None = None,
) -> pl.DataFrame:
    """All events with ``partition``, the ``watermark`` each met (null: none yet) and ``duplicate``.

    Screening (:func:`tests.window_oracle.screen`) first, when asked for: quarantined events are left out.
    """
    frames = []
    for partition, events in events_by_partition.items():
        kept, _ = window_oracle.screen(events.with_row_index("_i").to_dicts(), tolerance_ms, earliest_ms)
        events = events[[e["_i"] for e in kept]] if kept else events.clear()
        duplicate, newest, earlier = [], None, []
        for event_id, ts in zip(events["event_id"].to_list(), events["ts"].to_list()):
            duplicate.append(
                horizon_ms is not None and event_id is not None and newest is not None
                and any(e == event_id and t >= newest - horizon_ms for e, t in earlier)
            )
            earlier.append((event_id, ts))
            newest = ts if newest is None else max(newest, ts)
        frames.append(
            events.with_columns(
                (pl.col("ts").cum_max().shift(1) - lateness_ms).alias("watermark"),
                pl.lit(partition).alias("partition"),
                pl.Series("duplicate", duplicate, dtype=pl.Boolean),
            )
        )
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame()


def expected(
    events_by_partition: Mapping[str, pl.DataFrame],
    window_ms: int,
    lateness_ms: int,
    top_n: int,
    slide_ms: int | None = None,
    horizon_ms: int | None = None,
    tolerance_ms: int | None = None,
    earliest_ms: int | None = None,
) -> dict[str, pl.DataFrame]:
    """Expected ``trends``, ``leaderboard`` and ``late`` rows (sorted), and ``duplicates`` (a count)."""
    slide_ms = slide_ms or window_ms
    stamped = stamp(events_by_partition, lateness_ms, horizon_ms, tolerance_ms, earliest_ms).with_row_index("event")
    duplicates = stamped.filter(pl.col("duplicate"))
    per_window = (
        stamped.filter(~pl.col("duplicate"))
        .with_columns(
            (pl.col("ts") - pl.col("ts") % slide_ms - pl.int_ranges(0, window_ms // slide_ms) * slide_ms).alias("start")
        )
        .explode("start")
    )
    is_late = ((pl.col("start") + window_ms) <= pl.col("watermark")).fill_null(False)
    on_time, late_pairs = per_window.filter(~is_late), per_window.filter(is_late)
    late = late_pairs.group_by("event", maintain_order=True).agg(
        pl.all().exclude("start").first(), pl.col("start").sort().alias("missed")
    ).with_columns(pl.col("missed").list.first().alias("start"))

    purchase = pl.col("event_type") == "purchase"
    micros = (pl.col("price").fill_null(0.0) * MICROS).round().cast(pl.Int64) * pl.col("quantity")
    sums = on_time.group_by("start", "product_id").agg(
        (pl.col("event_type") == "view").sum().cast(pl.Int64).alias("views"),
        (pl.col("event_type") == "add_to_cart").sum().cast(pl.Int64).alias("carts"),
        (pl.col("event_type") == "remove_from_cart").sum().cast(pl.Int64).alias("removes"),
        purchase.sum().cast(pl.Int64).alias("purchases"),
        pl.col("quantity").filter(purchase).sum().cast(pl.Int64).alias("units"),
        micros.filter(purchase).sum().cast(pl.Int64).alias("micros"),
    )
    previous = sums.select(
        (pl.col("start") + slide_ms).alias("start"),
        "product_id",
        pl.col("micros").alias("p_micros"),
        pl.col("purchases").alias("p_purchases"),
        pl.col("views").alias("p_views"),
    )
    joined = sums.join(previous, on=["start", "product_id"], how="left")
    key_now = [pl.col("micros"), pl.col("purchases"), pl.col("views")]
    key_prev = [pl.col("p_micros"), pl.col("p_purchases"), pl.col("p_views")]
    # Lexicographic comparison of (revenue, purchases, views), spelled out.
    up = (key_now[0] > key_prev[0]) | (
        (key_now[0] == key_prev[0])
        & ((key_now[1] > key_prev[1]) | ((key_now[1] == key_prev[1]) & (key_now[2] > key_prev[2])))
    )
    same = (key_now[0] == key_prev[0]) & (key_now[1] == key_prev[1]) & (key_now[2] == key_prev[2])
    trend = (
        pl.when(pl.col("p_micros").is_null())
        .then(pl.lit("new"))
        .when(up)
        .then(pl.lit("up"))
        .when(same)
        .then(pl.lit("flat"))
        .otherwise(pl.lit("down"))
    )
    trends = joined.select(
        iso("start").alias("window_start"),
        iso(pl.col("start") + window_ms).alias("window_end"),
        "product_id",
        "views",
        "carts",
        "removes",
        "purchases",
        "units",
        money("micros").alias("revenue"),
        money(pl.col("micros") - pl.col("p_micros").fill_null(0)).alias("revenue_change"),
        trend.alias("trend"),
    )

    ranked = (
        sums.filter(pl.col("purchases") > 0)
        .sort(["start", "micros", "units", "product_id"], descending=[False, True, True, False])
        .with_columns(pl.col("product_id").cum_count().over("start").alias("rank"))
        .filter(pl.col("rank") <= top_n)
    )
    leaderboard = ranked.select(
        iso("start").alias("window_start"),
        iso(pl.col("start") + window_ms).alias("window_end"),
        pl.col("rank").cast(pl.Int64),
        "product_id",
        money("micros").alias("revenue"),
        "units",
        "purchases",
    )
    late_rows = late.select(
        "event_id",
        iso("ts", millis=True).alias("ts"),
        "product_id",
        iso("start", millis=True).alias("window_start"),
        iso(pl.col("start") + window_ms, millis=True).alias("window_end"),
        pl.col("missed").list.eval(iso(pl.element(), millis=True)).alias("missed_windows"),
        iso("watermark", millis=True).alias("watermark"),
        "partition",
    )
    return {
        "trends": trends.sort(trends.columns),
        "leaderboard": leaderboard.sort(leaderboard.columns),
        "late": late_rows.sort(late_rows.columns),
        "duplicates": duplicates.height,
    }
