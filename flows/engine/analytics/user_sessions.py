"""User sessions: what each shopper did in one visit.

In: events. Out, per closed session (session windows per ``user_id``, gap
``G``; a session is a run of the user's events each less than ``G`` after
the one before): ``user_id``, ``session_start`` (first event),
``session_end`` (last event), ``duration_s``, ``events``, ``views``,
``carts`` (add_to_cart), ``removes``, ``purchases``, ``units``, ``revenue``
(price x quantity over purchases), ``distinct_products`` (any event),
``converted`` (any purchase), ``abandoned_cart`` (a cart and no purchase),
``cart_value`` (price x quantity added to the cart minus removed, at least
0) and ``carted_products`` (distinct products added to the cart).

Every measure merges, so state is one partial row per open session (plus
the sets of products it touched). Sessions are released in one order,
(close, user, start), whatever the batching, so what consumes them in
sequence (recommendations, cart triggers) is deterministic too. Each
session also carries ``basket``: the products carted or purchased in it,
the ``basket_limit`` smallest ids at most (bounding what recommendations
take from one session).

>>> spec = sessions_aggregate(30 * 60_000, basket_limit=10)
>>> events = pl.DataFrame({"ts": [0, 60_000, 90_000], "user_id": ["u", "u", "u"],
...     "event_type": ["view", "add_to_cart", "purchase"], "product_id": ["p", "p", "p"],
...     "price": [2.5, 2.5, 2.5], "quantity": [1, 1, 2]})
>>> from flows.engine.sessions import session_partials
>>> session_rows(session_partials(events, spec)).select("duration_s", "events", "revenue", "converted").rows()
[(90.0, 3, 5.0, True)]
"""

from __future__ import annotations

import polars as pl

from flows.engine.aggregate import LAST_TS, Distinct, Sum, WindowedAggregate
from flows.engine.money import line_micros, money
from flows.engine.present import iso, seconds
from flows.engine.windows import WINDOW_START, SessionWindow

OUTPUT_SCHEMA = pl.Schema(
    {
        "user_id": pl.String,
        "session_start": pl.String,
        "session_end": pl.String,
        "duration_s": pl.Float64,
        "events": pl.Int64,
        "views": pl.Int64,
        "carts": pl.Int64,
        "removes": pl.Int64,
        "purchases": pl.Int64,
        "units": pl.Int64,
        "revenue": pl.Float64,
        "distinct_products": pl.Int64,
        "converted": pl.Boolean,
        "abandoned_cart": pl.Boolean,
        "cart_value": pl.Float64,
        "carted_products": pl.List(pl.String),
    }
)


def sessions_aggregate(gap_ms: int, basket_limit: int) -> WindowedAggregate:
    """Session measures per user, declared for the engine (released in order)."""
    event_type = pl.col("event_type")
    purchase, cart, remove = event_type == "purchase", event_type == "add_to_cart", event_type == "remove_from_cart"
    value = line_micros()
    return WindowedAggregate(
        name="sessions",
        keys=("user_id",),
        window=SessionWindow(gap_ms),
        measures={
            "views": Sum(event_type == "view"),
            "carts": Sum(cart),
            "removes": Sum(remove),
            "purchases": Sum(purchase),
            "units": Sum(pl.when(purchase).then(pl.col("quantity")).otherwise(0)),
            "revenue_micros": Sum(pl.when(purchase).then(value).otherwise(0)),
            "cart_micros": Sum(pl.when(cart).then(value).when(remove).then(-value).otherwise(0)),
            "products": Distinct(pl.col("product_id")),
            "carted": Distinct(pl.when(cart).then(pl.col("product_id"))),
            "basket": Distinct(pl.when(cart | purchase).then(pl.col("product_id")), limit=basket_limit),
        },
        gather=True,
    )


def session_rows(sessions: pl.DataFrame) -> pl.DataFrame:
    """Closed sessions (engine form, in release order) -> ``sessions`` output rows."""
    return sessions.select(
        pl.col("user_id"),
        iso(WINDOW_START, millis=True).alias("session_start"),
        iso(LAST_TS, millis=True).alias("session_end"),
        seconds(pl.col(LAST_TS) - pl.col(WINDOW_START)).alias("duration_s"),
        "events",
        "views",
        "carts",
        "removes",
        "purchases",
        "units",
        money("revenue_micros").alias("revenue"),
        pl.col("products").list.len().cast(pl.Int64).alias("distinct_products"),
        (pl.col("purchases") > 0).alias("converted"),
        ((pl.col("carts") > 0) & (pl.col("purchases") == 0)).alias("abandoned_cart"),
        money(pl.col("cart_micros").clip(lower_bound=0)).alias("cart_value"),
        pl.col("carted").alias("carted_products"),
    ).cast(OUTPUT_SCHEMA)  # type: ignore[arg-type]
