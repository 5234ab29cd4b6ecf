"""Assigning windows and deciding lateness, per window, for every window kind.

In: stamped events (``EVENT_SCHEMA`` columns plus ``watermark``, the
watermark each met). Out: the on-time rows an analytic aggregates, and the
late events with the windows they missed.

- Fixed windows (tumbling, sliding): an event belongs to every window that
  covers it and counts in each one whose end is > the watermark it met; a
  window it missed (end <= watermark) is named in its late record, so one
  event can be on time for some windows and late for others, as Flink does.
- Sessions: an event at ``t`` is late when ``t + gap`` <= the watermark it
  met (the session it would start has already ended).

Late records carry ``window_start`` / ``window_end`` (the first window missed)
and ``missed`` (the starts of every window missed).
"""

from __future__ import annotations

import polars as pl

from flows.engine.windows import WINDOW_END, WINDOW_START, SessionWindow, SlidingWindow, Window

MISSED = "missed"
_EVENT = "_event"


def split_late(events: pl.DataFrame, window: Window) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stamped events -> (on-time rows with ``window_start``, late events).

    For fixed windows an on-time row is an (event, window) pair, so a
    sliding window's events appear once per window they count in. For
    sessions the on-time rows are the events themselves.
    """
    if isinstance(window, SessionWindow):
        return _sessions(events, window)
    if isinstance(window, SlidingWindow):
        return _sliding(events, window)
    assigned = window.assign(events)
    late = (pl.col(WINDOW_START) + window.size_ms) <= pl.col("watermark")
    mask = assigned.select(late.alias("late"))["late"]
    if not mask.any():
        return assigned, _no_late(assigned)
    late_events = assigned[mask.arg_true()].with_columns(
        (pl.col(WINDOW_START) + window.size_ms).alias(WINDOW_END),
        pl.concat_list(WINDOW_START).alias(MISSED),
    )
    return assigned[(~mask).arg_true()], late_events


def _sliding(events: pl.DataFrame, window: SlidingWindow) -> pl.DataFrame:
    rows = window.assign(events.with_row_index(_EVENT))
    mask = rows.select(((pl.col(WINDOW_START) + window.size_ms) <= pl.col("watermark")).alias("late"))["late"]
    if not mask.any():
        return rows.drop(_EVENT), _no_late(rows.drop(_EVENT))
    missed = (
        rows[mask.arg_true()]
        .group_by(_EVENT, maintain_order=True)
        .agg(pl.col(WINDOW_START).sort().alias(MISSED))
    )
    late_events = (
        events.with_row_index(_EVENT)
        .join(missed, on=_EVENT, how="inner", maintain_order="right")
        .with_columns(
            pl.col(MISSED).list.first().alias(WINDOW_START),
            (pl.col(MISSED).list.first() + window.size_ms).alias(WINDOW_END),
        )
        .drop(_EVENT)
    )
    return rows[(~mask).arg_true()].drop(_EVENT), late_events


def _sessions(events: pl.DataFrame, window: SessionWindow) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = events.with_columns(pl.col("ts").alias(WINDOW_START))
    mask = rows.select(((pl.col("ts") + window.gap_ms) <= pl.col("watermark")).alias("late"))["late"]
    if not mask.any():
        return rows, _no_late(rows)
    late_events = rows[mask.arg_true()].with_columns(
        (pl.col("ts") + window.gap_ms).alias(WINDOW_END),
        pl.concat_list(WINDOW_START).alias(MISSED),
    )
    return rows[(~mask).arg_true()], late_events


def _no_late(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.clear().with_columns(
        pl.lit(None, pl.Int64).alias(WINDOW_END), pl.lit(None, pl.List(pl.Int64)).alias(MISSED)
    )
