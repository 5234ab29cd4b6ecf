"""The shoppers' own sessions: when they come, what they view, cart, remove and buy.

In: the :class:`~.draws.Draws` of a partition, a run of slices and how many
ordinary sessions start in each. Out: :class:`Events`, NumPy columns of
every event of those sessions. A session views a geometric number of
products (mean ~3.6, 28% leave after one), by popularity, ~25 s apart; each
view puts the product in the cart with probability 2.5% and 12% of carted
products are removed again; a session with something left in its cart
checks out with probability 30%, buying all of it in one order, each line
in the category's basket size. So ~8% of sessions cart, ~2.2% convert and
~70% of carts are abandoned (the package docstring compares these with
published figures and with REES46). :func:`daily_cycle` is the traffic's
shape over the day.

>>> from flows.engine.config import SimSettings
>>> from flows.engine.sources.simulator.catalog import make_catalog
>>> from flows.engine.sources.simulator.draws import Draws
>>> settings = SimSettings(users=100, products=50)
>>> events = ordinary_sessions(Draws(42, 0), settings, make_catalog(50, 42), 0, np.array([0, 1]), np.array([3, 2]))
>>> sorted(set(events.session[events.slice == 1].tolist())), bool((events.kind[events.slice == 0] == VIEW).any())
([0, 1], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.catalog import Catalog
from flows.engine.sources.simulator.draws import Draws, Field, exponential, geometric, integers, pick

SLICE_MS = 60_000  # the unit of generation: a partition's sessions that start in one minute
VIEW, CART, REMOVE, PURCHASE = 0, 1, 2, 3
EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase")  # by kind

# Session behaviour (calibrated: see the package docstring).
_VIEW_STOP = 0.28  # each view ends the browsing with this probability (mean ~3.6 views)
_CART_RATE = 0.025  # a view puts the product in the cart
_REMOVE_RATE = 0.12  # a cart item is removed again
_BUY_RATE = 0.27  # a session with something left in its cart checks out
_GAP_MS = 25_000  # mean time between views
_CART_DELAY_MS = 8_000  # mean time from a view to its add_to_cart
_REMOVE_DELAY_MS = 30_000  # ... from add_to_cart to remove_from_cart
_CHECKOUT_MS = (20_000, 40_000)  # checkout after the last view: fixed + exponential mean
EVENTS_PER_SESSION = (1 / _VIEW_STOP) * (
    1 + _CART_RATE * (1 + _REMOVE_RATE) + _CART_RATE * (1 - _REMOVE_RATE) * _BUY_RATE
)


@dataclass(frozen=True)
class Events:
    """Events of a run of slices as NumPy columns; each part of a concatenation in slice order.

    ``slice``: the slice the event's session starts in; ``session``: the
    session's number within that slice; ``kind``: :data:`VIEW` ..
    :data:`PURCHASE`; ``ts``: epoch ms; ``user``: user index (id - 500000000);
    ``product``: catalog index; ``quantity``: units of a purchase (0: none).
    """

    slice: np.ndarray
    session: np.ndarray
    kind: np.ndarray
    ts: np.ndarray
    user: np.ndarray
    product: np.ndarray
    quantity: np.ndarray

    @staticmethod
    def of(slices: np.ndarray, session: np.ndarray, kind: int, ts: np.ndarray, user: np.ndarray,
           product: np.ndarray, quantity: np.ndarray | None = None) -> Events:
        size = ts.size
        return Events(
            slices.astype(np.int64), session.astype(np.int64), np.full(size, kind, dtype=np.int8),
            ts.astype(np.int64), user.astype(np.int64), product.astype(np.int64),
            np.zeros(size, dtype=np.int64) if quantity is None else quantity.astype(np.int64),
        )

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return Events(empty, empty, np.empty(0, dtype=np.int8), empty, empty, empty, empty)
        return Events(*(np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS))

    @property
    def size(self) -> int:
        return int(self.ts.size)

    def by_slice(self) -> Events:
        """The events ordered by slice, keeping their order within a slice."""
        order = np.argsort(self.slice, kind="stable")
        return Events(*(getattr(self, name)[order] for name in _COLUMNS))


_COLUMNS = ("slice", "session", "kind", "ts", "user", "product", "quantity")


@overload
def daily_cycle(ts_ms: np.ndarray) -> np.ndarray: ...
@overload
def daily_cycle(ts_ms: float) -> float: ...
def daily_cycle(ts_ms: np.ndarray | float) -> np.ndarray | float:
    """Traffic multiplier by time of day (UTC): mean 1, low at 08:00, peak at 20:00."""
    hour = (np.asarray(ts_ms) / 3_600_000.0) % 24
    return 1.0 + 0.6 * np.sin(2 * math.pi * (hour - 14.0) / 24.0)


def spans(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of ``sizes`` rows: each row's group, each group's first row, each row's place in its group."""
    group = np.repeat(np.arange(sizes.size), sizes)
    first = np.cumsum(sizes) - sizes
    return group, first, np.arange(group.size) - np.repeat(first, sizes)


