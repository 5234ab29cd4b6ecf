"""Planted behaviour (``DMP_SIM_PLANT``, on by default): what the analytics should find, with its ground truth.

In: the draws of a partition, a run of slices, their mean and actual counts
of ordinary sessions. Out: the planted sessions whose first event falls in
those slices (:func:`plant_sessions`), as :class:`~.shoppers.Events`; and
the ground truth (:func:`planted`, :func:`abandon_sessions`).

Five *bundles* of 2-3 mid-popularity products (popularity ranks ~50-500)
bought together, in extra sessions (0.5% of the ordinary ones, at least
0.02 per slice and partition) where an ordinary user views, carts and buys
every product of one bundle within ~3 minutes; ten *cart abandoners* (user
ids 599000000-599000009) whose session every 6 h (user j's k-th at ``start
+ j*17m + k*6h``) views 1-3 products and carts 1-2 but never buys or
removes anything; five *big spenders* (599000100-599000104) who view a
product costing >= 500 every 2 h (user j at ``start + j*11m + k*2h``), cart
it half a minute later and buy it a minute after the view. Nothing planted
comes before the start. Planted users belong to partition ``(user id -
500000000) % partitions`` like everyone else; planted events are ordinary
rows of their slice (the one holding a session's first event), numbered
after its ordinary sessions, delayed and corrupted like the rest. With
planting off the output is the same as before it existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.catalog import FIRST_PRODUCT_ID, FIRST_USER_ID, Catalog, make_catalog
from flows.engine.sources.simulator.draws import Draws, Field, integers, pick, poisson
from flows.engine.sources.simulator.shoppers import CART, PURCHASE, SLICE_MS, VIEW, Events, spans

_BUNDLES = 5
_BUNDLE_RANKS = (50, 500)  # popularity ranks the bundle products are drawn from (large catalogs)
_BUNDLE_SHARE = 0.005  # bundle sessions per ordinary session (they all buy: more would lift conversion) ...
_BUNDLE_MIN_RATE = 0.02  # ... but at least this many per slice and partition
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
_SLOTS = 16  # draw items per planted session: room for its products


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


def _scheduled(first: int, stop: int, offset: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Times ``offset[j] + k * every`` (ms after the start, k >= 0) in slices ``first .. stop-1``: (j, time), by j."""
    low = -(-(first * SLICE_MS - offset) // every)
    high = -(-(stop * SLICE_MS - offset) // every)
    count = np.maximum(0, high - np.maximum(low, 0))
    j, _, k = spans(count)
    return j, offset[j] + (np.maximum(low, 0)[j] + k) * every


def plant_sessions(
    draws: Draws, settings: SimSettings, catalog: Catalog, partition: int, slices: np.ndarray, means: np.ndarray,
    counts: np.ndarray,
) -> Events:
    """The planted sessions whose first event falls in ``slices`` (a run of slices), for one partition.

    ``means`` and ``counts``: each slice's expected and actual number of
    ordinary sessions; planted sessions are numbered after a slice's
    ordinary ones: bundles, then a slot per planted user.
    """
    plan = _plan(settings, catalog)
    first, stop = int(slices[0]), int(slices[-1]) + 1
    parts = []
    users_here = (settings.users - partition + settings.partitions - 1) // settings.partitions

    # Bundles: an ordinary user of this partition views, carts and buys every product of one.
    bundles = np.zeros(slices.size, dtype=np.int64)
    if plan.bundles:
        mean = np.maximum(_BUNDLE_SHARE * means, _BUNDLE_MIN_RATE)
        bundles = poisson(mean, draws.uniform(slices, 0, Field.BUNDLES))
        at, _, k = spans(bundles)
        b_slice = slices[at]
        sizes = np.array([b.size for b in plan.bundles])
        which = integers(draws.uniform(b_slice, k, Field.BUNDLE_WHICH), 0, len(plan.bundles))
        user = partition + settings.partitions * integers(draws.uniform(b_slice, k, Field.BUNDLE_USER), 0, users_here)
        start = settings.start_ms + b_slice * SLICE_MS + integers(draws.uniform(b_slice, k, Field.BUNDLE_START), 0,
                                                                  SLICE_MS)
        row_of, row_first, within = spans(sizes[which])
        bundle_first = np.cumsum(sizes) - sizes  # where each bundle starts in the flat list
        product = np.concatenate(plan.bundles)[bundle_first[which][row_of] + within]
        r_slice, r_item = b_slice[row_of], k[row_of] * _SLOTS + within
        gaps = integers(draws.uniform(r_slice, r_item, Field.BUNDLE_GAP), 10_000, 40_000)
        view = start[row_of] + _walk(gaps, row_first, sizes[which])
        cart = view + integers(draws.uniform(r_slice, r_item, Field.BUNDLE_CART_DELAY), 2_000, 8_000)
        checkout = cart[row_first + sizes[which] - 1] + integers(draws.uniform(b_slice, k, Field.BUNDLE_CHECKOUT),
                                                                 20_000, 60_000)
        buy = checkout[row_of] + 500 * within
        number = (counts[at] + k)[row_of]
        for kind, ts, units in ((VIEW, view, None), (CART, cart, None), (PURCHASE, buy, np.ones_like(buy))):
            parts.append(Events.of(r_slice, number, kind, ts, user[row_of], product, units))

    first_planted = _planted_user_index(settings.users)
    slot_base = counts + bundles  # per slice: the first planted user's slot

    # Cart abandoners: 1-3 views, 1-2 of them carted, on their schedule.
    j, at_ms = _scheduled(first, stop, np.arange(_ABANDONERS) * _ABANDON_STAGGER_MS, _ABANDON_EVERY_MS)
    mine = (first_planted + j) % settings.partitions == partition
    j, at_ms = j[mine], at_ms[mine]
    if j.size:
        a_slice = at_ms // SLICE_MS
        views = integers(draws.uniform(a_slice, j, Field.ABANDON_VIEWS), 1, 4)
        carts = np.minimum(views, integers(draws.uniform(a_slice, j, Field.ABANDON_CARTS), 1, 3))
        row_of, row_first, within = spans(views)
        r_slice, r_item = a_slice[row_of], j[row_of] * _SLOTS + within
        gaps = integers(draws.uniform(r_slice, r_item, Field.ABANDON_GAP), 15_000, 45_000)
        view = settings.start_ms + at_ms[row_of] + _walk(gaps, row_first, views)
        product = pick(draws.uniform(r_slice, r_item, Field.ABANDON_PRODUCT), catalog.popularity_cdf)
        carted = within < carts[row_of]
        cart = view[carted] + integers(draws.uniform(r_slice[carted], r_item[carted], Field.ABANDON_CART_DELAY),
                                       3_000, 10_000)
        number = (slot_base[a_slice - first] + j)[row_of]
        user = np.full(view.size, first_planted) + j[row_of]
        parts.append(Events.of(r_slice, number, VIEW, view, user, product))
        parts.append(Events.of(r_slice[carted], number[carted], CART, cart, user[carted], product[carted]))

    # Big spenders: view, cart and buy an expensive product, on their schedule.
    j, at_ms = _scheduled(first, stop, np.arange(_BIG_SPENDERS) * _BIG_SPEND_STAGGER_MS, _BIG_SPEND_EVERY_MS)
    user = first_planted + _BIG_SPENDER_OFFSET + j
    mine = user % settings.partitions == partition
    j, at_ms, user = j[mine], at_ms[mine], user[mine]
    if j.size:
        s_slice = at_ms // SLICE_MS
        pick_one = integers(draws.uniform(s_slice, j, Field.SPEND_PRODUCT), 0, plan.expensive.size)
        product, units = plan.expensive[pick_one], plan.expensive_quantity[pick_one]
        number = slot_base[s_slice - first] + _ABANDONERS + j
        view = settings.start_ms + at_ms
        parts.append(Events.of(s_slice, number, VIEW, view, user, product))
        parts.append(Events.of(s_slice, number, CART, view + _BIG_SPEND_LEAD_MS // 2, user, product))
        parts.append(Events.of(s_slice, number, PURCHASE, view + _BIG_SPEND_LEAD_MS, user, product, units))
    # Ordered by slice; within a slice bundles, abandoners, big spenders, each by kind.
    return Events.concat(parts).by_slice()


def _walk(gaps: np.ndarray, first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Milliseconds after its group's first row of each row, for the gaps before each row (the first's ignored)."""
    gaps = gaps.copy()
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    return elapsed - np.repeat(elapsed[first], sizes)

