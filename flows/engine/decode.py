"""Decoding: raw records -> events in ``EVENT_SCHEMA`` plus dead letters.

In: a :class:`~flows.engine.schema.RawBatch` (JSON Lines or CSV, as one
chunk of lines or as a list of messages). Out: a :class:`DecodeResult`
whose ``events`` keep the records' order and whose ``dead_letters`` say,
for every record that could not be decoded, why and where it came from.
``len(events) + len(dead_letters)`` always equals the number of records.

:mod:`flows.engine.parse` turns the records into string fields (and names
those that do not parse); this module normalises and validates them as
column expressions, so a record decodes to the same event, or the same dead
letter, whatever batch it is in.

Field rules (JSON names; REES46 CSV columns are mapped onto them):

- ``ts`` (also ``event_time``, or ``purchase_time`` for the minimal purchase
  message): see :mod:`flows.engine.timeparse`; within ``Bounds.min_ts`` and
  ``Bounds.max_ts`` (years 1970 to 9999). Required.
- ``event_type``: view, add_to_cart (``cart`` too), remove_from_cart,
  purchase. Missing means purchase when ``purchase_time`` is given.
- ``user_id``, ``product_id``: required; strings or integers, kept as strings
  (any other JSON value is kept as its JSON text).
- ``price``: a finite number from 0 to ``Bounds.max_price``, optional.
  ``quantity``: an integer from 1 to ``Bounds.max_quantity``, default 1.
  ``price * quantity`` at most ``Bounds.max_line_value``. Either may arrive as
  a JSON number or as a string holding one.
- ``session_id`` (``user_session``), ``category`` (``category_code``),
  ``category_id``, ``brand``, ``event_id``: optional strings; empty is null.
  A flow may ask for only some of them; the others are not even parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import polars as pl

from flows.engine.bounds import DEFAULT_BOUNDS, Bounds
from flows.engine.parse import Duplicates, Records
from flows.engine.readers import NUMBERS
from flows.engine.schema import EVENT_TYPES, OPTIONAL_FIELDS, EventType, RawBatch, event_schema
from flows.engine.timeparse import parse_event_time

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

_REASON_VALUE_CHARS = 60
_INT64_LIMIT = 2.0**63


@dataclass(frozen=True)
class DecodeResult:
    """Decoded events (``EVENT_SCHEMA``) and dead letters (``DEAD_LETTER_SCHEMA``)."""

    events: pl.DataFrame
    dead_letters: pl.DataFrame

    @property
    def records(self) -> int:
        return self.events.height + self.dead_letters.height


def decode_batch(
    raw: RawBatch,
    optional: Sequence[str] | None = None,
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    duplicates: Duplicates = "first",
) -> DecodeResult:
    """Decode every record of ``raw``; never raises on bad data.

    ``optional`` names the optional event fields to decode (all by default);
    the events frame has :func:`~flows.engine.schema.event_schema` (optional).
    An event outside ``bounds`` is a dead letter. A JSON object giving a
    field twice counts its first occurrence (``duplicates="first"``, what
    Polars reads, on every path) or is a dead letter (``"reject"``, which
    costs a regex pass over every batch: about half again the decoding time).
    """
    schema = event_schema(optional)
    records = Records(raw, tuple(schema.names()), duplicates)
    fields, rows = records.parse()
    events, invalid_rows, reasons = _normalize(fields, schema, bounds)
    if invalid_rows and rows is None:
        rows = records.fast_path_rows(fields.height)
        if rows is None:  # the parser skipped a line we count: take the careful path
            fields, rows = records.parse_listed(known_bad=False)
            events, invalid_rows, reasons = _normalize(fields, schema, bounds)
    assert rows is not None or not invalid_rows
    invalid = [(rows[row], reason) for row, reason in zip(invalid_rows, reasons)] if rows else []
    return DecodeResult(events, records.dead_letters(invalid))


@dataclass(frozen=True)
class _Fields:
    """Parsed string fields plus a few facts about them, so clean data is not copied.

    Turning empty strings into nulls, or ``cart`` into ``add_to_cart``,
    copies a whole string column; one cheap query per batch says which
    columns need it at all (usually none).
    """

    frame: pl.DataFrame
    with_empties: frozenset[str]
    has_cart: bool

    @classmethod
    def inspect(cls, frame: pl.DataFrame) -> _Fields:
        texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
        if not frame.height or not texts:
            return cls(frame, frozenset(), False)
        facts = frame.select(
            *((pl.col(name).str.len_bytes() == 0).any().alias(name) for name in texts),
            (pl.col("event_type") == "cart").any().alias("_cart") if "event_type" in texts
            else pl.lit(False).alias("_cart"),
        ).row(0, named=True)
        return cls(frame, frozenset(n for n in texts if facts[n]), bool(facts["_cart"]))

    def has(self, name: str) -> bool:
        return name in self.frame.columns and self.frame[name].null_count() < self.frame.height

    def text(self, name: str) -> pl.Expr:
        """A field as a string column; empty strings and absent columns are null."""
        if name not in self.frame.columns:
            return pl.lit(None, pl.String)
        column = pl.col(name)
        return pl.when(column.str.len_bytes() > 0).then(column) if name in self.with_empties else column

    def number(self, name: str, alias: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
        """A numeric field as (given?, its text if parsed as text, its value).

        The text is only quoted in the reason of a value that is not a
        number at all, which can only happen when it was parsed as text.
        """
        dtype = NUMBERS[name]
        if name not in self.frame.columns:
            return (pl.lit(False).alias(f"{name}_given"), pl.lit(None, pl.String).alias(f"{name}_text"),
                    pl.lit(None, dtype).alias(alias))
        if self.frame.schema[name] == pl.String:
            text = self.text(name)
            return (text.is_not_null().alias(f"{name}_given"), text.alias(f"{name}_text"),
                    text.cast(dtype, strict=False).alias(alias))
        value = pl.col(name).cast(dtype)
        return (value.is_not_null().alias(f"{name}_given"), pl.lit(None, pl.String).alias(f"{name}_text"),
                value.alias(alias))


def _normalize(frame: pl.DataFrame, schema: pl.Schema, bounds: Bounds) -> tuple[pl.DataFrame, list[int], list[str]]:
    """Typed events (``schema``) for valid rows; row numbers and reasons for the others."""
    fields = _Fields.inspect(frame)
    ts_text, type_text = fields.text("ts"), fields.text("event_type")
    if fields.has("purchase_time"):
        # The minimal purchase message: purchase_time stands for ts and event_type.
        ts_text = pl.coalesce(ts_text, fields.text("purchase_time"))
        type_text = pl.coalesce(type_text, pl.when(fields.text("purchase_time").is_not_null()).then(pl.lit("purchase")))
    if fields.has_cart:
        type_text = type_text.replace("cart", "add_to_cart")
    optional = [name for name in OPTIONAL_FIELDS if name in schema]
    staged = frame.select(
        type_text.alias("type_text"),
        ts_text.alias("ts_text"),
        fields.text("user_id").alias("user_id"),
        fields.text("product_id").alias("product_id"),
        *fields.number("price", "price"),
        *fields.number("quantity", "quantity_number"),
        *(fields.text(name).alias(name) for name in optional),
    )
    staged = staged.with_columns(
        parse_event_time(staged["ts_text"]).alias("ts"),
        pl.col("type_text").cast(EventType, strict=False).alias("event_type"),
    )
    price, quantity = pl.col("price"), pl.col("quantity_number")
    price_ok = ~pl.col("price_given") | (price.is_finite() & (price >= 0) & (price <= bounds.max_price))
    quantity_ok = ~pl.col("quantity_given") | ((quantity >= 1) & (quantity <= bounds.max_quantity))
    # A Float64 product: it cannot wrap around the way price micro-units x quantity would in an Int64.
    line_ok = (price.fill_null(0.0) * quantity.fill_null(1)) <= bounds.max_line_value
    valid = staged.select(
        (
            pl.col("ts").is_between(bounds.min_ts, bounds.max_ts)
            & pl.col("event_type").is_not_null()
            & pl.col("user_id").is_not_null()
            & pl.col("product_id").is_not_null()
            & price_ok
            & quantity_ok
            & line_ok
        )
        .fill_null(False)
        .alias("valid")
    ).to_series()
    typed = [quantity.fill_null(1).alias(name) if name == "quantity" else pl.col(name) for name in schema.names()]
    if valid.all():  # the usual case: no filtering copies
        return staged.select(typed), [], []
    events = staged.filter(valid).select(typed)
    invalid = staged.with_row_index("_row").filter(~valid)
    reasons = invalid.select(_reason(bounds).alias("reason"))["reason"].to_list()
    return events, invalid["_row"].to_list(), reasons


def _quoted(name: str) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), pl.col(name).str.slice(0, _REASON_VALUE_CHARS), pl.lit("'"))


def _number(value: float) -> str:
    """A bound as people write it: 1000000000, not 1e+09."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _iso(ms: int) -> str:
    at = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def _sentence(*parts: str | pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit(part) if isinstance(part, str) else part for part in parts])


