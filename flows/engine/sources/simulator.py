"""The built-in shop simulator: realistic clickstream as JSON Lines batches.

In: :class:`~flows.engine.config.SimSettings`. Out: :class:`RawBatch` items
(JSON Lines, the same path as any file) from ``partitions`` source
partitions, like a topic keyed by user.

The shop: a catalog of products in categories with per-product prices and
Zipf-skewed popularity; users whose sessions walk view -> add_to_cart (->
remove_from_cart) -> purchase with realistic conversion; a daily cycle of
traffic (quiet at night, busiest in the evening). Delivery is out of order
but bounded (``disorder_ms``), except for a few stragglers delivered up to
ten minutes late; a given fraction of records is corrupted on purpose.

Planted behaviour (``DMP_SIM_PLANT``, on by default), so that tests and
demos know what the analytics should find (:func:`planted`,
:func:`abandon_sessions`): five *bundles* of 2-3 mid-popularity products
(popularity ranks ~50-500) bought together, in extra sessions (~3% of the
ordinary ones, at least 0.05 per slice and partition) where an ordinary user
views, carts and buys every product of one bundle within ~3 minutes; ten
*cart abandoners* (user ids 599000000-599000009) whose session every 6 h
(user j's k-th at ``start + j*17m + k*6h``) views 1-3 products and carts 1-2
but never buys or removes anything; five *big spenders* (599000100-599000104)
who buy a product costing >= 500 every 2 h (user j at ``start + j*11m +
k*2h``), viewed and carted in the minute before (user 0's first view is a
minute before the start). Planted users belong to partition ``(user id -
500000000) % partitions`` like everyone else; planted events are ordinary
rows of their slice (the one holding a session's first event), delayed and
corrupted like the rest. With planting off the output is the same as before
it existed.

Planted anomalies (``DMP_SIM_ANOMALIES``, off by default), so that an anomaly
detector can be scored against labels (:func:`planted_anomalies`, the rate
factor of a slice :func:`anomaly_factor`): from ``DMP_SIM_ANOMALY_AFTER``
after the start (rounded up to a whole minute) anomaly k = 0, 1, 2, ...
starts at ``after + k*5h + jitter`` (jitter: 0-59 whole minutes, drawn per k
from the seed) and multiplies the expected number of session starts of the
slices it covers: even k a *spike* (x3 for 5 minutes), odd k a *drop* (x0.1
for 15 minutes), except k = 5, a *level shift* (x2 from its start on,
forever; later anomalies multiply on top of it). Spikes and drops end long
before the next anomaly starts. Sessions keep their length, so a spike's
events spread over the minute or two after it; bundle sessions follow the
rate, abandoners and big spenders keep their schedules. With anomalies off
the output is the same as before they existed; with them on, slices before
the level shift and outside spikes and drops are unchanged too.

Everything is a pure function of (seed, partition, time slice), generated
with NumPy a slice at a time, so the same settings give the same bytes on
any machine, and a partition's snapshot (slice number, undelivered events,
count) resumes it exactly.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import polars as pl
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.config import SimSettings
from flows.engine.present import iso
from flows.engine.schema import RawBatch

SLICE_MS = 60_000
STRAGGLER_MAX_MS = 600_000
_BATCH_RECORDS = 20_000

# (category_code, median price); category ids in REES46 style (19 digits).
_CATEGORIES = (
    ("electronics.smartphone", 320.0, ("samsung", "apple", "xiaomi", "huawei")),
    ("electronics.audio.headphone", 60.0, ("sony", "jbl", "apple", "samsung")),
    ("electronics.video.tv", 450.0, ("samsung", "lg", "sony")),
    ("computers.notebook", 720.0, ("lenovo", "hp", "asus", "acer", "apple")),
    ("appliances.kitchen.refrigerators", 520.0, ("lg", "samsung", "bosch", "beko")),
    ("appliances.environment.vacuum", 140.0, ("samsung", "philips", "dyson")),
    ("apparel.shoes", 55.0, ("nike", "adidas", "puma")),
    ("furniture.living_room.sofa", 430.0, ("ikea", "divan", None)),
    ("kids.toys", 22.0, ("lego", "hasbro", None)),
    ("sport.bicycle", 380.0, ("stels", "forward", "trek")),
    ("construction.tools.drill", 85.0, ("bosch", "makita", "dewalt")),
    ("accessories.bag", 40.0, ("samsonite", None)),
)
_FIRST_PRODUCT_ID = 1_000_000
_ZIPF_EXPONENT = 0.9  # the top product gets ~7% of views with 2,000 products; a long tail
_FIRST_USER_ID = 500_000_000
_FIRST_CATEGORY_ID = 2_053_013_552_326_770_000

# Session behaviour.
_VIEW_STOP = 0.28  # each view ends the browsing with this probability (mean ~3.6 views)
_CART_RATE = 0.11  # a view leads to add_to_cart
_REMOVE_RATE = 0.12  # a cart item is removed again
_BUY_RATE = 0.45  # a session with items left in the cart buys them
_QUANTITY = (np.array([1, 2, 3]), np.array([0.86, 0.11, 0.03]))
_GAP_MS = 25_000  # mean time between views
_EVENTS_PER_SESSION = (1 / _VIEW_STOP) * (1 + _CART_RATE * (1 + _REMOVE_RATE) + _CART_RATE * _BUY_RATE)

# Planted behaviour (settings.plant); see the module docstring.
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

# Planted anomalies (settings.anomalies); see the module docstring. Times in slices (minutes).
_ANOMALY_EVERY = 5 * 3_600_000 // SLICE_MS  # anomaly k starts k * 5 h after the first ...
_ANOMALY_JITTER = 60  # ... plus 0-59 slices
_LEVEL_SHIFT_K = 5
_ANOMALY_KINDS = {"spike": (3.0, 5), "drop": (0.1, 15), "level_shift": (2.0, 0)}  # factor, slices (0: forever)


@dataclass(frozen=True)
class Catalog:
    """Products with categories, brands, prices and popularity (probabilities)."""

    product_id: pl.Series
    category: pl.Series
    category_id: pl.Series
    brand: pl.Series
    price: pl.Series
    popularity: np.ndarray


def make_catalog(products: int, seed: int) -> Catalog:
    rng = np.random.default_rng([seed, 0xC47A])
    category = rng.integers(0, len(_CATEGORIES), size=products)
    medians = np.array([c[1] for c in _CATEGORIES])[category]
    price = np.round(medians * rng.lognormal(0.0, 0.45, size=products), 2).clip(0.99)
    brands = []
    for index in category:
        options = _CATEGORIES[index][2]
        brands.append(options[rng.integers(0, len(options))])
    rank = rng.permutation(products) + 1
    weight = 1.0 / rank.astype(float) ** _ZIPF_EXPONENT
    return Catalog(
        product_id=pl.Series("product_id", _FIRST_PRODUCT_ID + np.arange(products), dtype=pl.Int64),
        category=pl.Series("category", [_CATEGORIES[i][0] for i in category], dtype=pl.String),
        category_id=pl.Series("category_id", (_FIRST_CATEGORY_ID + category).astype(np.int64)).cast(pl.String),
        brand=pl.Series("brand", brands, dtype=pl.String),
        price=pl.Series("price", price, dtype=pl.Float64),
        popularity=weight / weight.sum(),
    )


def daily_cycle(ts_ms: np.ndarray | float) -> np.ndarray | float:
    """Traffic multiplier by time of day (UTC): mean 1, low at 08:00, peak at 20:00."""
    hour = (np.asarray(ts_ms) / 3_600_000.0) % 24
    return 1.0 + 0.6 * np.sin(2 * math.pi * (hour - 14.0) / 24.0)


def generate_slice(settings: SimSettings, catalog: Catalog, partition: int, index: int) -> pl.DataFrame:
    """Events of the sessions that start in one slice (planted ones included), for one partition.

    Columns: ``ts``, ``deliver_at`` (epoch ms), ``event_type``, ``user_id``,
    ``session``, ``product`` (catalog index), ``quantity``. Deterministic in
    (seed, partition, index).
    """
    rng = np.random.default_rng([settings.seed, partition, index])
    start = settings.start_ms + index * SLICE_MS
    share = settings.events_per_second * (SLICE_MS / 1000) / settings.partitions
    mean_sessions = share * daily_cycle(start + SLICE_MS / 2) / _EVENTS_PER_SESSION
    if settings.anomalies:
        mean_sessions *= anomaly_factor(settings, index)
    sessions = rng.poisson(mean_sessions)
    extra = _plant(settings, catalog, partition, index, mean_sessions, sessions) if settings.plant else None
    if sessions == 0 and extra is None:
        return _empty_slice()
    user, parts = _ordinary_sessions(rng, settings, catalog, partition, start, sessions)
    frames = [
        pl.DataFrame({"ts": ts, "session": sess, "product": prod}, schema=_PART_SCHEMA).with_columns(
            pl.lit(kind).alias("event_type"),
            pl.Series("quantity", qty, dtype=pl.Int64) if qty is not None else pl.lit(None, pl.Int64).alias("quantity"),
        )
        for ts, kind, sess, prod, qty in parts
    ]
    if extra is not None:
        user = np.concatenate([user, extra.user])
        frames.append(extra.events)
    events = pl.concat(frames, how="vertical")
    delay = rng.uniform(0, settings.disorder_ms, size=events.height)
    straggler = rng.random(events.height) < settings.straggler_rate
    delay[straggler] = rng.uniform(settings.disorder_ms, STRAGGLER_MAX_MS, size=int(straggler.sum()))
    return events.with_columns(
        pl.Series("user_id", user[events["session"].to_numpy()]),
        # Unique across partitions and slices: ids a real shop would never reuse.
        (pl.col("session") + (partition * 1_000_003 + index) * 100_000).alias("session"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + index * 10_000_000).alias("uid"),
        (pl.col("ts") + pl.Series(delay.astype(np.int64))).alias("deliver_at"),
    ).select(_SLICE_SCHEMA.names())


_Part = tuple[np.ndarray, str, np.ndarray, np.ndarray, "np.ndarray | None"]


def _ordinary_sessions(
    rng: np.random.Generator, settings: SimSettings, catalog: Catalog, partition: int, start: int, sessions: int
) -> tuple[np.ndarray, list[_Part]]:
    """The shoppers' own sessions: user per session, and (ts, kind, session, product, quantity) parts."""
    if sessions == 0:
        return np.empty(0, dtype=np.int64), []
    users_here = np.arange(partition, settings.users, settings.partitions)
    user = _FIRST_USER_ID + rng.choice(users_here, size=sessions)
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


