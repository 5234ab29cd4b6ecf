"""Marketing triggers: whom to reach out to now, at most once per cooldown.

In: closed sessions (released in order, see
:mod:`flows.engine.analytics.user_sessions`) and each user's purchase
revenue over a sliding event-time window. Out: trigger rows
(:data:`TRIGGERS`):

- ``cart_abandoned``: a session closed with something left in the cart (a
  cart value above 0: added minus removed) and no purchase; at the session's last event; ``value`` is the cart value
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
the last cooldown, nothing older. The run summary counts the triggers of
each type and adds up their values.

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
from typing import Any

import bytewax.operators as op
import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import LAST_TS, ExactSum, WindowedAggregate
from flows.engine.analytics.registry import Analytic
from flows.engine.analytics.user_sessions import SessionSettings, session_dedup_windows, session_windows
from flows.engine.errors import ConfigError
from flows.engine.findings import Finding, amount, micros, sum_by
from flows.engine.money import line_micros, money
from flows.engine.present import as_time
from flows.engine.setting import Group, at_least, duration, number, positive, setting, whole_seconds
from flows.engine.streams import MONEY, TEXT, TEXTS, TIME_MS, Column, OutputStream
from flows.engine.windows import WINDOW_START, SlidingWindow
from flows.engine.wiring import Wiring

CART_ABANDONED = "cart_abandoned"
HIGH_VALUE = "high_value_customer"

# Typed: dtype classes and an instance (the List) would otherwise infer as dict[str, object].
_CANDIDATE_DTYPES: dict[str, pl.DataType | type[pl.DataType]] = (
    {
        "user_id": pl.String,
        "trigger_type": pl.String,
        "at": pl.Int64,
        "value_micros": pl.Int128,
        "since": pl.Int64,
        "products": pl.List(pl.String),
    }
)
CANDIDATE_SCHEMA = pl.Schema(_CANDIDATE_DTYPES)


def _fired(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.group_by("trigger_type").agg(pl.len().cast(pl.Int64).alias("fired"),
                                             micros("value").sum().alias("value_micros"))


def _fired_result(fired: pl.DataFrame) -> dict[str, Any]:
    ordered = fired.sort(["fired", "trigger_type"], descending=[True, False])
    return {"fired": int(fired["fired"].sum()), "per_type": {
        kind: {"fired": n, "value": amount(value)} for kind, n, value in ordered.iter_rows()}}


def _fired_lines(found: dict[str, Any]) -> list[str]:
    if not found["fired"]:
        return ["none fired"]
    return [", ".join(f"{kind} {t['fired']:,} worth {t['value']:,.2f}" for kind, t in found["per_type"].items())]


FIRED = Finding(_fired, sum_by("trigger_type"), _fired_result, _fired_lines)
"""Triggers fired per type, and their values added up (cart values; revenue in the spend window)."""

TRIGGERS = OutputStream(
    "triggers",
    row="marketing trigger that fired",
    fields="`trigger_id` (stable hash of type, user and time), `trigger_type` (`cart_abandoned`, "
    "`high_value_customer`), `user_id`, `triggered_at` (event time: the session's last event, or the spend "
    "window's end), `value` (cart value, or revenue in the window), `since` (session or window start), "
    "`products` (carted products; null for `high_value_customer`)",
    key=("trigger_id",),
    columns=(
        Column("trigger_id", TEXT, nullable=False),
        Column("trigger_type", TEXT, nullable=False),
        Column("user_id", TEXT, nullable=False),
        Column("triggered_at", TIME_MS, nullable=False),
        Column("value", MONEY, nullable=False),
        Column("since", TIME_MS, nullable=False),
        Column("products", TEXTS),
    ),
    finding=FIRED,
)


def abandoned_carts(sessions: pl.DataFrame) -> pl.DataFrame:
    """Closed sessions (engine form) -> ``cart_abandoned`` candidates."""
    abandoned = sessions.filter((pl.col("cart_micros") > 0) & (pl.col("purchases") == 0))
    return abandoned.select(
        pl.col("user_id"),
        pl.lit(CART_ABANDONED).alias("trigger_type"),
        pl.col(LAST_TS).alias("at"),
        pl.col("cart_micros").clip(lower_bound=0).alias("value_micros"),
        pl.col(WINDOW_START).alias("since"),
        pl.col("carted").alias("products"),
    ).cast(CANDIDATE_SCHEMA)


def spend_aggregate(window: SlidingWindow) -> WindowedAggregate:
    """Purchase revenue per user and sliding window (feed it purchases only)."""
    value = line_micros()
    return WindowedAggregate("spend", ("user_id",), window, {"revenue_micros": ExactSum(value)})


def big_spenders(rows: pl.DataFrame, window: SlidingWindow, threshold_micros: int) -> pl.DataFrame:
    """Closed spend windows -> ``high_value_customer`` candidates (revenue above the threshold)."""
    return rows.filter(pl.col("revenue_micros") > threshold_micros).select(
        pl.col("user_id"),
        pl.lit(HIGH_VALUE).alias("trigger_type"),
        (pl.col(WINDOW_START) + window.size_ms).alias("at"),
        pl.col("revenue_micros").alias("value_micros"),
        pl.col(WINDOW_START).alias("since"),
        pl.lit(None, pl.List(pl.String)).alias("products"),
    ).cast(CANDIDATE_SCHEMA)


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
        as_time("at").alias("triggered_at"),
        money("value_micros").alias("value"),
        as_time("since").alias("since"),
        "products",
    ).cast(TRIGGERS.schema)



@dataclass(frozen=True)
class TriggerSettings(Group):
    """Marketing triggers."""

    high_value_threshold: float = setting("DMP_HIGH_VALUE_THRESHOLD", "3000", number,
                                          "`high_value_customer` when a user's purchases in the spend window "
                                          "exceed this", at_least(0))
    high_value_window_ms: int = setting("DMP_HIGH_VALUE_WINDOW", "24h", duration,
                                        "Length of the sliding spend window", positive, whole_seconds)
    high_value_slide_ms: int = setting("DMP_HIGH_VALUE_SLIDE", "1h", duration,
                                       "A spend window starts this often (must divide `DMP_HIGH_VALUE_WINDOW`)",
                                       positive, whole_seconds)
    trigger_cooldown_ms: int = setting("DMP_TRIGGER_COOLDOWN", "24h", duration,
                                       "At most one trigger per user and type within this much event time",
                                       at_least(0))

    def check(self) -> None:
        if self.high_value_window_ms % self.high_value_slide_ms:
            raise ConfigError(f"DMP_HIGH_VALUE_SLIDE: must divide DMP_HIGH_VALUE_WINDOW "
                              f"({self.high_value_window_ms} ms); got {self.high_value_slide_ms} ms")

    @property
    def spend_window(self) -> SlidingWindow:
        return SlidingWindow(self.high_value_window_ms, self.high_value_slide_ms)


def wire(w: Wiring) -> None:
    """Abandoned carts from session_windows, big spenders from spend_windows -> cooldown -> triggers."""
    settings = w.group(TriggerSettings)
    gap = w.group(SessionSettings).session_gap_ms
    sessions = session_windows(w)
    carts = op.map("cart_candidates", sessions.results, lambda kv: (CART_ABANDONED, Candidates(
        abandoned_carts(kv[1].rows), kv[1].closed_until - 2 * gap)))
    spend_window = settings.spend_window
    spend = w.window("spend", spend_aggregate(spend_window), only=pl.col("event_type") == "purchase")
    threshold = round(settings.high_value_threshold * 1_000_000)
    spenders = op.map("spend_candidates", spend.results, lambda kv: (HIGH_VALUE, Candidates(
        big_spenders(kv[1].rows, spend_window, threshold), kv[1].closed_until)))
    candidates = op.merge("candidates", carts, spenders)
    cooldown = settings.trigger_cooldown_ms
    fired = op.stateful_batch("cooldown", candidates, lambda resume: CooldownLogic(cooldown, resume))
    w.write(TRIGGERS, fired)


ANALYTICS = (
    Analytic(
        "triggers", 50, "marketing triggers: abandoned carts and high-value customers, at most one per cooldown",
        streams=(TRIGGERS,), wire=wire, settings=TriggerSettings,
        # Only the sessions count: the 24 h spend windows take purchases only and would make the horizon huge.
        dedup_windows=session_dedup_windows,
    ),
)
