"""The simulated shop's catalog: products in categories, with brands, prices and popularity.

In: a catalog size and a seed. Out: a :class:`Catalog` of columns indexed
by catalog index (0 .. products-1); events refer to products by that index
until they are rendered. Prices are lognormal around each category's median,
popularity is Zipf-skewed over a random ranking of the products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

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
FIRST_PRODUCT_ID = 1_000_000
_ZIPF_EXPONENT = 0.9  # the top product gets ~7% of views with 2,000 products; a long tail
FIRST_USER_ID = 500_000_000
_FIRST_CATEGORY_ID = 2_053_013_552_326_770_000


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
        product_id=pl.Series("product_id", FIRST_PRODUCT_ID + np.arange(products), dtype=pl.Int64),
        category=pl.Series("category", [_CATEGORIES[i][0] for i in category], dtype=pl.String),
        category_id=pl.Series("category_id", (_FIRST_CATEGORY_ID + category).astype(np.int64)).cast(pl.String),
        brand=pl.Series("brand", brands, dtype=pl.String),
        price=pl.Series("price", price, dtype=pl.Float64),
        popularity=weight / weight.sum(),
    )