_PART_SCHEMA = {"ts": pl.Int64, "session": pl.Int64, "product": pl.Int64}
_SLICE_SCHEMA = pl.Schema(
    {
        "ts": pl.Int64,
        "deliver_at": pl.Int64,
        "event_type": pl.String,
        "user_id": pl.Int64,
        "session": pl.Int64,
        "uid": pl.Int64,
        "product": pl.Int64,
        "quantity": pl.Int64,
    }
)


def _empty_slice() -> pl.DataFrame:
    return pl.DataFrame(schema=_SLICE_SCHEMA)


# -- planted behaviour ---------------------------------------------------------------------


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
    first = _FIRST_USER_ID + _planted_user_index(settings.users)
    return Planted(
        bundles=tuple(tuple(str(_FIRST_PRODUCT_ID + int(p)) for p in bundle) for bundle in plan.bundles),
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
class _Extra:
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


def _plant(
    settings: SimSettings, catalog: Catalog, partition: int, index: int, mean_sessions: float, first_session: int
) -> _Extra | None:
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
                [b_session + first_session, a_session + a0, s_session + s0]
                + [b_session + first_session, a_cart_session + a0, s_session + s0]
                + [b_session + first_session, s_session + s0]
            ),
            "product": np.concatenate(
                [b_product, a_product, s_product, b_product, a_cart_product, s_product, b_product, s_product]
            ),
            "event_type": np.repeat(np.array(["view", "add_to_cart", "purchase"]), counts),
            "quantity": [None] * (counts[0] + counts[1]) + [1] * b_buy.size + s_quantity.tolist(),
        },
        schema={**_PART_SCHEMA, "event_type": pl.String, "quantity": pl.Int64},
    )
    return _Extra(_FIRST_USER_ID + user.astype(np.int64), events)


