"""Recommendations: products bought together, with decay, in bounded state.

In: closed sessions, released in order (each with its ``basket``: the
products carted or purchased in it, at most ``basket_limit`` of them, see
:mod:`flows.engine.analytics.user_sessions`). Out (:data:`RECOMMENDATIONS`):
a product's top K related products, emitted when that list changes.

How it counts:

- Time moves in intervals of event time (``interval_ms``, 1 h by default),
  by each session's last event. When every session ending in an interval
  has closed, the interval is applied, all its sessions at once; intervals
  are applied in order, so the result depends only on the events.
- Per product ``a``: ``n(a)``, the sessions whose basket holds ``a``; per
  pair ``(a, b)``: ``co(a, b)``, the sessions holding both. Both decay
  exponentially in event time with half-life ``half_life_ms``: applying
  interval ``k`` first multiplies everything by ``0.5 ** (elapsed /
  half_life)``, then adds the interval's sessions.
- Score: cosine, ``co(a, b) / sqrt(n(a) * n(b))``. Raw co-occurrence would
  recommend the bestsellers to everyone; cosine divides by how common each
  product is, so a pair that is bought together far more often than its
  products' popularity explains ranks first. Ties: smaller product id first.

Bounded state:

- a session contributes at most ``basket_limit`` products (the smallest
  ids), so at most ``L * (L - 1)`` pairs;
- per product at most ``neighbours`` (C) related products, kept as a
  Misra-Gries heavy-hitters summary: when a product has more, the
  (C+1)-th largest count is subtracted from all its counts and those left
  at or below zero go. Any product pair with a true (decayed) count above
  ``n(a) / (C + 1)`` is kept, counts are underestimated by at most that;
- counts that decay below ``min_weight`` (0.01 of a session) are dropped,
  products included, so a product unseen for ~7 half-lives leaves state.

So state is at most (products seen recently) x (1 + C) rows.

The run summary names the pairs the stream recommended most
(:data:`PAIRS_FINDING`): each pair's scores summed over every list it was
in, either way round, so a pair bought together again and again (its lists
keep changing, and it stays in them) outweighs two products bought once,
together (a score of 1 in one list each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import bytewax.operators as op
import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import LAST_TS
from flows.engine.analytics.registry import Analytic
from flows.engine.analytics.user_sessions import SessionSettings, session_dedup_windows, session_windows
from flows.engine.errors import ConfigError
from flows.engine.findings import Finding, sum_by
from flows.engine.present import as_time
from flows.engine.schema import END_OF_TIME, ClosedWindows
from flows.engine.setting import Group, at_least, duration, integer, positive, setting
from flows.engine.streams import FLOATS, TEXT, TEXTS, TIME, Column, OutputStream
from flows.engine.wiring import Wiring

_PAIRS_SHOWN = 3
_SCORE_UNITS = 1_000_000_000  # scores summed as integers (of 1e-9), so the sums do not depend on their order


def recommended_pairs(rows: pl.DataFrame) -> pl.DataFrame:
    """Recommendations rows -> per pair of products (``product_a`` < ``product_b``): lists it was in, summed score."""
    entries = rows.select("product_id", "related", "scores").explode("related", "scores").drop_nulls("related")
    return entries.group_by(pl.min_horizontal("product_id", "related").alias("product_a"),
                           pl.max_horizontal("product_id", "related").alias("product_b")).agg(
        pl.len().cast(pl.Int64).alias("lists"),
        (pl.col("scores") * _SCORE_UNITS).round().cast(pl.Int64).sum().alias("score_units"))


def _pairs_result(pairs: pl.DataFrame) -> dict[str, Any]:
    top = pairs.sort(["score_units", "product_a", "product_b"], descending=[True, False, False]).head(_PAIRS_SHOWN)
    return {"pairs": pairs.height, "most_recommended": [
        {"products": [a, b], "lists": lists, "mean_score": units / lists / _SCORE_UNITS}
        for a, b, lists, units in top.select("product_a", "product_b", "lists", "score_units").iter_rows()]}


def _pairs_lines(found: dict[str, Any]) -> list[str]:
    top = found["most_recommended"]
    if not top:
        return []
    pairs = [f"{p['products'][0]} + {p['products'][1]} ({p['lists']:,}{' lists' if not i else ''})"
             for i, p in enumerate(top)]
    return [f"pairs {', '.join(pairs)}"]


PAIRS_FINDING = Finding(recommended_pairs, sum_by("product_a", "product_b"), _pairs_result, _pairs_lines)
"""The pairs recommended most: by score summed over every list they were in (ties: the smaller ids)."""

RECOMMENDATIONS = OutputStream(
    "recommendations",
    row="product whose related list changed",
    fields="`product_id`, `as_of` (the end of the interval it reflects), `related` (top K product ids, best "
    "first), `scores` (their cosine scores)",
    key=("product_id", "as_of"),
    columns=(
        Column("product_id", TEXT, nullable=False),
        Column("as_of", TIME, nullable=False),
        Column("related", TEXTS, nullable=False),
        Column("scores", FLOATS, nullable=False),
    ),
    finding=PAIRS_FINDING,
)
_PRODUCTS = {"product_id": pl.String, "n": pl.Float64}
_PAIRS = {"product_id": pl.String, "other": pl.String, "co": pl.Float64}
_EMITTED: dict[str, pl.DataType | type[pl.DataType]] = {"product_id": pl.String, "related": pl.List(pl.String)}


@dataclass(frozen=True)
class RecoSettings(Group):
    """Co-purchase recommendations."""

    reco_half_life_ms: int = setting("DMP_RECO_HALF_LIFE", "7d", duration,
                                     "Half-life of co-purchase counts (event time)", positive)
    reco_interval_ms: int = setting("DMP_RECO_INTERVAL", "1h", duration,
                                    "Recommendations advance by intervals of this much event time", positive)
    reco_top_k: int = setting("DMP_RECO_TOP_K", "10", integer, "Related products listed per product", at_least(1))
    reco_neighbours: int = setting("DMP_RECO_NEIGHBOURS", "50", integer,
                                   "Related products tracked per product (heavy-hitters capacity; >= "
                                   "`DMP_RECO_TOP_K`)", at_least(1))
    min_weight: ClassVar[float] = 0.01  # counts decayed below this (of one session) leave the state

    def check(self) -> None:
        if self.reco_neighbours < self.reco_top_k:
            raise ConfigError(f"DMP_RECO_NEIGHBOURS: must be >= DMP_RECO_TOP_K ({self.reco_top_k})")


@dataclass
class RecoState:
    """Snapshot: counts as of an interval, the last emitted lists, sessions not yet applied."""

    as_of: int | None  # index of the last interval applied
    products: pl.DataFrame
    pairs: pl.DataFrame
    emitted: pl.DataFrame
    waiting: pl.DataFrame | None  # user_id, last_ts, basket


def baskets_pairs(baskets: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Baskets (lists of distinct products) -> per-product and per-pair session counts."""
    items = pl.DataFrame({"basket": baskets}).with_row_index("_s").explode("basket").drop_nulls("basket")
    items = items.rename({"basket": "product_id"})
    singles = items.group_by("product_id").agg(pl.len().cast(pl.Float64).alias("added"))
    pairs = (
        items.join(items.rename({"product_id": "other"}), on="_s")
        .filter(pl.col("product_id") != pl.col("other"))
        .group_by("product_id", "other")
        .agg(pl.len().cast(pl.Float64).alias("added"))
    )
    return singles, pairs


