"""Marketing triggers: whom to reach out to now, at most once per cooldown.

In: closed sessions (released in order, see
:mod:`flows.engine.analytics.user_sessions`) and each user's purchase
revenue over a sliding event-time window. Out: trigger rows
(:data:`OUTPUT_SCHEMA`):

- ``cart_abandoned``: a session closed with products added to the cart and
  no purchase; at the session's last event; ``value`` is the cart value
  (added minus removed), ``products`` the carted products, ``since`` the
  session start.
- ``high_value_customer``: the user's purchase revenue over a sliding
  window (24 h long by default, one every hour) exceeds the threshold; at
  the window's end; ``value`` is that revenue, ``since`` the window start.

A trigger fires only when the user had no trigger of the same type in the
cooldown before it (event time, ``at - last >= cooldown``); others are
dropped. Candidates reach the cooldown in event-time order whatever the
batching, so what fires is deterministic. ``trigger_id`` is a hash of (type,
user, time): a sender that remembers ids never sends one twice, even after a
replay. The cooldown state holds one row per (user, type) that fired within
the last cooldown, nothing older.

>>> cooldown = Cooldown(3_600_000)
>>> candidates = pl.DataFrame({"user_id": ["u", "u", "u"], "trigger_type": ["cart_abandoned"] * 3,
...     "at": [0, 1_800_000, 3_600_000], "value_micros": [1_000_000] * 3, "since": [0, 0, 0],
...     "products": [["p"], ["p"], ["p"]]})
>>> cooldown.fire(candidates, safe_before=0)["at"].to_list()
[0, 3600000]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import LAST_TS, Sum, WindowedAggregate
from flows.engine.money import line_micros, money
from flows.engine.present import iso
from flows.engine.windows import WINDOW_START, SlidingWindow

CART_ABANDONED = "cart_abandoned"
HIGH_VALUE = "high_value_customer"

CANDIDATE_SCHEMA = pl.Schema(
    {
        "user_id": pl.String,
        "trigger_type": pl.String,
        "at": pl.Int64,
        "value_micros": pl.Int64,
        "since": pl.Int64,
        "products": pl.List(pl.String),
    }
)
OUTPUT_SCHEMA = pl.Schema(
    {
        "trigger_id": pl.String,
        "trigger_type": pl.String,
        "user_id": pl.String,
        "triggered_at": pl.String,
        "value": pl.Float64,
        "since": pl.String,
        "products": pl.List(pl.String),
    }
)


def abandoned_carts(sessions: pl.DataFrame) -> pl.DataFrame:
    """Closed sessions (engine form) -> ``cart_abandoned`` candidates."""
    abandoned = sessions.filter((pl.col("carts") > 0) & (pl.col("purchases") == 0))
    return abandoned.select(
        pl.col("user_id"),
        pl.lit(CART_ABANDONED).alias("trigger_type"),
        pl.col(LAST_TS).alias("at"),
        pl.col("cart_micros").clip(lower_bound=0).alias("value_micros"),
        pl.col(WINDOW_START).alias("since"),
        pl.col("carted").alias("products"),
    ).cast(CANDIDATE_SCHEMA)  # type: ignore[arg-type]


def spend_aggregate(window: SlidingWindow) -> WindowedAggregate:
    """Purchase revenue per user and sliding window (feed it purchases only)."""
    value = line_micros()
    return WindowedAggregate("spend", ("user_id",), window, {"revenue_micros": Sum(value)})


def big_spenders(rows: pl.DataFrame, window: SlidingWindow, threshold_micros: int) -> pl.DataFrame:
    """Closed spend windows -> ``high_value_customer`` candidates (revenue above the threshold)."""
    return rows.filter(pl.col("revenue_micros") > threshold_micros).select(
        pl.col("user_id"),
        pl.lit(HIGH_VALUE).alias("trigger_type"),
        (pl.col(WINDOW_START) + window.size_ms).alias("at"),
        pl.col("revenue_micros").alias("value_micros"),
        pl.col(WINDOW_START).alias("since"),
        pl.lit(None, pl.List(pl.String)).alias("products"),
    ).cast(CANDIDATE_SCHEMA)  # type: ignore[arg-type]


def trigger_id(trigger_type: str, user_id: str, at_ms: int) -> str:
    """Stable id of a trigger: the same (type, user, time) always gives the same id."""
    return hashlib.blake2b(f"{trigger_type}|{user_id}|{at_ms}".encode(), digest_size=10).hexdigest()


class Cooldown:
    """Last fired time per (user, type); decides which candidates fire."""

    def __init__(self, cooldown_ms: int, held: pl.DataFrame | None = None) -> None:
        self.cooldown_ms = cooldown_ms
        self.last: dict[tuple[str, str], int] = {}
        if held is not None:
            self.last = {(u, t): at for u, t, at in held.iter_rows()}

    def fire(self, candidates: pl.DataFrame, safe_before: int) -> pl.DataFrame:
        """The candidates that fire, in order; every later candidate is at or after ``safe_before``.

        Candidates are few (a trigger's worth of rows, not events), so this is
        a plain loop in (time, user) order.
        """
        fired = []
        ordered = candidates.with_row_index("_row").sort("at", "user_id", "trigger_type", "_row")
        for row, user, kind, at in ordered.select("_row", "user_id", "trigger_type", "at").iter_rows():
            last = self.last.get((user, kind))
            if last is None or at - last >= self.cooldown_ms:
                self.last[(user, kind)] = at
                fired.append(row)
        # Entries that can no longer hold anything back leave the state.
        horizon = safe_before - self.cooldown_ms
        self.last = {key: at for key, at in self.last.items() if at > horizon}
        return ordered.filter(pl.col("_row").is_in(fired)).drop("_row")

    def held(self) -> pl.DataFrame:
        rows = [(user, kind, at) for (user, kind), at in self.last.items()]
        return pl.DataFrame(rows, schema={"user_id": pl.String, "trigger_type": pl.String, "at": pl.Int64},
                            orient="row")


@dataclass(frozen=True)
class Candidates:
    """Trigger candidates in event-time order, and how far that order is final."""

    rows: pl.DataFrame  # CANDIDATE_SCHEMA
    safe_before: int  # every later candidate has ``at`` >= this


class CooldownLogic(StatefulBatchLogic[Candidates, pl.DataFrame, pl.DataFrame]):
    """The cooldown as a Bytewax stateful step (one key per trigger source)."""

    def __init__(self, cooldown_ms: int, resume: pl.DataFrame | None) -> None:
        self.cooldown = Cooldown(cooldown_ms, resume)

    def on_batch(self, values: list[Candidates]) -> tuple[list[pl.DataFrame], bool]:
        out = []
        for candidates in values:
            fired = self.cooldown.fire(candidates.rows, candidates.safe_before)
            if fired.height:
                out.append(trigger_rows(fired))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> pl.DataFrame:
        return self.cooldown.held()


def trigger_rows(fired: pl.DataFrame) -> pl.DataFrame:
    """Fired candidates -> ``triggers`` output rows."""
    ids = [trigger_id(kind, user, at) for kind, user, at in fired.select("trigger_type", "user_id", "at").iter_rows()]
    return fired.select(
        pl.Series("trigger_id", ids, dtype=pl.String),
        "trigger_type",
        "user_id",
        iso("at", millis=True).alias("triggered_at"),
        money("value_micros").alias("value"),
        iso("since", millis=True).alias("since"),
        "products",
    ).cast(OUTPUT_SCHEMA)  # type: ignore[arg-type]

