"""Rendering engine frames for outputs: ISO-8601 times, money, raw bytes.

The engine keeps times as epoch milliseconds and money as integer
micro-units (exact sums); outputs show ISO-8601 UTC with ``Z`` and decimal
amounts. These helpers are the one place that conversion happens.
"""

from __future__ import annotations

import polars as pl

from flows.engine.windows import MISSED, WINDOW_END, WINDOW_START, SessionWindow, SlidingWindow, Window


def iso(column: str | pl.Expr, *, millis: bool = False) -> pl.Expr:
    """Epoch milliseconds -> ``2024-03-01T10:00:00Z`` (``.250Z`` with ``millis``).

    >>> pl.select(iso(pl.lit(1709287200250), millis=True)).item()
    '2024-03-01T10:00:00.250Z'
    """
    expr = pl.col(column) if isinstance(column, str) else column
    fmt = "%Y-%m-%dT%H:%M:%S%.3fZ" if millis else "%Y-%m-%dT%H:%M:%SZ"
    return pl.from_epoch(expr, time_unit="ms").dt.strftime(fmt)




def seconds(ms: str | pl.Expr) -> pl.Expr:
    """Milliseconds (whole, or halves, as medians give) -> seconds, as ``ms / 1000`` in Python.

    Through a Decimal, like :func:`money`: Polars' division by a constant is
    not correctly rounded.

    >>> pl.select(seconds(pl.lit(90_123)).alias("a"), seconds(pl.lit(4_500.5)).alias("b")).row(0)
    (90.123, 4.5005)
    """
    expr = pl.col(ms) if isinstance(ms, str) else ms
    return (expr.cast(pl.Decimal(38, 6)) / 1000).cast(pl.Float64)






# Event fields shown with a late event, in this order, when the flow decoded them.
_LATE_EVENT_COLUMNS = ("event_id", "event_type", "ts", "user_id", "session_id", "product_id", "category",
                       "brand", "price", "quantity")


def late_rows(late: pl.DataFrame, partition: str, window: Window) -> pl.DataFrame:
    """Late events as output rows: the event, the window it missed and the watermark it met.

    ``window_start`` / ``window_end`` name the (first) window missed; with
    sliding windows ``missed_windows`` lists the start of every window missed
    (the event still counts in the others). For sessions they are the span
    the event would have opened, ``[ts, ts + gap)``.
    """
    event = [
        pl.col("event_type").cast(pl.String) if name == "event_type"
        else iso("ts", millis=True).alias("ts") if name == "ts"
        else pl.col(name)
        for name in _LATE_EVENT_COLUMNS
        if name in late.columns
    ]
    missed = []
    if isinstance(window, SlidingWindow):
        missed = [pl.col(MISSED).list.eval(iso(pl.element())).alias("missed_windows")]
    return late.select(
        *event,
        iso(WINDOW_START, millis=isinstance(window, SessionWindow)).alias("window_start"),
        iso(WINDOW_END, millis=isinstance(window, SessionWindow)).alias("window_end"),
        *missed,
        iso("watermark", millis=True).alias("watermark"),
        pl.lit(partition).alias("partition"),
    )


def quality_rows(quality: pl.DataFrame) -> pl.DataFrame:
    """Quality rows (:data:`~flows.engine.schema.QUALITY_SCHEMA`) with ISO-8601 times."""
    return quality.with_columns(
        iso(WINDOW_START).alias(WINDOW_START),
        iso(WINDOW_END).alias(WINDOW_END),
        iso("watermark", millis=True).alias("watermark"),
        iso("reported_at", millis=True).alias("reported_at"),
    )


def dead_letter_rows(dead: pl.DataFrame) -> pl.DataFrame:
    """Dead letters as output rows; ``raw`` as text (invalid UTF-8 bytes as ``\\xNN``)."""
    raw = [value.decode("utf-8", "backslashreplace") for value in dead["raw"].to_list()]
    return dead.select("reason").with_columns(
        pl.Series("raw", raw, dtype=pl.String), dead["source"]
    )
