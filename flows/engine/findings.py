"""Findings: what each output stream found, in a few lines of the run summary.

In: an output stream's typed rows, one output batch at a time (a closed
window's rows, a release of sessions: a few hundred per run, so a finding
costs one small Polars step per output batch and nothing per event). Out,
when the summary is made: a JSON-able dict per stream (``summary.json``'s
``findings``) and the few lines the printed summary shows for it.

A stream declares its finding on its
:class:`~flows.engine.streams.OutputStream`; the wiring taps every stream
written with one (:meth:`flows.engine.wiring.Wiring.write`) and the run
summary merges what comes (:class:`flows.engine.summary.RunSummary`):

- ``partial``: one batch's typed rows -> a small frame, of one schema
  whatever the rows (none included);
- ``merge``: partials, concatenated -> one partial of that schema. It must
  be associative and commutative (sums, minimums and maximums per key; the
  first k rows by a total order), so that a finding depends on the rows
  alone: not on how they were batched, which worker had them, or the order
  they came in. Sums are of integers (money as micro-units, :func:`micros`):
  float sums depend on their order;
- ``result``: the merged partial -> a JSON-able dict, ties broken by a total order;
- ``lines``: that dict -> the lines to print (none when there is nothing to say).

>>> kinds = Finding(
...     partial=lambda rows: rows.group_by("kind").agg(pl.len().cast(pl.Int64).alias("n")),
...     merge=sum_by("kind"),
...     result=lambda merged: {"kinds": dict(merged.sort("kind").iter_rows())},
...     lines=lambda found: [", ".join(f"{kind} {n:,}" for kind, n in found["kinds"].items())])
>>> batches = [pl.DataFrame({"kind": ["a", "b", "a"]}), pl.DataFrame({"kind": ["b"]})]
>>> kinds.lines(kinds.result(kinds.fold([kinds.partial(rows) for rows in batches])))
['a 2, b 2']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from flows.engine.money import MICROS
from flows.engine.streams import TIME


@dataclass(frozen=True)
class Finding:
    """What the run summary says of one output stream; see the module docstring."""

    partial: Callable[[pl.DataFrame], pl.DataFrame]
    merge: Callable[[pl.DataFrame], pl.DataFrame]
    result: Callable[[pl.DataFrame], dict[str, Any]]
    lines: Callable[[dict[str, Any]], list[str]]

    def fold(self, partials: Sequence[pl.DataFrame]) -> pl.DataFrame:
        """Several partials (at least one) as one."""
        return self.merge(pl.concat(partials, how="vertical")) if len(partials) > 1 else partials[0]


def sum_by(*keys: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """A merge that sums every other column per key (no keys: one row of totals)."""

    def merge(partials: pl.DataFrame) -> pl.DataFrame:
        if not keys:
            return partials.select(pl.all().sum())
        return partials.group_by(keys).agg(pl.exclude(keys).sum())

    return merge


def micros(column: str) -> pl.Expr:
    """A money column (the nearest float to a decimal amount) back as exact integer micro-units, for sums."""
    return (pl.col(column) * MICROS).round().cast(pl.Int128)


def amount(value_micros: int) -> float:
    """Micro-units as a decimal amount (a correctly rounded division)."""
    return value_micros / MICROS


def iso(column: str) -> pl.Expr:
    """A typed time column as output rows show it (``2024-01-06T18:40:00Z``), rendered by Polars.

    Never through a Python ``datetime``, which ends with the year 9999: the
    last window of an event at 9999-12-31T23:59:59.999Z ends after it.
    """
    return TIME.json(pl.col(column)).alias(column)


def minute(text: str) -> str:
    """An ISO-8601 time (:func:`iso`) as the summary prints it: ``2024-01-06 18:40``.

    >>> minute("2024-01-06T18:40:00Z"), minute("+10000-01-01T00:00:00Z")
    ('2024-01-06 18:40', '+10000-01-01 00:00')
    """
    return text[:-4].replace("T", " ")


def share(part: int | float, whole: int | float) -> str:
    """``part`` of ``whole`` as a percentage: ``2.8%`` (``-`` of nothing).

    >>> share(5_576, 206_864), share(1, 3_000), share(0, 0)
    ('2.7%', '0.03%', '-')
    """
    if not whole:
        return "-"
    percent = 100 * part / whole
    return f"{percent:.1f}%" if percent >= 0.1 or not percent else f"{percent:.1g}%"


def lasting(ms: float) -> str:
    """A length of time as people say it, to the second: ``35s``, ``1m 12s``, ``1h``, ``2h 05m``, ``3d 04h``.

    >>> [lasting(ms) for ms in (35_229, 72_400, 3_600_000, 7_512_000, 273_600_000, 250)]
    ['35s', '1m 12s', '1h', '2h 05m', '3d 04h', '0.25s']
    """
    if ms < 1_000:
        return f"{ms / 1000:.2g}s" if ms else "0s"
    seconds = int(ms // 1000)
    for big, small, unit, sub in ((86_400, 3_600, "d", "h"), (3_600, 60, "h", "m"), (60, 1, "m", "s")):
        if seconds >= big:
            whole, rest = divmod(seconds, big)
            return f"{whole}{unit}" + (f" {rest // small:02d}{sub}" if rest // small else "")
    return f"{seconds}s"


def listed(pairs: Iterable[tuple[str, int]]) -> str:
    """``name count`` pairs as one phrase: ``trends 307, funnel 17``."""
    return ", ".join(f"{name} {count:,}" for name, count in pairs)
