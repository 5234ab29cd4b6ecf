"""Planted behaviour (``DMP_SIM_PLANT``, on by default): what the analytics should find, with its ground truth.

In: the settings, the catalog and a slice (partition, index). Out: the
planted sessions whose first event falls in that slice
(:func:`plant_sessions`), and the ground truth (:func:`planted`,
:func:`abandon_sessions`).

Five *bundles* of 2-3 mid-popularity products (popularity ranks ~50-500)
bought together, in extra sessions (~3% of the ordinary ones, at least 0.05
per slice and partition) where an ordinary user views, carts and buys every
product of one bundle within ~3 minutes; ten *cart abandoners* (user ids
599000000-599000009) whose session every 6 h (user j's k-th at ``start +
j*17m + k*6h``) views 1-3 products and carts 1-2 but never buys or removes
anything; five *big spenders* (599000100-599000104) who buy a product
costing >= 500 every 2 h (user j at ``start + j*11m + k*2h``), viewed and
carted in the minute before (user 0's first view is a minute before the
start). Planted users belong to partition ``(user id - 500000000) %
partitions`` like everyone else; planted events are ordinary rows of their
slice (the one holding a session's first event), delayed and corrupted like
the rest. With planting off the output is the same as before it existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.catalog import FIRST_PRODUCT_ID, FIRST_USER_ID, Catalog, make_catalog
from flows.engine.sources.simulator.shoppers import PART_SCHEMA, SLICE_MS

_BUNDLES = 5
_BUNDLE_RANKS = (50, 500)  # popularity ranks the bundle products are drawn from (large catalogs)
_BUNDLE_SHARE = 0.03  # bundle sessions per ordinary session ...
_BUNDLE_MIN_RATE = 0.05  # ... but at least this many per slice and partition
_PLANTED_USER_INDEX = 99_000_000  # user ids 599_000_000 + ...: far above the ordinary users
_ABANDONERS = 10  # user indices _PLANTED_USER_INDEX + 0..9
_ABANDON_EVERY_MS = 6 * 3_600_000
_ABANDON_STAGGER_MS = 17 * 60_000
_BIG_SPENDERS = 5  # user indices _PLANTED_USER_INDEX + 100..104
_BIG_SPENDER_OFFSET = 100
_BIG_SPEND_EVERY_MS = 2 * 3_600_000
_BIG_SPEND_STAGGER_MS = 11 * 60_000
_BIG_SPEND_LEAD_MS = 60_000  # the view comes this long before the purchase, the cart half-way
_BIG_PRICE = 500.0


@dataclass(frozen=True)
class Planted:
    """What the simulator plants (``DMP_SIM_PLANT``), with ids as they appear in events.

    ``bundles``: product ids of each bundle, in the order its sessions view
    them; ``abandoners``, ``big_spenders``: user ids. All empty when planting is off.
    """

    bundles: tuple[tuple[str, ...], ...]
    abandoners: tuple[str, ...]
    big_spenders: tuple[str, ...]


def planted(settings: SimSettings) -> Planted:
    """The ground truth of what ``settings`` plant (see the module docstring)."""
    if not settings.plant:
        return Planted((), (), ())
    plan = _plan(settings)
    first = FIRST_USER_ID + _planted_user_index(settings.users)
    return Planted(
        bundles=tuple(tuple(str(FIRST_PRODUCT_ID + int(p)) for p in bundle) for bundle in plan.bundles),
        abandoners=tuple(str(first + j) for j in range(_ABANDONERS)),
        big_spenders=tuple(str(first + _BIG_SPENDER_OFFSET + j) for j in range(_BIG_SPENDERS)),
    )


def abandon_sessions(settings: SimSettings, until_ms: int) -> pl.DataFrame:
    """The planted cart abandoners' sessions that start before ``until_ms``.

    Columns ``user_id`` (string) and ``session_start`` (epoch ms of the
    session's first event, a view), ordered by ``session_start``. A bounded
    run (``events`` > 0) may stop, per partition, before ``until_ms``.
    """
    schema = {"user_id": pl.String, "session_start": pl.Int64}
    if not settings.plant:
        return pl.DataFrame(schema=schema)
    users = planted(settings).abandoners
    offset = np.arange(_ABANDONERS) * _ABANDON_STAGGER_MS
    # Sessions k = 0 .. count-1 start before until_ms.
    count = np.maximum(0, -((settings.start_ms + offset - until_ms) // _ABANDON_EVERY_MS))
    user = np.repeat(np.arange(_ABANDONERS), count)
    k = np.arange(user.size) - np.repeat(np.cumsum(count) - count, count)
    start = settings.start_ms + offset[user] + k * _ABANDON_EVERY_MS
    return pl.DataFrame(
        {"user_id": [users[u] for u in user], "session_start": start}, schema=schema
    ).sort("session_start", "user_id")


@dataclass(frozen=True)
class _Plan:
    """What a seed plants in its catalog (catalog indices)."""

    bundles: tuple[np.ndarray, ...]
    expensive: np.ndarray  # what big spenders buy
    expensive_quantity: np.ndarray  # units per purchase (1, unless nothing costs 500)


_PLANS: dict[tuple[int, int], _Plan] = {}


def _plan(settings: SimSettings, catalog: Catalog | None = None) -> _Plan:
    """The plan of ``settings``' catalog (``catalog``, when given, must be that catalog)."""
    key = (settings.seed, settings.products)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= 16:
            _PLANS.clear()
        plan = _PLANS[key] = _make_plan(
            make_catalog(settings.products, settings.seed) if catalog is None else catalog, settings.seed
        )
    return plan


def _make_plan(catalog: Catalog, seed: int) -> _Plan:
    rng = np.random.default_rng([seed, 0xB0D1E])
    products = catalog.popularity.size
    by_rank = np.argsort(-catalog.popularity, kind="stable")
    sizes = rng.integers(2, 4, size=_BUNDLES)
    # Mid-popularity products, distinct over all bundles; a small catalog
    # draws from all its products, a tiny one lets bundles overlap.
    pool = by_rank[min(_BUNDLE_RANKS[0], products // 10) : min(_BUNDLE_RANKS[1], products)]
    if pool.size < sizes.sum():
        pool = by_rank
    if pool.size >= sizes.sum():
        picked = rng.choice(pool, size=int(sizes.sum()), replace=False)
        bundles = tuple(np.split(picked, np.cumsum(sizes)[:-1]))
    elif products >= 2:
        bundles = tuple(rng.choice(products, size=min(int(size), products), replace=False) for size in sizes)
    else:
        bundles = ()
    price = catalog.price.to_numpy()
    expensive = np.flatnonzero(price >= _BIG_PRICE)
    if expensive.size == 0:  # a small catalog: its dearest product, several at a time
        expensive = np.array([int(np.argmax(price))])
    quantity = np.maximum(1, np.ceil(_BIG_PRICE / price[expensive])).astype(np.int64)
    return _Plan(tuple(b.astype(np.int64) for b in bundles), expensive.astype(np.int64), quantity)


def _planted_user_index(users: int) -> int:
    """Index of the first planted user (user id minus 500000000): a block above every ordinary user."""
    return max(_PLANTED_USER_INDEX, -(-users // 1_000_000) * 1_000_000)


def _due(index: int, offset: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Schedules (times ``offset + k * every`` after the start, k >= 0) with a time in slice ``index``.

    Returns a mask and each schedule's next time from the slice's start on;
    slice 0 also takes a first time before the start (negative ``offset``).
    """
    low = index * SLICE_MS if index > 0 else np.minimum(0, offset)
    k = np.maximum(0, -((offset - low) // every))
    at = offset + k * every
    return at < (index + 1) * SLICE_MS, at


@dataclass(frozen=True)
class PlantedSessions:
    """A slice's planted sessions: user id per session, and their events like the ordinary parts'."""

    user: np.ndarray
    events: pl.DataFrame


def _spans(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of ``sizes`` rows: each row's group, each group's first row, each row's place in its group."""
    group = np.repeat(np.arange(sizes.size), sizes)
    first = np.cumsum(sizes) - sizes
    return group, first, np.arange(group.size) - np.repeat(first, sizes)


def _walk(rng: np.random.Generator, sizes: np.ndarray, low_ms: int, high_ms: int) -> np.ndarray:
    """Milliseconds after its group's first row of each row, for uniform gaps in [low_ms, high_ms)."""
    _, first, _ = _spans(sizes)
    gaps = rng.integers(low_ms, high_ms, size=int(sizes.sum()))
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    return elapsed - np.repeat(elapsed[first], sizes)


def plant_sessions(
    settings: SimSettings, catalog: Catalog, partition: int, index: int, mean_sessions: float, first_session: int
) -> PlantedSessions | None:
    """The planted sessions whose first event falls in slice ``index``, for one partition (``None``: none).

    Their session numbers follow the slice's ordinary ones (``first_session`` on).
    """
    plan = _plan(settings, catalog)
    rng = np.random.default_rng([settings.seed, partition, index, 0x91A7])
    start = settings.start_ms + index * SLICE_MS
    first_planted = _planted_user_index(settings.users)
    empty = np.empty(0, dtype=np.int64)

    # Bundles: an ordinary user of this partition views, carts and buys every product of one.
    bundles = rng.poisson(max(_BUNDLE_SHARE * mean_sessions, _BUNDLE_MIN_RATE)) if plan.bundles else 0
    if bundles:
        bundle_sizes = np.array([b.size for b in plan.bundles])
        which = rng.integers(0, len(plan.bundles), size=bundles)
        sizes = bundle_sizes[which]
        b_session, first, within = _spans(sizes)
        bundle_first = np.cumsum(bundle_sizes) - bundle_sizes  # where each bundle starts in the flat list
        b_product = np.concatenate(plan.bundles)[np.repeat(bundle_first[which], sizes) + within]
        users_here = (settings.users - partition + settings.partitions - 1) // settings.partitions
        b_user = partition + settings.partitions * rng.integers(0, users_here, size=bundles)
        b_view = (start + rng.integers(0, SLICE_MS, size=bundles))[b_session] + _walk(rng, sizes, 10_000, 40_000)
        b_cart = b_view + rng.integers(2_000, 8_000, size=b_view.size)
        checkout = b_cart[first + sizes - 1] + rng.integers(20_000, 60_000, size=bundles)
        b_buy = checkout[b_session] + 500 * within
    else:
        b_session = b_product = b_user = b_view = b_cart = b_buy = empty

    # Cart abandoners: 1-3 views, 1-2 of them carted, on their schedule.
    a_index = first_planted + np.arange(_ABANDONERS)
    due, at = _due(index, np.arange(_ABANDONERS) * _ABANDON_STAGGER_MS, _ABANDON_EVERY_MS)
    due &= a_index % settings.partitions == partition
    a_user = a_index[due]
    if a_user.size:
        views = rng.integers(1, 4, size=a_user.size)
        carts = np.minimum(views, rng.integers(1, 3, size=a_user.size))
        a_session, _, within = _spans(views)
        a_view = settings.start_ms + at[due][a_session] + _walk(rng, views, 15_000, 45_000)
        a_product = rng.choice(catalog.popularity.size, size=a_view.size, p=catalog.popularity)
        carted = within < carts[a_session]
        a_cart = a_view[carted] + rng.integers(3_000, 10_000, size=int(carted.sum()))
        a_cart_session, a_cart_product = a_session[carted], a_product[carted]
    else:
        a_session = a_product = a_view = a_cart = a_cart_session = a_cart_product = empty

    # Big spenders: view, cart and buy an expensive product, on their schedule.
    s_index = first_planted + _BIG_SPENDER_OFFSET + np.arange(_BIG_SPENDERS)
    due, at = _due(index, np.arange(_BIG_SPENDERS) * _BIG_SPEND_STAGGER_MS - _BIG_SPEND_LEAD_MS, _BIG_SPEND_EVERY_MS)
    due &= s_index % settings.partitions == partition
    s_user = s_index[due]
    s_session = np.arange(s_user.size)
    s_view = settings.start_ms + at[due]
    pick = rng.integers(0, plan.expensive.size, size=s_user.size)
    s_product, s_quantity = plan.expensive[pick], plan.expensive_quantity[pick]

    user = np.concatenate([b_user, a_user, s_user])
    if user.size == 0:
        return None
    a0, s0 = first_session + bundles, first_session + bundles + a_user.size  # bundles, abandoners, big spenders
    view_ts = [b_view, a_view, s_view]
    cart_ts = [b_cart, a_cart, s_view + _BIG_SPEND_LEAD_MS // 2]
    buy_ts = [b_buy, s_view + _BIG_SPEND_LEAD_MS]
    counts = [sum(a.size for a in ts) for ts in (view_ts, cart_ts, buy_ts)]
    events = pl.DataFrame(
        {
            "ts": np.concatenate(view_ts + cart_ts + buy_ts),
            "session": np.concatenate(
                [
                    *(b_session + first_session, a_session + a0, s_session + s0),  # views
                    *(b_session + first_session, a_cart_session + a0, s_session + s0),  # carts
                    *(b_session + first_session, s_session + s0),  # purchases
                ]
            ),
            "product": np.concatenate(
                [b_product, a_product, s_product, b_product, a_cart_product, s_product, b_product, s_product]
            ),
            "event_type": np.repeat(np.array(["view", "add_to_cart", "purchase"]), counts),
            "quantity": [None] * (counts[0] + counts[1]) + [1] * b_buy.size + s_quantity.tolist(),
        },
        schema={**PART_SCHEMA, "event_type": pl.String, "quantity": pl.Int64},
    )
    return PlantedSessions(FIRST_USER_ID + user.astype(np.int64), events)
