"""What a windowed analytic computes, declared; the engine does the rest.

An analytic is one of:

- :class:`WindowedAggregate`: key columns, a window (tumbling, sliding or
  session) and named measures, each a per-event Polars expression reduced by
  a mergeable aggregate (:func:`Sum`, :func:`Count`, :func:`Min`,
  :func:`Max`, :func:`Distinct`). Partial aggregates are computed per batch
  where the batch is and merged in keyed state, so state holds one row per
  open window and key, never raw events.
- :class:`WindowedFunction`: key columns, a window, the event columns it
  needs and a frame -> frame function run on each closed window's events,
  for what does not merge (distinct counts, medians, ordered funnels).
  State holds those columns of the open windows' events.

Every aggregate also counts its events (column ``events``), which quality
reports use.

>>> views = WindowedAggregate("views", ("product_id",), TumblingWindow(60_000),
...     {"views": Sum(pl.col("event_type") == "view"), "first_ts": Min(pl.col("ts"))})
>>> events = pl.DataFrame({"ts": [1_000, 2_000, 61_000], "product_id": ["a", "a", "a"],
...     "event_type": ["view", "purchase", "view"], "window_start": [0, 0, 60_000]})
>>> views.partial(events).sort("window_start").rows()
[(0, 'a', 1, 1000, 2), (60000, 'a', 1, 61000, 1)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence, Union

import polars as pl

from flows.engine.windows import WINDOW_START, SessionWindow, TumblingWindow, Window  # noqa: F401 - doctest

EVENTS = "events"
LAST_TS = "last_ts"  # sessions: the time of their last event

AggKind = Literal["sum", "count", "min", "max", "distinct"]


@dataclass(frozen=True)
class Agg:
    """A per-event expression and how it reduces; every kind merges (counts add up)."""

    expr: pl.Expr | None
    kind: AggKind = "sum"
    limit: int | None = None  # distinct: keep only the smallest ``limit`` values

    def partial(self) -> pl.Expr:
        """Reduce a group of events."""
        if self.kind == "count":
            return pl.len().cast(pl.Int64)
        if self.kind == "distinct":
            return self._bounded(self.expr.drop_nulls().unique().sort())  # type: ignore[union-attr]
        reduced = getattr(self.expr, self.kind)()
        # Sums of booleans and small ints become Int64, so partials concatenate.
        return reduced.cast(pl.Int64) if self.kind == "sum" else reduced

    def merge(self, column: str) -> pl.Expr:
        """Reduce a group of partial results in ``column``."""
        if self.kind == "distinct":
            return self._bounded(pl.col(column).explode().drop_nulls().unique().sort())
        return getattr(pl.col(column), "sum" if self.kind == "count" else self.kind)()

    def _bounded(self, values: pl.Expr) -> pl.Expr:
        # The smallest n of a union are the smallest n of the parts' smallest n: still mergeable.
        return values.head(self.limit) if self.limit is not None else values

    @property
    def dtype(self) -> pl.DataType:
        return pl.List(pl.String) if self.kind == "distinct" else pl.Int64()


def Sum(expr: pl.Expr) -> Agg:  # noqa: N802 - reads as a declaration
    """Sum of a per-event value (a boolean counts)."""
    return Agg(expr, "sum")


def Count() -> Agg:  # noqa: N802
    """Number of events."""
    return Agg(None, "count")


def Min(expr: pl.Expr) -> Agg:  # noqa: N802
    return Agg(expr, "min")


def Max(expr: pl.Expr) -> Agg:  # noqa: N802
    return Agg(expr, "max")


def Distinct(expr: pl.Expr, limit: int | None = None) -> Agg:  # noqa: N802
    """The distinct non-null values of a text expression, sorted (a list column).

    With ``limit``, only the ``limit`` smallest are kept, which bounds the
    state a window or session holds (the result is still exact for them).
    """
    return Agg(expr.cast(pl.String), "distinct", limit)


class _Keyed:
    """What both kinds of analytic share: keys, a window, and whether results are gathered."""

    keys: tuple[str, ...]
    window: Window
    gather: bool | None

    @property
    def gathers(self) -> bool:
        return self.gather if self.gather is not None else not isinstance(self.window, SessionWindow)

    @property
    def group(self) -> list[str]:
        return [WINDOW_START, *self.keys]


@dataclass(frozen=True)
class WindowedAggregate(_Keyed):
    """A keyed, windowed aggregate of mergeable measures; see the module docstring.

    ``measures`` maps output columns to :class:`Agg` (a bare expression means
    its :func:`Sum`). Sums should be integers (money in micro-units) so a
    result is exact whatever the merge order. With ``gather`` (the default
    for fixed windows), results are emitted per complete window, every
    shard's rows together, in window order; sessions are emitted as they
    close.
    """

    name: str
    keys: tuple[str, ...]
    window: Window
    measures: Mapping[str, Union[Agg, pl.Expr]]
    gather: bool | None = None

    @property
    def aggs(self) -> dict[str, Agg]:
        aggs = {name: m if isinstance(m, Agg) else Sum(m) for name, m in self.measures.items()}
        aggs[EVENTS] = Count()
        return aggs


    def partial(self, rows: pl.DataFrame, group: Sequence[str] | None = None) -> pl.DataFrame:
        """Reduce each measure of ``rows`` (events with their window) per window and key."""
        by = list(group) if group is not None else self.group
        return rows.group_by(by).agg(agg.partial().alias(name) for name, agg in self.aggs.items())

    def merge(self, partials: Sequence[pl.DataFrame], group: Sequence[str] | None = None) -> pl.DataFrame:
        """Combine partial aggregates of the same windows and keys."""
        frames = [frame for frame in partials if frame.height]
        if not frames:
            return self.empty()
        if len(frames) == 1:
            return frames[0]
        return self.combine(pl.concat(frames, how="vertical"), group)

    def combine(self, rows: pl.DataFrame, group: Sequence[str] | None = None) -> pl.DataFrame:
        """Merge partial aggregates in one frame that may repeat a window and key."""
        by = list(group) if group is not None else self.group
        return rows.group_by(by).agg(agg.merge(name).alias(name) for name, agg in self.aggs.items())

    def empty(self) -> pl.DataFrame:
        schema: dict[str, pl.DataType] = {WINDOW_START: pl.Int64(), **{k: pl.String() for k in self.keys}}
        if isinstance(self.window, SessionWindow):
            schema[LAST_TS] = pl.Int64()
        schema.update({name: agg.dtype for name, agg in self.aggs.items()})
        return pl.DataFrame(schema=schema)


@dataclass(frozen=True)
class WindowedFunction(_Keyed):
    """A keyed, windowed analytic over raw events; see the module docstring.

    ``function`` gets the on-time events of windows that just closed (the
    ``columns`` asked for, plus ``window_start`` and, for sessions,
    ``window_end``) and returns result rows, one frame for all of them.
    """

    name: str
    keys: tuple[str, ...]
    window: Window
    columns: tuple[str, ...]
    function: Callable[[pl.DataFrame], pl.DataFrame]
    gather: bool | None = None


    @property
    def needed(self) -> list[str]:
        return list(dict.fromkeys(["ts", *self.keys, *self.columns]))


Analytic = Union[WindowedAggregate, WindowedFunction]
