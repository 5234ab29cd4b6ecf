"""User sessions: what each shopper did in one visit.

In: events. Out, per closed session (session windows per ``user_id``, gap
``G``; a session is a run of the user's events each less than ``G`` after
the one before): ``user_id``, ``session_start`` (first event),
``session_end`` (last event), ``duration_s``, ``events``, ``views``,
``carts`` (add_to_cart), ``removes``, ``purchases``, ``units``, ``revenue``
(price x quantity over purchases), ``distinct_products`` (any event),
``converted`` (any purchase), ``abandoned_cart`` (something left in the
cart, ``cart_value`` > 0, and no purchase), ``cart_value`` (price x
quantity added to the cart minus removed, at least 0) and
``carted_products`` (distinct products added to the cart).

Every measure merges, so state is one partial row per open session (plus
the sets of products it touched). Sessions are released in one order,
(close, user, start), whatever the batching, so what consumes them in
sequence (recommendations, cart triggers) is deterministic too. Each
session also carries ``basket``: the products carted or purchased in it,
the ``basket_limit`` smallest ids at most (bounding what recommendations
take from one session). The run summary tells how many sessions closed, the
share that bought and that left a cart, and their median and mean length
(:data:`SESSIONS_FINDING`).

>>> spec = sessions_aggregate(30 * 60_000, basket_limit=10)
>>> events = pl.DataFrame({"ts": [0, 60_000, 90_000], "user_id": ["u", "u", "u"],
...     "event_type": ["view", "add_to_cart", "purchase"], "product_id": ["p", "p", "p"],
...     "price": [2.5, 2.5, 2.5], "quantity": [1, 1, 2]})
>>> from flows.engine.sessions import session_partials
>>> session_rows(session_partials(events, spec)).select("duration_s", "events", "revenue", "converted").rows()
[(90.0, 3, 5.0, True)]

A cart emptied again is not abandoned; one with something left in it is:

>>> carts = pl.DataFrame({"ts": [0, 1_000, 0], "user_id": ["emptied", "emptied", "left"],
...     "event_type": ["add_to_cart", "remove_from_cart", "add_to_cart"], "product_id": ["p", "p", "p"],
...     "price": [2.5, 2.5, 2.5], "quantity": [1, 1, 1]})
>>> session_rows(session_partials(carts, spec)).sort("user_id").select("user_id", "abandoned_cart", "cart_value").rows()
[('emptied', False, 0.0), ('left', True, 2.5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
import polars as pl

from flows.engine.aggregate import LAST_TS, Distinct, ExactSum, Sum, WindowedAggregate
from flows.engine.analytics.registry import Analytic
from flows.engine.findings import Finding, amount, lasting, micros, share, sum_by
from flows.engine.operators import Windowed
from flows.engine.setting import Group, at_least, duration, integer, positive, setting
from flows.engine.streams import BOOL, FLOAT, INT, MONEY, TEXT, TEXTS, TIME_MS, Column, OutputStream
from flows.engine.wiring import Wiring

if TYPE_CHECKING:
    from flows.engine.config import Settings
from flows.engine.money import line_micros, money
from flows.engine.present import as_time, seconds
from flows.engine.windows import WINDOW_START, SessionWindow


def session_lengths(rows: pl.DataFrame) -> pl.DataFrame:
    """Sessions rows -> per whole second of length: sessions, converted, abandoned carts, events, length and revenue.

    Sessions are counted per second of length so that the median merges
    exactly (to the second) in a frame bounded by the longest session.
    """
    ms = (pl.col("duration_s") * 1000).round().cast(pl.Int64)
    return rows.group_by((ms // 1000).alias("second")).agg(
        pl.len().cast(pl.Int64).alias("sessions"), pl.col("converted").sum().cast(pl.Int64),
        pl.col("abandoned_cart").sum().cast(pl.Int64).alias("abandoned"), pl.col("events").sum(),
        ms.sum().alias("duration_ms"), micros("revenue").sum().alias("revenue_micros"),
    )


def _sessions_result(lengths: pl.DataFrame) -> dict[str, Any]:
    n = int(lengths["sessions"].sum())
    if not n:
        return {"sessions": 0}
    ordered = lengths.sort("second")
    middle = int(ordered["second"].filter(ordered["sessions"].cum_sum() >= (n + 1) // 2)[0])  # the lower median
    converted, revenue = int(lengths["converted"].sum()), int(lengths["revenue_micros"].sum())
    return {
        "sessions": n, "converted": converted, "abandoned_cart": int(lengths["abandoned"].sum()),
        "revenue": amount(revenue), "revenue_per_converted": amount(revenue) / converted if converted else None,
        "median_duration_s": middle, "mean_duration_s": int(lengths["duration_ms"].sum()) / n / 1000,
        "mean_events": int(lengths["events"].sum()) / n,
    }


def _sessions_lines(found: dict[str, Any]) -> list[str]:
    n = found["sessions"]
    if not n:
        return ["none closed"]
    bought = f"{share(found['converted'], n)} bought"
    if found["revenue_per_converted"] is not None:
        bought += f" ({found['revenue_per_converted']:,.2f} each)"
    return [f"{n:,} closed: {bought}, {share(found['abandoned_cart'], n)} left a cart",
            f"median length {lasting(found['median_duration_s'] * 1000)}, "
            f"mean {lasting(found['mean_duration_s'] * 1000)}, {found['mean_events']:.1f} events on average"]


SESSIONS_FINDING = Finding(session_lengths, sum_by("second"), _sessions_result, _sessions_lines)
"""Sessions closed, the shares that bought and that left a cart, their median (to the second) and mean length."""

SESSIONS = OutputStream(
    "sessions",
    row="user session, when it closes",
    fields="`user_id`, `session_start`, `session_end` (first and last event, ISO-8601 with ms), `duration_s`, "
    "`events`, `views`, `carts`, `removes`, `purchases`, `units`, `revenue`, `distinct_products`, `converted` "
    "(a purchase), `abandoned_cart` (something left in the cart, `cart_value` > 0, and no purchase), `cart_value` "
    "(price x quantity added to the cart minus removed, at least 0), `carted_products`",
    key=("user_id", "session_start"),
    columns=(
        Column("user_id", TEXT, nullable=False),
        Column("session_start", TIME_MS, nullable=False),
        Column("session_end", TIME_MS, nullable=False),
        Column("duration_s", FLOAT, nullable=False),
        *(Column(name, INT, nullable=False) for name in ("events", "views", "carts", "removes", "purchases", "units")),
        Column("revenue", MONEY, nullable=False),
        Column("distinct_products", INT, nullable=False),
        Column("converted", BOOL, nullable=False),
        Column("abandoned_cart", BOOL, nullable=False),
        Column("cart_value", MONEY, nullable=False),
        Column("carted_products", TEXTS, nullable=False),
    ),
    finding=SESSIONS_FINDING,
)
OUTPUT_SCHEMA = SESSIONS.schema


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
            "revenue_micros": ExactSum(pl.when(purchase).then(value).otherwise(0)),
            "cart_micros": ExactSum(pl.when(cart).then(value).when(remove).then(value * -1).otherwise(0)),
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
        as_time(WINDOW_START).alias("session_start"),
        as_time(LAST_TS).alias("session_end"),
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
        # A cart emptied again (or of products without a price) is not an abandoned cart.
        ((pl.col("cart_micros") > 0) & (pl.col("purchases") == 0)).alias("abandoned_cart"),
        money(pl.col("cart_micros").clip(lower_bound=0)).alias("cart_value"),
        pl.col("carted").alias("carted_products"),
    ).cast(SESSIONS.schema)


@dataclass(frozen=True)
class SessionSettings(Group):
    """Session windows: the sessions stream, and what recommendations and triggers take from closed sessions."""

    session_gap_ms: int = setting("DMP_SESSION_GAP", "30m", duration,
                                  "A user's session ends after this long without events", positive)
    reco_basket_limit: int = setting("DMP_RECO_BASKET_LIMIT", "20", integer,
                                     "Products of one session that count towards recommendations (a session "
                                     "keeps the smallest ids)", at_least(2))


def session_windows(w: Wiring) -> Windowed:
    """Closed sessions, released in one order (keyed ``sessions``): built once for every analytic that uses them."""

    def build() -> Windowed:
        settings = w.group(SessionSettings)
        spec = sessions_aggregate(settings.session_gap_ms, settings.reco_basket_limit)
        return w.window("sessions", spec, step_id="session_windows")

    return w.shared("session_windows", build)


def session_dedup_windows(settings: Settings) -> tuple[SessionWindow, ...]:
    """The windows sessions' results depend on (their gap bounds the dedup horizon)."""
    return (SessionWindow(settings.group(SessionSettings).session_gap_ms),)


def wire(w: Wiring) -> None:
    """session_windows -> present_sessions -> sessions."""
    sessions = session_windows(w)
    w.write(SESSIONS, op.map_value("present_sessions", sessions.results, lambda closed: session_rows(closed.rows)))


ANALYTICS = (
    Analytic(
        "sessions", 20, "per user visit: what they looked at, carted and bought",
        streams=(SESSIONS,), wire=wire, settings=SessionSettings, dedup_windows=session_dedup_windows,
    ),
)