class CoPurchases:
    """Decayed co-occurrence counts and the lists last emitted; see the module docstring."""

    def __init__(self, settings: RecoSettings, held: RecoState | None = None) -> None:
        self.settings = settings
        self.as_of = held.as_of if held is not None else None
        self.products = held.products if held is not None else pl.DataFrame(schema=_PRODUCTS)
        self.pairs = held.pairs if held is not None else pl.DataFrame(schema=_PAIRS)
        self.emitted = held.emitted if held is not None else pl.DataFrame(schema=_EMITTED)

    def decay(self, interval: int) -> float:
        elapsed = 0 if self.as_of is None else interval - self.as_of
        return 0.5 ** (elapsed * self.settings.reco_interval_ms / self.settings.reco_half_life_ms)

    def apply(self, interval: int, baskets: pl.Series) -> pl.DataFrame:
        """Apply one interval's sessions; return the rows of products whose list changed."""
        factor = self.decay(interval)
        self.as_of = interval
        singles, new_pairs = baskets_pairs(baskets)
        floor = self.settings.min_weight
        products = _add(self.products, singles, ["product_id"], "n", factor).filter(pl.col("n") >= floor)
        pairs = _add(self.pairs, new_pairs, ["product_id", "other"], "co", factor).filter(pl.col("co") >= floor)
        pairs = _heavy_hitters(pairs, self.settings.reco_neighbours)
        pairs = pairs.join(products.select("product_id"), on="product_id", how="semi").join(
            products.select(pl.col("product_id").alias("other")), on="other", how="semi"
        )
        self.products, self.pairs = products, pairs
        return self._changes(interval)

    def top(self, products: pl.DataFrame | None = None) -> pl.DataFrame:
        """Each product's related products by score (``product_id``, ``related``, ``scores``)."""
        pairs = self.pairs if products is None else self.pairs.join(products, on="product_id", how="semi")
        n = self.products
        scored = (
            pairs.join(n, on="product_id")
            .join(n.rename({"product_id": "other", "n": "n_other"}), on="other")
            .with_columns((pl.col("co") / (pl.col("n") * pl.col("n_other")).sqrt()).alias("score"))
            .sort(["product_id", "score", "other"], descending=[False, True, False])
        )
        return scored.group_by("product_id", maintain_order=True).agg(
            pl.col("other").head(self.settings.reco_top_k).alias("related"),
            pl.col("score").head(self.settings.reco_top_k).alias("scores"),
        )

    def _changes(self, interval: int) -> pl.DataFrame:
        lists = self.top()
        known = self.emitted.join(lists.select("product_id", pl.col("related").alias("now")), on="product_id",
                                  how="full", coalesce=True)
        gone = known.filter(pl.col("now").is_null() & (pl.col("related").list.len() > 0))["product_id"]
        changed = lists.join(self.emitted, on="product_id", how="left", suffix="_before").filter(
            pl.col("related_before").is_null() | (pl.col("related") != pl.col("related_before"))
        ).drop("related_before")
        vanished = pl.DataFrame({"product_id": gone}).with_columns(
            pl.lit([], pl.List(pl.String)).alias("related"), pl.lit([], pl.List(pl.Float64)).alias("scores")
        )
        out = pl.concat([changed, vanished], how="vertical").sort("product_id")
        self.emitted = lists.select("product_id", "related")
        end = (interval + 1) * self.settings.reco_interval_ms
        return out.select("product_id", as_time(pl.lit(end, pl.Int64)).alias("as_of"), "related", "scores").cast(
            RECOMMENDATIONS.schema
        )

    def held(self, waiting: pl.DataFrame | None) -> RecoState:
        return RecoState(self.as_of, self.products, self.pairs, self.emitted, waiting)


