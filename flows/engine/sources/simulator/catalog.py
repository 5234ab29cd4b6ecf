"""The simulated shop's catalog: products in categories, with brands, shelf prices, basket sizes and popularity.

In: a catalog size and a seed. Out: a :class:`Catalog` of columns indexed
by catalog index (0 .. products-1); events refer to products by that index
until they are rendered.

Categories, their share of the products and their median prices follow the
REES46 sample (``tests/data/rees46-2019-oct-sample.csv``: medians per
``category_code`` of the categories it has ten or more events of, rounded:
smartphones 345, headphones 160, notebooks 410, desktops 500, washers 310,
refrigerators 350, TVs 370, vacuums 90, air heaters 36, shoes 70; the rest
are set near what such a shop charges). A product's price
is lognormal around its category's median (each category its own spread:
smartphones run from 40 to 1,700 there) and then put on the shelf the way
catalogues price, ending in .99 (7.99, 39.99, 349.99, 1,249.99). Basket
sizes, units per purchase line, depend on the category: big-ticket items go
one at a time, toys and shoes sometimes two or three. Popularity is
Zipf-skewed over a random ranking of the products.

>>> catalog = make_catalog(500, seed=1)
>>> bool((catalog.price.to_numpy() % 1 > 0.98).all()), round(float(catalog.popularity.sum()), 6)
(True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

FIRST_PRODUCT_ID = 1_000_000
FIRST_USER_ID = 500_000_000
_FIRST_CATEGORY_ID = 2_053_013_552_326_770_000
_ZIPF_EXPONENT = 0.9  # the top product gets ~7% of views with 2,000 products; a long tail

# Units per purchase line: P(1), P(2), P(3).
_ONE = (1.0, 0.0, 0.0)
_FEW = (0.88, 0.10, 0.02)
_SEVERAL = (0.70, 0.22, 0.08)


@dataclass(frozen=True)
class _Category:
    code: str
    share: float  # of the products
    median: float  # price
    spread: float  # sigma of log price
    brands: tuple[str | None, ...]
    units: tuple[float, float, float]


_CATEGORIES = (
    _Category("electronics.smartphone", 0.16, 345.0, 0.65, ("samsung", "apple", "xiaomi", "huawei", "oppo"), _ONE),
    _Category("electronics.audio.headphone", 0.06, 160.0, 0.6, ("apple", "samsung", "jbl", "sony", "xiaomi"), _FEW),
    _Category("electronics.video.tv", 0.05, 370.0, 0.45, ("samsung", "lg", "sony", "haier"), _ONE),
    _Category("electronics.clocks", 0.04, 180.0, 0.7, ("apple", "casio", "xiaomi", "samsung"), _ONE),
    _Category("electronics.tablet", 0.03, 450.0, 0.5, ("apple", "samsung", "lenovo", "prestigio"), _ONE),
    _Category("computers.notebook", 0.06, 410.0, 0.45, ("lenovo", "hp", "asus", "acer", "apple"), _ONE),
    _Category("computers.desktop", 0.03, 500.0, 0.6, ("pulser", "apple", "hp", "lenovo"), _ONE),
    _Category("appliances.kitchen.washer", 0.05, 310.0, 0.35, ("samsung", "lg", "indesit", "beko"), _ONE),
    _Category("appliances.kitchen.refrigerators", 0.05, 350.0, 0.5, ("atlant", "samsung", "lg", "indesit"), _ONE),
    _Category("appliances.environment.vacuum", 0.05, 90.0, 0.6, ("samsung", "philips", "dyson", "vitek"), _ONE),
    _Category("appliances.environment.water_heater", 0.03, 100.0, 0.5, ("ariston", "haier", "electrolux", "aqua"),
              _ONE),
    _Category("appliances.environment.air_heater", 0.04, 36.0, 0.45, ("midea", "tefal", "oasis", "ballu"), _FEW),
    _Category("apparel.shoes", 0.07, 70.0, 0.4, ("nike", "adidas", "respect", "baden"), _FEW),
    _Category("furniture.living_room.sofa", 0.02, 540.0, 0.4, ("ikea", "brw", None), _ONE),
    _Category("furniture.kitchen.table", 0.03, 100.0, 0.5, ("brw", "bts", "sv"), _ONE),
    _Category("kids.toys", 0.05, 30.0, 0.7, ("lego", "hasbro", "chicco", None), _SEVERAL),
    _Category("construction.tools.drill", 0.04, 90.0, 0.5, ("bosch", "makita", "dewalt"), _ONE),
    _Category("auto.accessories.player", 0.02, 120.0, 0.4, ("pioneer", "jvc", "kenwood"), _ONE),
    _Category("accessories.bag", 0.04, 45.0, 0.5, ("samsonite", "xiaomi", None), _FEW),
    _Category("sport.bicycle", 0.03, 380.0, 0.5, ("stels", "forward", "trek"), _ONE),
)
CATEGORY_MEDIANS = {c.code: c.median for c in _CATEGORIES}


@dataclass(frozen=True)
class Catalog:
    """Products with categories, brands, prices, units per purchase line and popularity.

    ``units_cdf``: per product, P(units <= 1) and P(units <= 2) of a
    purchase line; ``popularity``: probabilities, ``popularity_cdf`` their
    running sum.
    """

    product_id: pl.Series
    category: pl.Series
    category_id: pl.Series
    brand: pl.Series
    price: pl.Series
    popularity: np.ndarray
    popularity_cdf: np.ndarray
    units_cdf: np.ndarray  # (products, 2)


def shelf_price(raw: np.ndarray) -> np.ndarray:
    """Prices as a catalogue shows them: rounded up to a step that grows with the price, less a cent.

    >>> shelf_price(np.array([7.2, 36.4, 344.0, 1234.0])).tolist()
    [7.99, 39.99, 349.99, 1249.99]
    """
    step = np.select([raw < 20, raw < 200, raw < 1000], [1.0, 5.0, 10.0], 50.0)
    return np.round(np.ceil(raw / step) * step - 0.01, 2)


def make_catalog(products: int, seed: int) -> Catalog:
    rng = np.random.default_rng([seed, 0xC47A])
    shares = np.array([c.share for c in _CATEGORIES])
    category = rng.choice(len(_CATEGORIES), size=products, p=shares / shares.sum())
    medians = np.array([c.median for c in _CATEGORIES])[category]
    spreads = np.array([c.spread for c in _CATEGORIES])[category]
    price = shelf_price(medians * np.exp(spreads * rng.standard_normal(products)))
    brand_pick = rng.random(products)
    brands = [_CATEGORIES[c].brands[int(u * len(_CATEGORIES[c].brands))] for c, u in zip(category.tolist(), brand_pick)]
    units = np.cumsum(np.array([c.units for c in _CATEGORIES]), axis=1)[category, :2]
    rank = rng.permutation(products) + 1
    weight = 1.0 / rank.astype(float) ** _ZIPF_EXPONENT
    popularity = weight / weight.sum()
    return Catalog(
        product_id=pl.Series("product_id", FIRST_PRODUCT_ID + np.arange(products), dtype=pl.Int64),
        category=pl.Series("category", [_CATEGORIES[i].code for i in category.tolist()], dtype=pl.String),
        category_id=pl.Series("category_id", (_FIRST_CATEGORY_ID + category).astype(np.int64)).cast(pl.String),
        brand=pl.Series("brand", brands, dtype=pl.String),
        price=pl.Series("price", price, dtype=pl.Float64),
        popularity=popularity,
        popularity_cdf=np.cumsum(popularity),
        units_cdf=units,
    )
