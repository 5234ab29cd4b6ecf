"""The simulated shop behaves like real shops: published e-commerce figures and the REES46 sample, side by side.

Run with ``-s`` to see the table. Session-level figures are measured the
same way on both: sessions by ``user_session`` (REES46) and ``session_id``
(the simulator), a cart meaning an ``add_to_cart`` (REES46's ``cart``).
The ranges asserted are the published ones documented in the simulator's
package docstring (:mod:`flows.engine.sources.simulator`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from flows import dmp
from flows.engine.config import Settings, SimSettings
from flows.engine.decode import decode_batch
from flows.engine.sources import SimSource
from flows.engine.sources.simulator import make_catalog
from flows.engine.testing import CapturedOutputs, read_source, run

REES46 = Path(__file__).parent / "data" / "rees46-2019-oct-sample.csv"
DAY = SimSettings(duration_ms=86_400_000)  # the defaults, one simulated day

# Published ranges (see the simulator's package docstring for the sources).
RANGES = {
    "views_per_session": (2.0, 6.0),
    "cart_rate": (0.05, 0.15),
    "conversion": (0.01, 0.04),
    "cart_abandonment": (0.60, 0.80),
}


def session_figures(events: pl.DataFrame) -> dict[str, float]:
    """Events (``session``, ``event_type`` of view / cart / purchase) -> the figures of the calibration table."""
    kind = pl.col("event_type")
    sessions = events.group_by("session").agg(
        (kind == "view").sum().alias("views"), (kind == "cart").sum().alias("carts"),
        (kind == "purchase").sum().alias("purchases"),
    )
    carted = sessions.filter(pl.col("carts") > 0)
    totals = sessions.select(pl.col("views", "carts", "purchases").sum()).row(0, named=True)
    return {
        "sessions": sessions.height,
        "views_per_session": sessions["views"].mean(),
        "cart_rate": (sessions["carts"] > 0).mean(),
        "conversion": (sessions["purchases"] > 0).mean(),
        "cart_abandonment": (carted["purchases"] == 0).mean() if carted.height else float("nan"),
        "view_to_cart": totals["carts"] / totals["views"],
        "cart_to_purchase": totals["purchases"] / totals["carts"] if totals["carts"] else float("nan"),
    }


def rees46_events() -> pl.DataFrame:
    frame = pl.read_csv(REES46, schema_overrides={"user_session": pl.String, "category_id": pl.String})
    return frame.select(pl.col("user_session").alias("session"), "event_type", "category_code", "price")


@pytest.fixture(scope="module")
def simulated_day() -> pl.DataFrame:
    """A simulated day with the default settings, through the real source and decoder."""
    frames = [decode_batch(batch).events for batches in read_source(SimSource(DAY)).values() for batch in batches]
    return pl.concat(frames).select(
        pl.col("session_id").alias("session"),
        pl.col("event_type").cast(pl.String).replace("add_to_cart", "cart"),
        "user_id", "product_id", "category", "price", "quantity", "ts",
    )


def test_sessions_convert_cart_and_abandon_as_real_shops_do(simulated_day: pl.DataFrame):
    sim, real = session_figures(simulated_day), session_figures(rees46_events())
    print("\n  figure               simulator   REES46 sample   published")
    for name in ("sessions", "views_per_session", "cart_rate", "conversion", "cart_abandonment", "view_to_cart",
                 "cart_to_purchase"):
        low, high = RANGES.get(name, (None, None))
        published = f"{low:g} - {high:g}" if low is not None else ""
        print(f"  {name:<20} {sim[name]:>9.4g}   {real[name]:>13.4g}   {published}")
    for name, (low, high) in RANGES.items():
        assert low <= sim[name] <= high, (name, sim[name])
    # Close to REES46 where its 17 minutes say something: views per session (cut short by the sample's end) and
    # session conversion. (Its carts are too few, 3 in 1,000 rows, to compare cart figures with.)
    assert real["views_per_session"] <= sim["views_per_session"] <= 2 * real["views_per_session"]
    assert 0.5 * real["conversion"] <= sim["conversion"] <= 2 * real["conversion"]


def test_category_prices_follow_rees46_and_look_like_a_catalogue(simulated_day: pl.DataFrame):
    real = (rees46_events().drop_nulls("category_code").group_by("category_code")
            .agg(pl.len().alias("events"), pl.col("price").median().alias("rees46")).filter(pl.col("events") >= 10))
    catalog = make_catalog(DAY.products, DAY.seed)
    ours = pl.DataFrame({"category_code": catalog.category, "price": catalog.price}).group_by("category_code").agg(
        pl.col("price").median().alias("simulator"), pl.len().alias("products"))
    both = real.join(ours, on="category_code").sort("events", descending=True)
    print("\n" + "\n".join(f"  {c:<40} simulator {s:>8.2f}   REES46 {r:>8.2f}" for c, s, r in
                            both.select("category_code", "simulator", "rees46").rows()))
    assert both.height >= 8
    assert ((both["simulator"] / both["rees46"]).is_between(1 / 1.3, 1.3)).all()
    # Shelf prices end in .99.
    assert ((catalog.price * 100).round().cast(pl.Int64) % 100 == 99).all()


def test_basket_sizes_depend_on_the_category(simulated_day: pl.DataFrame):
    purchases = simulated_day.filter(pl.col("event_type") == "purchase", ~pl.col("user_id").str.starts_with("599"))
    units = purchases.group_by("category").agg(pl.col("quantity").mean().alias("units"), pl.len().alias("lines"))
    by = dict(units.select("category", "units").iter_rows())
    for big_ticket in ("electronics.smartphone", "electronics.video.tv", "computers.notebook"):
        assert by[big_ticket] == 1.0, big_ticket
    assert by["kids.toys"] > 1.1  # 1.38 on average; a day has ~50 lines of toys
    # A converting session buys what is left in its cart: mostly one line, now and then a few.
    lines = purchases.group_by("session").len()["len"]
    print(f"\n  lines per order {lines.mean():.3f}, units per line {purchases['quantity'].mean():.3f}")
    assert 1.0 < lines.mean() < 1.6


def test_a_run_starts_at_its_start_and_ends_at_a_whole_day(simulated_day: pl.DataFrame):
    assert simulated_day["ts"].min() >= DAY.start_ms
    assert simulated_day["ts"].max() < DAY.start_ms + DAY.duration_ms
    # Traffic runs up to the end: the last minute is as busy as the day's minutes around that time of day.
    last_hour = simulated_day.filter(pl.col("ts") >= DAY.start_ms + DAY.duration_ms - 3_600_000)
    per_minute = last_hour.group_by(pl.col("ts") // 60_000).len()["len"]
    assert per_minute.len() == 60 and per_minute.min() > 0.3 * per_minute.mean()


def test_the_analytics_see_real_shop_figures_and_no_empty_abandoned_carts():
    sim = replace(DAY, duration_ms=6 * 3_600_000)
    settings = Settings(analytics=("sessions", "triggers", "funnel"), sim=sim, summary=False, monitor_interval_ms=0)
    captured = CapturedOutputs()
    source = SimSource(sim)
    run(dmp.build(settings, source=source, partitions=source.partitions(), outputs=captured.outputs()))
    sessions = captured.frame("sessions").filter(~pl.col("user_id").str.starts_with("599"))
    carted = sessions.filter(pl.col("carts") > 0)
    print(f"\n  sessions stream: {sessions.height} sessions, conversion {sessions['converted'].mean():.4f}, "
          f"cart rate {carted.height / sessions.height:.4f}, abandoned {carted['abandoned_cart'].mean():.4f} "
          f"of carts")
    assert RANGES["conversion"][0] <= sessions["converted"].mean() <= RANGES["conversion"][1]
    assert 0.55 <= carted["abandoned_cart"].mean() <= RANGES["cart_abandonment"][1]  # emptied carts are not abandoned
    triggers = captured.frame("triggers").filter(pl.col("trigger_type") == "cart_abandoned")
    assert triggers.height > 0 and (triggers["value"] > 0).all()
    funnel = captured.frame("funnel").filter(pl.col("category") == "*")
    print(f"  funnel (*), first hour: view->cart {funnel['view_to_cart'][0]:.4f}, "
          f"conversion {funnel['conversion'][0]:.4f}")
    assert (funnel["view_to_cart"] < 0.2).all() and (funnel["conversion"] < 0.06).all()