def _add(counts: pl.DataFrame, added: pl.DataFrame, keys: list[str], column: str, factor: float) -> pl.DataFrame:
    """``column * factor + added`` per key (missing on either side counts 0)."""
    merged = counts.join(added, on=keys, how="full", coalesce=True)
    return merged.select(
        *keys, (pl.col(column).fill_null(0.0) * factor + pl.col("added").fill_null(0.0)).alias(column)
    )


def _heavy_hitters(pairs: pl.DataFrame, capacity: int) -> pl.DataFrame:
    """At most ``capacity`` related products each: the Misra-Gries summary's reduction step."""
    sizes = pairs.group_by("product_id").len()
    over = sizes.filter(pl.col("len") > capacity).select("product_id")
    if not over.height:
        return pairs
    crowded = pairs.join(over, on="product_id", how="semi")
    rest = pairs.join(over, on="product_id", how="anti")
    threshold = (
        crowded.sort(["product_id", "co"], descending=[False, True])
        .group_by("product_id", maintain_order=True)
        .agg(pl.col("co").get(capacity).alias("_cut"))
    )
    reduced = (
        crowded.join(threshold, on="product_id")
        .with_columns(pl.col("co") - pl.col("_cut"))
        .filter(pl.col("co") > 0)
        .drop("_cut")
    )
    return pl.concat([rest, reduced], how="vertical")


