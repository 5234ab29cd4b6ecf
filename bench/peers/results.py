"""Reading each system's rows into one shape, and checking them against flows.dmp's.

In: a run's output directory (``trends/`` and ``leaderboard/``, JSON Lines
files) and how that system writes money (``currency`` or ``cents``).
Out: :class:`Rows` (rows by key, times as ISO-8601 UTC ``Z``, revenue in
integer cents) and, against the reference, a :class:`Check`.

Times are accepted as ISO-8601 with or without ``Z``/offset, with a space
or ``T``, with up to nanoseconds (Pathway), or epoch milliseconds (Quix);
a time without an offset is UTC. Money in ``currency`` is read as a
decimal from the JSON text, so ``1099.81`` is exactly 109981 cents. A row
with ``"diff": -1`` (Pathway's retraction) removes the row it retracts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Literal

Money = Literal["currency", "cents"]
_FRACTION = re.compile(r"(\.\d{6})\d+")


def iso_utc(value: str | int) -> str:
    """Any time a system writes -> ``2024-01-01T00:01:00Z`` (with ``.250`` when it has milliseconds).

    >>> iso_utc("2024-01-01 00:01:00"), iso_utc(1704067260000), iso_utc("2024-01-01T00:01:00.000000000")
    ('2024-01-01T00:01:00Z', '2024-01-01T00:01:00Z', '2024-01-01T00:01:00Z')
    """
    if isinstance(value, int):
        moment = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    else:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace(" ", "T").replace("Z", "+00:00")))
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis:03d}Z" if millis else "Z")


def cents(value: Decimal | int, money: Money) -> int:
    if money == "cents":
        return int(value)
    return int((Decimal(value) * 100).to_integral_value(ROUND_HALF_EVEN))


@dataclass
class Rows:
    """One run's rows: trends by (window_start, product_id), leaderboard by (window_start, rank)."""

    trends: dict[tuple, tuple] = field(default_factory=dict)
    leaderboard: dict[tuple, tuple] = field(default_factory=dict)
    repeated: int = 0  # rows whose key an earlier row already had (a window emitted twice)

    def events(self) -> int:
        """Events counted in the trends: views + carts + removes + purchases."""
        return sum(sum(values[1:5]) for values in self.trends.values())


def _lines(directory: Path):
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.name != "_SUCCESS":
            with open(path) as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line, parse_float=Decimal)


def read(out: Path, money: Money) -> Rows:
    """Every row of ``out/trends`` and ``out/leaderboard``, normalised."""
    rows = Rows()
    for row in _lines(out / "trends"):
        start = iso_utc(row["window_start"])
        key = (start, str(row["product_id"]))
        value = (iso_utc(row["window_end"]), row["views"], row["carts"], row["removes"], row["purchases"],
                 row["units"], cents(row["revenue"], money))
        _put(rows, rows.trends, key, value, row.get("diff", 1))
    for row in _lines(out / "leaderboard"):
        key = (iso_utc(row["window_start"]), int(row["rank"]))
        value = (iso_utc(row["window_end"]), str(row["product_id"]), cents(row["revenue"], money), row["units"],
                 row["purchases"])
        _put(rows, rows.leaderboard, key, value, row.get("diff", 1))
    return rows


def _put(rows: Rows, table: dict, key: tuple, value: tuple, diff: int) -> None:
    if diff < 0:
        if table.get(key) == value:
            del table[key]
        return
    if key in table:
        rows.repeated += 1
    table[key] = value


@dataclass(frozen=True)
class Comparison:
    """One stream's rows against the reference's: equal, differing, missing (only there), extra (only here)."""

    equal: int
    differ: int
    missing: int
    extra: int

    def __str__(self) -> str:
        return f"{self.equal:,} = / {self.differ:,} ≠ / {self.missing:,} missing / {self.extra:,} extra"

    @property
    def same(self) -> bool:
        return not (self.differ or self.missing or self.extra)


def compare(ours: dict, reference: dict) -> Comparison:
    common = ours.keys() & reference.keys()
    equal = sum(ours[key] == reference[key] for key in common)
    return Comparison(equal, len(common) - equal, len(reference.keys() - common), len(ours.keys() - common))


@dataclass(frozen=True)
class Check:
    """A run's results against flows.dmp's: both streams, and the events its trends do not count."""

    trends: Comparison
    leaderboard: Comparison
    uncounted: int  # input events minus events in the trends: dropped as late, or in windows never emitted
    repeated: int

    @property
    def same(self) -> bool:
        return self.trends.same and self.leaderboard.same and not self.repeated


def check(rows: Rows, reference: Rows, input_events: int) -> Check:
    return Check(compare(rows.trends, reference.trends), compare(rows.leaderboard, reference.leaderboard),
                 input_events - rows.events(), rows.repeated)
