"""The shoppers' own sessions: when they come, what they view, cart, remove and buy.

In: a slice's generator, its start and how many sessions start in it. Out:
the user of each session, and the sessions' events as parts of
(``ts``, kind, session, product, quantity) arrays: views by popularity, some
put in the cart and some of those removed again; a session with items left
buys them all at the end, with some probability. :func:`daily_cycle` is the
traffic's shape over the day.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.catalog import FIRST_USER_ID, Catalog

SLICE_MS = 60_000  # the unit of generation: a partition's sessions that start in one minute

# Session behaviour.
_VIEW_STOP = 0.28  # each view ends the browsing with this probability (mean ~3.6 views)
_CART_RATE = 0.11  # a view leads to add_to_cart
_REMOVE_RATE = 0.12  # a cart item is removed again
_BUY_RATE = 0.45  # a session with items left in the cart buys them
_QUANTITY = (np.array([1, 2, 3]), np.array([0.86, 0.11, 0.03]))
_GAP_MS = 25_000  # mean time between views
EVENTS_PER_SESSION = (1 / _VIEW_STOP) * (1 + _CART_RATE * (1 + _REMOVE_RATE) + _CART_RATE * _BUY_RATE)

PART_SCHEMA = {"ts": pl.Int64, "session": pl.Int64, "product": pl.Int64}
Part = tuple[np.ndarray, str, np.ndarray, np.ndarray, "np.ndarray | None"]


def daily_cycle(ts_ms: np.ndarray | float) -> np.ndarray | float:
    """Traffic multiplier by time of day (UTC): mean 1, low at 08:00, peak at 20:00."""
    hour = (np.asarray(ts_ms) / 3_600_000.0) % 24
    return 1.0 + 0.6 * np.sin(2 * math.pi * (hour - 14.0) / 24.0)


def ordinary_sessions(
    rng: np.random.Generator, settings: SimSettings, catalog: Catalog, partition: int, start: int, sessions: int
) -> tuple[np.ndarray, list[Part]]:
    """The shoppers' own sessions: user per session, and (ts, kind, session, product, quantity) parts."""
    if sessions == 0:
        return np.empty(0, dtype=np.int64), []
    users_here = np.arange(partition, settings.users, settings.partitions)
    user = FIRST_USER_ID + rng.choice(users_here, size=sessions)
    session_start = start + rng.integers(0, SLICE_MS, size=sessions)

    # Views: a geometric number per session, products by popularity.
    views_per = rng.geometric(_VIEW_STOP, size=sessions)
    session_of_view = np.repeat(np.arange(sessions), views_per)
    gaps = rng.exponential(_GAP_MS, size=session_of_view.size)
    first = np.concatenate(([0], np.cumsum(views_per)[:-1]))
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first], views_per)
    view_ts = session_start[session_of_view] + elapsed.astype(np.int64)
    view_product = rng.choice(catalog.popularity.size, size=session_of_view.size, p=catalog.popularity)

    # Some views put the product in the cart; some carts are emptied again.
    carted = rng.random(session_of_view.size) < _CART_RATE
    cart_session = session_of_view[carted]
    cart_product = view_product[carted]
    cart_ts = view_ts[carted] + rng.exponential(8_000, size=cart_session.size).astype(np.int64)
    removed = rng.random(cart_session.size) < _REMOVE_RATE
    remove_ts = cart_ts[removed] + rng.exponential(30_000, size=int(removed.sum())).astype(np.int64)

    # Sessions with items left buy them all at the end, with some probability.
    kept = ~removed
    buyer = rng.random(sessions) < _BUY_RATE
    bought = kept & buyer[cart_session]
    last_view_ts = view_ts[np.cumsum(views_per) - 1]
    buy_ts = last_view_ts[cart_session[bought]] + 20_000 + rng.exponential(40_000, size=int(bought.sum())).astype(
        np.int64
    )
    buy_ts = np.maximum(buy_ts, cart_ts[bought] + 1_000)
    quantity = rng.choice(_QUANTITY[0], size=buy_ts.size, p=_QUANTITY[1])

    return user, [
        (view_ts, "view", session_of_view, view_product, None),
        (cart_ts, "add_to_cart", cart_session, cart_product, None),
        (remove_ts, "remove_from_cart", cart_session[removed], cart_product[removed], None),
        (buy_ts, "purchase", cart_session[bought], cart_product[bought], quantity),
    ]
