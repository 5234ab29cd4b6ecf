"""Money: integer micro-units inside the engine, so sums are exact in any order.

Prices arrive as decimal numbers; a line (price x quantity) becomes integer
micro-units once, when it is aggregated, and sums of micro-units are exact
whatever the batching or merge order. Outputs turn them back into the
nearest float to the decimal amount (:func:`money`).
"""

from __future__ import annotations

import polars as pl

MICROS = 1_000_000


def money(column: str | pl.Expr) -> pl.Expr:
    """Integer micro-units -> the nearest float to the decimal amount.

    Polars' float division multiplies by the reciprocal, which is not
    correctly rounded (330980000 / 1e6 gives 330.97999999999996); going
    through a Decimal gives exactly what ``330980000 / 1e6`` gives in Python.

    >>> pl.select(money(pl.lit(330_980_000))).item()
    330.98
    """
    expr = pl.col(column) if isinstance(column, str) else column
    return (expr.cast(pl.Decimal(38, 6)) / MICROS).cast(pl.Float64)


def to_micros(price: pl.Expr) -> pl.Expr:
    """A price as integer micro-units, so sums are exact in any order."""
    return (price * MICROS).round().cast(pl.Int64)


def line_micros() -> pl.Expr:
    """An event's price x quantity in micro-units (an event without a price is worth 0), as a 128-bit integer.

    The decoder bounds prices and quantities, so a line fits easily; sums of
    lines (:func:`~flows.engine.aggregate.ExactSum`) cannot overflow.
    """
    return to_micros(pl.col("price").fill_null(0.0)).cast(pl.Int128) * pl.col("quantity")