def ready_intervals(closed_until: int, gap_ms: int, interval_ms: int) -> int:
    """How many intervals are complete: every session ending in them has closed.

    A session ending at ``t`` closes at ``t + 2 * gap``; intervals ``0 ..
    k - 1`` hold the sessions ending before ``k * interval_ms``.
    """
    if closed_until >= END_OF_TIME:
        return END_OF_TIME
    return math.floor((closed_until - 2 * gap_ms + 1) / interval_ms)


class RecommendLogic(StatefulBatchLogic[ClosedWindows, pl.DataFrame, RecoState]):
    """Applies complete intervals of released sessions, in order (one key)."""

    def __init__(self, settings: RecoSettings, gap_ms: int, resume: RecoState | None) -> None:
        self.settings = settings
        self.gap_ms = gap_ms
        self.counts = CoPurchases(settings, resume)
        self.waiting: list[pl.DataFrame] = (
            [resume.waiting] if resume is not None and resume.waiting is not None else []
        )

    def on_batch(self, values: list[ClosedWindows]) -> tuple[list[pl.DataFrame], bool]:
        until = None
        for released in values:
            if released.rows.height:
                self.waiting.append(released.rows.select("user_id", LAST_TS, "basket"))
            until = released.closed_until
        if until is None:
            return [], StatefulBatchLogic.RETAIN
        ready = ready_intervals(until, self.gap_ms, self.settings.reco_interval_ms)
        return self._apply(ready), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[pl.DataFrame], bool]:
        return self._apply(END_OF_TIME), StatefulBatchLogic.RETAIN

    def _apply(self, ready: int) -> list[pl.DataFrame]:
        if not self.waiting:
            return []
        waiting = pl.concat(self.waiting, how="vertical").with_columns(
            (pl.col(LAST_TS) // self.settings.reco_interval_ms).alias("_interval")
        )
        due = waiting.filter(pl.col("_interval") < ready)
        rest = waiting.filter(pl.col("_interval") >= ready).drop("_interval")
        self.waiting = [rest] if rest.height else []
        out = []
        for (interval,), sessions in sorted(due.partition_by("_interval", as_dict=True).items()):
            changed = self.counts.apply(int(interval), sessions["basket"])
            if changed.height:
                out.append(changed)
        return out

    def snapshot(self) -> RecoState:
        waiting = pl.concat(self.waiting, how="vertical") if self.waiting else None
        self.waiting = [waiting] if waiting is not None else []
        return self.counts.held(waiting)


def wire(w: Wiring) -> None:
    """session_windows -> co_purchases -> recommendations."""
    settings = w.group(RecoSettings)
    gap = w.group(SessionSettings).session_gap_ms
    sessions = session_windows(w)
    lists = op.stateful_batch("co_purchases", sessions.results, lambda resume: RecommendLogic(settings, gap, resume))
    w.write(RECOMMENDATIONS, lists)


ANALYTICS = (
    Analytic(
        "recommendations", 40, "per product: the products bought with it in the same sessions (cosine, decayed)",
        streams=(RECOMMENDATIONS,), wire=wire, settings=RecoSettings, dedup_windows=session_dedup_windows,
    ),
)
