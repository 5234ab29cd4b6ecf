"""Bounds on an event's numbers: what a real shop never exceeds.

In: nothing (defaults) or the limits a deployment chooses. Out: a frozen
:class:`Bounds` that :func:`~flows.engine.decode.decode_batch` checks every
event against; an event outside a bound is a dead letter naming the field,
the value and the bound.

The defaults keep every figure the engine derives from an event exact:
money is summed as integer micro-units (``price * 1e6 * quantity``, see
:func:`flows.engine.money.line_micros`) in 128-bit sums
(:func:`~flows.engine.aggregate.ExactSum`); a line worth at most
``max_line_value`` = 1e9 is at most 1e15 micro-units, so no sum over any
state the engine holds can overflow (it would take 1e23 maximal lines); a
price of at most 1e9 is at most 1e15 micro-units, below 2**53, so
``price * 1e6`` rounds to the exact integer. Times are epoch milliseconds of
years 1970 to 9999, far from the watermark sentinels (+-2**62).
"""

from __future__ import annotations

from dataclasses import dataclass

# 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in epoch milliseconds.
EPOCH_MS = 0
YEAR_9999_END_MS = 253_402_300_799_999
_INT64_MAX = 2**63 - 1
_MICROS = 1_000_000
_EXACT_FLOAT = 2**53


@dataclass(frozen=True)
class Bounds:
    """Limits on an event's numbers (all inclusive); see the module docstring.

    >>> Bounds().max_price
    1000000000.0
    >>> Bounds(max_quantity=0)
    Traceback (most recent call last):
    ...
    ValueError: Bounds.max_quantity must be an integer of at least 1; got 0
    """

    max_price: float = 1e9
    """Largest price, in currency units (a price is also finite and >= 0)."""
    max_quantity: int = 1_000_000
    """Largest quantity (a quantity is also an integer >= 1)."""
    max_line_value: float = 1e9
    """Largest ``price * quantity``, in currency units."""
    min_ts: int = EPOCH_MS
    """Earliest event time, epoch milliseconds (default 1970-01-01T00:00:00Z)."""
    max_ts: int = YEAR_9999_END_MS
    """Latest event time, epoch milliseconds (default 9999-12-31T23:59:59.999Z)."""

    def __post_init__(self) -> None:
        checks = [
            ("max_price", self.max_price, self.max_price > 0 and self.max_price * _MICROS <= _EXACT_FLOAT,
             f"between 0 and {_EXACT_FLOAT / _MICROS:.0f} (so price * 1e6 is an exact integer)"),
            ("max_quantity", self.max_quantity, isinstance(self.max_quantity, int) and self.max_quantity >= 1,
             "an integer of at least 1"),
            ("max_line_value", self.max_line_value,
             self.max_line_value > 0 and self.max_line_value * _MICROS * 1000 <= _INT64_MAX,
             f"between 0 and {_INT64_MAX / _MICROS / 1000:.0f} (so a thousand lines sum in an Int64)"),
            ("min_ts", self.min_ts, isinstance(self.min_ts, int) and EPOCH_MS <= self.min_ts <= self.max_ts,
             f"an integer between {EPOCH_MS} and max_ts"),
            ("max_ts", self.max_ts, isinstance(self.max_ts, int) and self.max_ts <= YEAR_9999_END_MS,
             f"an integer of at most {YEAR_9999_END_MS} (9999-12-31T23:59:59.999Z)"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                msg = f"Bounds.{name} must be {expected}; got {value!r}"
                raise ValueError(msg)


DEFAULT_BOUNDS = Bounds()