def _reason(bounds: Bounds) -> pl.Expr:
    """The first rule a row breaks, as a sentence (only evaluated on invalid rows)."""
    price, quantity = pl.col("price"), pl.col("quantity_number")
    # A quantity too large for an Int64 is still an integer: say so, with its size.
    huge = pl.col("quantity_text").cast(pl.Float64, strict=False)
    huge = pl.when(quantity.is_null() & (huge.abs() >= _INT64_LIMIT)).then(huge)
    line = price * quantity.fill_null(1)
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("ts_text").is_null(), pl.lit("missing field ts")),
        (pl.col("ts").is_null(), _sentence("bad value for ts: ", _quoted("ts_text"),
                                           " is not an ISO-8601 time or epoch milliseconds")),
        (pl.col("ts") < bounds.min_ts,
         _sentence("ts ", _quoted("ts_text"), f" is before the minimum {_iso(bounds.min_ts)}")),
        (pl.col("ts") > bounds.max_ts,
         _sentence("ts ", _quoted("ts_text"), f" is after the maximum {_iso(bounds.max_ts)}")),
        (pl.col("user_id").is_null(), pl.lit("missing field user_id")),
        (pl.col("product_id").is_null(), pl.lit("missing field product_id")),
        (pl.col("type_text").is_null(), pl.lit("missing field event_type")),
        (pl.col("event_type").is_null(), _sentence("bad value for event_type: ", _quoted("type_text"),
                                                   f" is not one of {', '.join(EVENT_TYPES)} (or cart)")),
        (pl.col("price_given") & price.is_null(),
         _sentence("bad value for price: ", _quoted("price_text"), " is not a number")),
        (~price.is_finite(), _sentence("bad value for price: ", _quoted("price_text"), " is not a finite number")),
        (price < 0, _sentence("price ", price.cast(pl.String), " is below the minimum 0")),
        (price > bounds.max_price,
         _sentence("price ", price.cast(pl.String), f" is above the maximum {_number(bounds.max_price)}")),
        (huge > 0, _sentence("quantity ", huge.cast(pl.String), f" is above the maximum {bounds.max_quantity}")),
        (huge < 0, _sentence("quantity ", huge.cast(pl.String), " is below the minimum 1")),
        (pl.col("quantity_given") & quantity.is_null(),
         _sentence("bad value for quantity: ", _quoted("quantity_text"), " is not an integer")),
        (quantity < 1, _sentence("quantity ", quantity.cast(pl.String), " is below the minimum 1")),
        (quantity > bounds.max_quantity,
         _sentence("quantity ", quantity.cast(pl.String), f" is above the maximum {bounds.max_quantity}")),
        (line > bounds.max_line_value, _sentence("price x quantity ", line.cast(pl.String),
                                                 f" is above the maximum line value {_number(bounds.max_line_value)}")),
    ]
    condition, message = rules[0]
    chain: Then | ChainedThen = pl.when(condition.fill_null(False)).then(message)
    for condition, message in rules[1:]:
        chain = chain.when(condition.fill_null(False)).then(message)
    return chain.otherwise(pl.lit("invalid record"))