def ordinary_sessions(
    draws: Draws, settings: SimSettings, catalog: Catalog, partition: int, slices: np.ndarray, counts: np.ndarray
) -> Events:
    """The shoppers' own sessions that start in ``slices`` (``counts[i]`` in ``slices[i]``), for one partition."""
    if not counts.sum():
        return Events.concat([])
    # Sessions: number n of slice s draws at (s, n).
    s_slice, _, number = spans(counts)
    s_slice = slices[s_slice]
    users_here = (settings.users - partition + settings.partitions - 1) // settings.partitions
    user = partition + settings.partitions * integers(draws.uniform(s_slice, number, Field.SESSION_USER), 0, users_here)
    start = settings.start_ms + s_slice * SLICE_MS + integers(draws.uniform(s_slice, number, Field.SESSION_START), 0,
                                                              SLICE_MS)
    views = geometric(draws.uniform(s_slice, number, Field.SESSION_VIEWS), _VIEW_STOP)
    buys = draws.uniform(s_slice, number, Field.SESSION_BUYS) < _BUY_RATE

    # Views: view j of its slice (sessions in order) draws at (s, j).
    session_of_view, first_view, _ = spans(views)
    v_slice = s_slice[session_of_view]
    per_slice = np.bincount(np.repeat(np.arange(slices.size), counts), weights=views, minlength=slices.size)
    _, _, j = spans(per_slice.astype(np.int64))
    gaps = exponential(draws.uniform(v_slice, j, Field.VIEW_GAP), _GAP_MS)
    gaps[first_view] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first_view], views)
    view_ts = start[session_of_view] + elapsed.astype(np.int64)
    product = pick(draws.uniform(v_slice, j, Field.VIEW_PRODUCT), catalog.popularity_cdf)

    # Some views put the product in the cart; some carts are emptied again.
    carted = np.flatnonzero(draws.uniform(v_slice, j, Field.VIEW_CARTS) < _CART_RATE)
    c_slice, c_j, c_session = v_slice[carted], j[carted], session_of_view[carted]
    cart_ts = view_ts[carted] + exponential(draws.uniform(c_slice, c_j, Field.CART_DELAY), _CART_DELAY_MS).astype(
        np.int64)
    removed = draws.uniform(c_slice, c_j, Field.CART_REMOVED) < _REMOVE_RATE
    remove_ts = cart_ts[removed] + exponential(draws.uniform(c_slice[removed], c_j[removed], Field.REMOVE_DELAY),
                                               _REMOVE_DELAY_MS).astype(np.int64)

    # A buying session checks out what is left in its cart, in one order, after its last view.
    checkout = (view_ts[first_view + views - 1] + _CHECKOUT_MS[0]
                + exponential(draws.uniform(s_slice, number, Field.CHECKOUT_DELAY), _CHECKOUT_MS[1]).astype(np.int64))
    bought = ~removed & buys[c_session]
    b = carted[bought]
    buy_ts = np.maximum(checkout[c_session[bought]], cart_ts[bought] + 1_000)
    units = catalog.units_cdf[product[b]]
    u = draws.uniform(v_slice[b], j[b], Field.QUANTITY)
    quantity = 1 + (u >= units[:, 0]) + (u >= units[:, 1])

    on = session_of_view  # per view: its session
    return Events.concat([
        Events.of(v_slice, number[on], VIEW, view_ts, user[on], product),
        Events.of(c_slice, number[c_session], CART, cart_ts, user[c_session], product[carted]),
        Events.of(c_slice[removed], number[c_session[removed]], REMOVE, remove_ts, user[c_session[removed]],
                  product[carted[removed]]),
        Events.of(v_slice[b], number[on[b]], PURCHASE, buy_ts, user[on[b]], product[b], quantity),
    ])
