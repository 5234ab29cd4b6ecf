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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import polars as pl

from flows.engine.windows import LAST_TS, WINDOW_START, TumblingWindow, Window  # noqa: F401 - doctest

EVENTS = "events"

AggKind = Literal["sum", "exact_sum", "count", "min", "max", "distinct"]


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
        if self.kind == "exact_sum":
            return self.expr.cast(pl.Int128).sum()  # type: ignore[union-attr]
        reduced = getattr(self.expr, self.kind)()
        # Sums of booleans and small ints become Int64, so partials concatenate.
        return reduced.cast(pl.Int64) if self.kind == "sum" else reduced

    def merge(self, column: str) -> pl.Expr:
        """Reduce a group of partial results in ``column``."""
        if self.kind == "distinct":
            return self._bounded(pl.col(column).explode().drop_nulls().unique().sort())
        return getattr(pl.col(column), "sum" if self.kind in ("count", "exact_sum") else self.kind)()

    def _bounded(self, values: pl.Expr) -> pl.Expr:
        # The smallest n of a union are the smallest n of the parts' smallest n: still mergeable.
        return values.head(self.limit) if self.limit is not None else values

    @property
    def dtype(self) -> pl.DataType:
        if self.kind == "distinct":
            return pl.List(pl.String)
        return pl.Int128() if self.kind == "exact_sum" else pl.Int64()


def Sum(expr: pl.Expr) -> Agg:  # noqa: N802 - reads as a declaration
    """Sum of a per-event value (a boolean counts)."""
    return Agg(expr, "sum")


def ExactSum(expr: pl.Expr) -> Agg:  # noqa: N802
    """Sum in 128-bit integers (money in micro-units): no sum of bounded values can overflow it."""
    return Agg(expr, "exact_sum")


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

    name: str
    keys: tuple[str, ...]
    window: Window
    gather: bool | None

    @property
    def gathers(self) -> bool:
        return self.gather if self.gather is not None else self.window.gathers_by_default

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
    measures: Mapping[str, Agg | pl.Expr]
    gather: bool | None = None
    # Sessions' rows carry their last event's time, which orders them.
    results_carry_last_ts: ClassVar[Literal[True]] = True

    @functools.cached_property
    def aggs(self) -> dict[str, Agg]:
        aggs = {name: m if isinstance(m, Agg) else Sum(m) for name, m in self.measures.items()}
        aggs[EVENTS] = Count()
        return aggs

    def partial(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Reduce each measure of ``rows`` (events with their window) per window and key."""
        return rows.group_by(self.group).agg(agg.partial().alias(name) for name, agg in self.aggs.items())

    def combine(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Merge partial aggregates in one frame that may repeat a window and key."""
        return rows.group_by(self.group).agg(agg.merge(name).alias(name) for name, agg in self.aggs.items())

    def empty(self) -> pl.DataFrame:
        return self._empty.clear()

    @functools.cached_property
    def _empty(self) -> pl.DataFrame:
        schema: dict[str, pl.DataType] = {WINDOW_START: pl.Int64(), **{k: pl.String() for k in self.keys}}
        schema.update({column: pl.Int64() for column in self.window.held_columns})
        schema.update({name: agg.dtype for name, agg in self.aggs.items()})
        return pl.DataFrame(schema=schema)

    # -- what the engine asks of an analytic ------------------------------------------
    def reduce(self, on_time: pl.DataFrame) -> pl.DataFrame:
        """One batch's on-time rows -> what its shards hold: partial aggregates."""
        return self.window.reduce(self, on_time)

    def compact(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows of fixed windows held in state, merged per window and key."""
        return self.combine(rows)

    def merge_sessions(self, touched: list[pl.DataFrame]) -> pl.DataFrame:
        """Open partial sessions of some keys, with new ones, merged into sessions."""
        from flows.engine.sessions import merge_sessions

        return merge_sessions(touched, self)

    def results(self, done: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Closed rows -> (result rows, on-time counts per window if separate; aggregates count in their rows)."""
        return self.window.with_end(done if done is not None else self.empty()), None

    def counts(self, rows: pl.DataFrame) -> pl.DataFrame:
        """On-time events per window of some held rows."""
        return rows.group_by(WINDOW_START).agg(pl.col(EVENTS).sum())

    def emitted_counts(self, done: pl.DataFrame) -> pl.DataFrame | None:
        """On-time events per window of complete result rows (their ``events`` column)."""
        return self.counts(done)


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
    results_carry_last_ts: ClassVar[Literal[False]] = False

    @property
    def needed(self) -> list[str]:
        return list(dict.fromkeys(["ts", *self.keys, *self.columns]))

    # -- what the engine asks of an analytic ------------------------------------------
    def reduce(self, on_time: pl.DataFrame) -> pl.DataFrame:
        """One batch's on-time rows -> what its shards hold: the columns the function needs."""
        return on_time.select(self.window.raw_columns(self.needed))

    def compact(self, rows: pl.DataFrame) -> pl.DataFrame:
        return rows  # raw events: nothing to merge

    def merge_sessions(self, touched: list[pl.DataFrame]) -> pl.DataFrame:
        """Raw events of some keys numbered into sessions again."""
        from flows.engine.sessions import sessions_of_events

        events = pl.concat([frame.drop(WINDOW_START, LAST_TS, strict=False) for frame in touched], how="vertical")
        return sessions_of_events(events, self.keys, self.window.gap_ms)  # type: ignore[union-attr]

    def results(self, done: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        if done is None:
            return pl.DataFrame(), None
        counts = self.counts(done) if self.gathers else None
        return self.function(self.window.with_end(done)), counts

    def counts(self, rows: pl.DataFrame) -> pl.DataFrame:
        return rows.group_by(WINDOW_START).agg(pl.len().cast(pl.Int64).alias(EVENTS))

    def emitted_counts(self, done: pl.DataFrame) -> pl.DataFrame | None:
        return None  # a function's on-time counts came from the shards, with its raw rows


WindowSpec = WindowedAggregate | WindowedFunction