# -- planted anomalies ---------------------------------------------------------------------


def planted_anomalies(settings: SimSettings, until_ms: int) -> pl.DataFrame:
    """The planted anomalies that start before ``until_ms``: the labels of the traffic.

    Columns ``kind`` (``spike``, ``drop`` or ``level_shift``), ``start_ms`` and
    ``end_ms`` (epoch ms, whole slices; the end is exclusive, and a level
    shift, which never ends, has its start) and ``factor`` (what it multiplies
    the rate of session starts by), ordered by ``start_ms``. Empty when
    anomalies are off.
    """
    schema = {"kind": pl.String, "start_ms": pl.Int64, "end_ms": pl.Int64, "factor": pl.Float64}
    if not settings.anomalies:
        return pl.DataFrame(schema=schema)
    first = _first_anomaly_slice(settings)
    before = -(-(until_ms - settings.start_ms) // SLICE_MS)  # slices 0 .. before-1 start before until_ms
    k = np.arange(max(0, -(-(before - first) // _ANOMALY_EVERY)))  # anomalies that may start in them
    at = first + k * _ANOMALY_EVERY + np.array([_jitter(settings.seed, j) for j in k.tolist()], dtype=np.int64)
    k, at = k[at < before], at[at < before]
    kind = [_anomaly_kind(j) for j in k.tolist()]
    length = np.array([_ANOMALY_KINDS[name][1] for name in kind], dtype=np.int64)
    start = settings.start_ms + at * SLICE_MS
    return pl.DataFrame(
        {
            "kind": kind,
            "start_ms": start,
            "end_ms": start + length * SLICE_MS,
            "factor": [_ANOMALY_KINDS[name][0] for name in kind],
        },
        schema=schema,
    )


def anomaly_factor(settings: SimSettings, index: int) -> float:
    """What the planted anomalies multiply slice ``index``'s rate of session starts by (1.0: nothing).

    The spike or drop covering the slice, if any (they never overlap), times
    the level shift once it has started.
    """
    first = _first_anomaly_slice(settings)
    if not settings.anomalies or index < first:
        return 1.0
    factor = _ANOMALY_KINDS["level_shift"][0] if index >= _anomaly_slice(settings, _LEVEL_SHIFT_K) else 1.0
    k = (index - first) // _ANOMALY_EVERY  # the only anomaly that can cover the slice
    kind = _anomaly_kind(k)
    if kind != "level_shift":
        at = _anomaly_slice(settings, k)
        rate, length = _ANOMALY_KINDS[kind]
        if at <= index < at + length:
            factor *= rate
    return factor


def _first_anomaly_slice(settings: SimSettings) -> int:
    """The slice ``anomaly_after_ms`` after the start, rounded up: where anomaly 0's hour begins."""
    return -(-settings.anomaly_after_ms // SLICE_MS)


def _anomaly_kind(k: int) -> str:
    return "level_shift" if k == _LEVEL_SHIFT_K else ("spike", "drop")[k % 2]


def _anomaly_slice(settings: SimSettings, k: int) -> int:
    """The slice anomaly ``k`` starts in."""
    return _first_anomaly_slice(settings) + k * _ANOMALY_EVERY + _jitter(settings.seed, k)


@lru_cache(maxsize=4096)
def _jitter(seed: int, k: int) -> int:
    """Slices (minutes, 0-59) anomaly ``k`` starts after its hour begins: a function of (seed, k) alone."""
    return int(np.random.default_rng([seed, 0xA40A1, k]).integers(0, _ANOMALY_JITTER))


def render(events: pl.DataFrame, catalog: Catalog, partition: int) -> pl.DataFrame:
    """Slice events -> the JSON records a shop would send (still a frame)."""
    product = events["product"]
    return events.select(
        pl.format("e{}-{}", pl.lit(partition), pl.col("uid")).alias("event_id"),
        pl.col("event_type"),
        iso("ts", millis=True).alias("ts"),
        pl.col("user_id"),
        pl.format("s{}", pl.col("session")).alias("session_id"),
        catalog.product_id.gather(product),
        catalog.category.gather(product),
        catalog.category_id.gather(product),
        catalog.brand.gather(product),
        catalog.price.gather(product),
        pl.col("quantity"),
    )


_CORRUPTIONS = (
    lambda record: json.dumps(record)[: len(json.dumps(record)) // 2].encode(),  # truncated
    lambda record: b"<html><body>502 Bad Gateway</body></html>",  # not JSON
    lambda record: json.dumps({k: v for k, v in record.items() if k != "user_id"}).encode(),
    lambda record: json.dumps({**record, "ts": "yesterday"}).encode(),
    lambda record: json.dumps({**record, "price": -abs(record.get("price") or 1.0)}).encode(),
    lambda record: json.dumps({**record, "event_type": "click"}).encode(),
    lambda record: json.dumps(record).encode().replace(b'"', b'\xff"', 1),  # not UTF-8
)


def corrupt(records: pl.DataFrame, rng: np.random.Generator) -> list[bytes]:
    """Malformed versions of some records, one of several realistic kinds each."""
    kinds = rng.integers(0, len(_CORRUPTIONS), size=records.height)
    return [_CORRUPTIONS[kind](record) for kind, record in zip(kinds, records.iter_rows(named=True))]


@dataclass(frozen=True)
class SimPosition:
    """A simulator partition's snapshot: next slice, undelivered events, records emitted."""

    next_slice: int
    undelivered: pl.DataFrame
    emitted: int
    done: bool = False


class SimSource(FixedPartitionedSource[RawBatch, SimPosition]):
    """The simulated shop as a partitioned source; see the module docstring."""

    def __init__(self, settings: SimSettings):
        self.settings = settings

    def partitions(self) -> list[str]:
        return [f"sim-{p}" for p in range(self.settings.partitions)]

    def list_parts(self) -> list[str]:
        return self.partitions()

    def build_part(self, step_id: str, for_part: str, resume_state: SimPosition | None) -> SimPartition:
        return SimPartition(self.settings, int(for_part.removeprefix("sim-")), resume_state)

    def quota(self, partition: int) -> int | None:
        """Records partition ``partition`` emits in total (``None``: unbounded)."""
        total, parts = self.settings.events, self.settings.partitions
        if total == 0:
            return None
        return total // parts + (1 if partition < total % parts else 0)


class SimPartition(StatefulSourcePartition[RawBatch, SimPosition]):
    def __init__(self, settings: SimSettings, partition: int, resume: SimPosition | None):
        self.settings = settings
        self.partition = partition
        self.name = f"sim-{partition}"
        self.catalog = make_catalog(settings.products, settings.seed)
        self.quota = SimSource(settings).quota(partition)
        self.position = resume if resume is not None else SimPosition(0, _empty_slice(), 0)
        self.started = time.monotonic()
        self.first_slice = self.position.next_slice

    def next_awake(self) -> datetime | None:
        if self.settings.speed <= 0:
            return None
        # Pace event time: slice k is released once (k * slice) / speed wall seconds passed.
        due = (self.position.next_slice - self.first_slice) * SLICE_MS / 1000 / self.settings.speed
        return datetime.fromtimestamp(time.time() + max(0.0, due - (time.monotonic() - self.started)), timezone.utc)

    def next_batch(self) -> list[RawBatch]:
        position = self.position
        if position.done:
            raise StopIteration
        if self.settings.speed > 0 and self.next_awake() > datetime.now(timezone.utc):  # type: ignore[operator]
            return []
        # Generate slices until enough events are due. Every event of a later
        # slice has deliver_at >= its ts >= the next slice's start, so the
        # events due before that start are final and can go out in order.
        pending = [position.undelivered]
        index = position.next_slice
        remaining = None if self.quota is None else self.quota - position.emitted
        settled, unsettled = 0, [position.undelivered]  # events surely due; frames not yet all due
        while True:
            frame = generate_slice(self.settings, self.catalog, self.partition, index)
            pending.append(frame)
            unsettled.append(frame)
            index += 1
            boundary = self._slice_start(index)
            # Only the last few slices (stragglers: up to ten) can still hold undue events,
            # so counting stays linear in the slices generated, however sparse they are.
            partly, still = 0, []
            for waiting in unsettled:
                due = int((waiting["deliver_at"] < boundary).sum())
                if due == waiting.height:
                    settled += due
                else:
                    partly += due
                    still.append(waiting)
            unsettled = still
            ready = settled + partly
            if ready >= _BATCH_RECORDS or self.settings.speed > 0 or (remaining is not None and ready >= remaining):
                break
        events = pl.concat(pending, how="vertical")
        due = pl.col("deliver_at") < self._slice_start(index)
        deliver = events.filter(due).sort(["deliver_at", "ts", "session", "uid"])
        undelivered = events.filter(~due)
        last = remaining is not None and deliver.height >= remaining
        if last:
            deliver = deliver.head(remaining)
        payload = self._encode(deliver, index)
        self.position = SimPosition(index, undelivered, position.emitted + deliver.height, done=last)
        return [RawBatch(self.name, payload, "jsonl", origin=self.name, first_line=position.emitted + 1,
                         lines=deliver.height, last=last)]

    def _slice_start(self, index: int) -> int:
        return self.settings.start_ms + index * SLICE_MS

    def _encode(self, events: pl.DataFrame, index: int) -> bytes:
        """JSON Lines of the events, a random few corrupted in place."""
        records = render(events, self.catalog, self.partition)
        rng = np.random.default_rng([self.settings.seed, self.partition, index, 0xBAD])
        broken = rng.random(records.height) < self.settings.malformed_rate
        if not broken.any():
            return records.write_ndjson().encode()
        lines = records.write_ndjson().encode().split(b"\n")
        for row, line in zip(np.flatnonzero(broken), corrupt(records.filter(pl.Series(broken)), rng)):
            lines[row] = line
        return b"\n".join(lines)

    def snapshot(self) -> SimPosition:
        return self.position
