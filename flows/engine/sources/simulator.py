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
    """Events of the sessions that start in one slice, for one partition.

    Columns: ``ts``, ``deliver_at`` (epoch ms), ``event_type``, ``user_id``,
    ``session``, ``product`` (catalog index), ``quantity``. Deterministic in
    (seed, partition, index).
    """
    rng = np.random.default_rng([settings.seed, partition, index])
    start = settings.start_ms + index * SLICE_MS
    share = settings.events_per_second * (SLICE_MS / 1000) / settings.partitions
    sessions = rng.poisson(share * daily_cycle(start + SLICE_MS / 2) / _EVENTS_PER_SESSION)
    if sessions == 0:
        return _empty_slice()
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

    parts = [
        (view_ts, "view", session_of_view, view_product, None),
        (cart_ts, "add_to_cart", cart_session, cart_product, None),
        (remove_ts, "remove_from_cart", cart_session[removed], cart_product[removed], None),
        (buy_ts, "purchase", cart_session[bought], cart_product[bought], quantity),
    ]
    events = pl.concat(
        [
            pl.DataFrame({"ts": ts, "session": sess, "product": prod}, schema=_PART_SCHEMA).with_columns(
                pl.lit(kind).alias("event_type"),
                pl.Series("quantity", qty, dtype=pl.Int64) if qty is not None else pl.lit(None, pl.Int64).alias("quantity"),
            )
            for ts, kind, sess, prod, qty in parts
        ],
        how="vertical",
    )
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
        while True:
            pending.append(generate_slice(self.settings, self.catalog, self.partition, index))
            index += 1
            boundary = self._slice_start(index)
            ready = sum(int((frame["deliver_at"] < boundary).sum()) for frame in pending)
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
        return [RawBatch(self.name, payload, "jsonl", origin=self.name, first_line=position.emitted + 1, last=last)]

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
