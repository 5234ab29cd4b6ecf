"""Event-time sanity: which events may move a partition's watermark, and which are quarantined.

A watermark trusts the data: one event an hour in the future would make
every later event of its partition late, a year-2100 event all of them.
So before stamping, each partition's events are screened, in partition
order (the outcome depends only on the events, never on batching):

- an event before ``earliest_ms`` (``DMP_EARLIEST_EVENT_TIME``) is quarantined;
- when running live, an event more than ``clock_ms`` ahead of the wall clock
  (``DMP_CLOCK_TOLERANCE``) is quarantined;
- an event more than ``tolerance_ms`` ahead of the newest accepted event of
  its partition (``DMP_FUTURE_TOLERANCE``; a partition's first event too) is
  a *jump*. It is held until the next event of the partition decides: if
  that one is no more than ``tolerance_ms`` before it, the stream really
  moved on (a quiet night, a sparse shop) and the jump is accepted, just
  before it; otherwise the jump was a lone event from the future and it is
  quarantined, never touching the watermark. A jump still held when its
  partition ends is accepted (nothing speaks against it).

Quarantined events keep their place in the partition's numbering (``seq``)
and go to the ``quarantine`` stream with the reason. Clean batches (no
jump, nothing out of range: the usual case) cost two Polars operations.

>>> rules = Screen(tolerance_ms=1_000)
>>> events = pl.DataFrame({"ts": [0, 500, 99_000, 900, 1_200], "seq": [0, 1, 2, 3, 4]})
>>> accepted, quarantined, state = rules.screen(events, ScreenState(), ended=False)
>>> accepted["ts"].to_list(), quarantined["ts"].to_list(), state.newest
([0, 500, 900, 1200], [99000], 1200)
>>> quarantined["reason"].item()
'jumped more than 1s ahead of its partition (newest event at 500); the next event (900) did not follow'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

REASON = "reason"
_LOOP_AFTER = 32  # jumps in one batch before the rest is screened event by event (bounded work)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass
class ScreenState:
    """A partition's screening state: its newest accepted event time, and a jump waiting for its successor."""

    newest: int | None = None
    held: pl.DataFrame | None = None
    jumps: tuple[int, ...] = ()
    """The ``seq`` of every jump the last batch accepted (to place dead letters between a jump and its
    follower as if the jump had not been seen yet, which it had not)."""


@dataclass(frozen=True)
class Screen:
    """The event-time rules; see the module docstring. ``None`` turns a rule off."""

    tolerance_ms: int | None = 30 * 60_000
    earliest_ms: int | None = None
    clock_ms: int | None = None
    clock: Callable[[], float] = time.time

    def screen(self, events: pl.DataFrame, state: ScreenState, *, ended: bool
               ) -> tuple[pl.DataFrame, pl.DataFrame, ScreenState]:
        """(accepted events in partition order, quarantined events with a ``reason``, the new state).

        ``events`` are one batch of one partition (any columns, with ``ts``);
        a jump held from the previous batch comes first. ``ended``: the
        partition has ended (a held jump is accepted).
        """
        quarantined: list[pl.DataFrame] = []
        events = self._out_of_range(events, quarantined)
        if state.held is not None:
            events = pl.concat([state.held, events], how="vertical_relaxed")
        if self.tolerance_ms is None or not events.height:
            newest = _max(state.newest, events)
            return events, _joined(quarantined, events), ScreenState(newest, None)
        jumps: list[int] = []
        accepted, held, newest = self._jumps(events, state.newest, quarantined, jumps)
        if held is not None and ended:
            accepted = pl.concat([accepted, held], how="vertical_relaxed")
            newest, held = _max(newest, held), None
        seqs = tuple(int(s) for s in events["seq"].gather(jumps).to_list()) if jumps and "seq" in events.columns else ()
        return accepted, _joined(quarantined, events), ScreenState(newest, held, seqs)

    def _out_of_range(self, events: pl.DataFrame, quarantined: list[pl.DataFrame]) -> pl.DataFrame:
        limits = []
        if self.earliest_ms is not None:
            limits.append((pl.col("ts") < self.earliest_ms, "before DMP_EARLIEST_EVENT_TIME"))
        if self.clock_ms is not None:
            now = int(self.clock() * 1000)
            limits.append((pl.col("ts") > now + self.clock_ms,
                           f"more than {_duration(self.clock_ms)} ahead of the wall clock"))
        if not limits or not events.height:
            return events
        reason: Then | ChainedThen = pl.when(limits[0][0]).then(pl.lit(limits[0][1]))
        for condition, text in limits[1:]:
            reason = reason.when(condition).then(pl.lit(text))
        flagged = events.with_columns(reason.alias(REASON))
        bad = flagged[REASON].is_not_null()
        if not bad.any():
            return events
        quarantined.append(flagged.filter(bad))
        return events.filter(~bad)

    def _jumps(self, events: pl.DataFrame, newest: int | None, quarantined: list[pl.DataFrame], jumps: list[int]
               ) -> tuple[pl.DataFrame, pl.DataFrame | None, int | None]:
        """Accept, hold or quarantine the jumps of ``events`` (see the module docstring)."""
        tolerance = self.tolerance_ms
        assert tolerance is not None
        ts = events["ts"].to_numpy()
        keep = np.ones(len(ts), dtype=bool)
        reasons: dict[int, str] = {}
        held: int | None = None
        i, rounds = 0, 0
        while i < len(ts):
            j = self._first_jump(ts, i, newest) if rounds < _LOOP_AFTER else self._first_jump_slowly(ts, i, newest)
            rounds += 1
            if j is None:
                newest = _max_of(newest, ts[i:])
                break
            if j > i:
                newest = _max_of(newest, ts[i:j])
            if j == len(ts) - 1:  # its successor is in a later batch
                held = j
                break
            follower = int(ts[j + 1])
            if follower >= int(ts[j]) - tolerance:
                newest = int(ts[j]) if newest is None else max(newest, int(ts[j]))
                jumps.append(j)
            else:
                keep[j] = False
                before = "its first event" if newest is None else f"newest event at {newest}"
                reasons[j] = (f"jumped more than {_duration(tolerance)} ahead of its partition ({before}); "
                              f"the next event ({follower}) did not follow")
            i = j + 1
        if held is not None:
            keep[held] = False
        if reasons:
            rows = sorted(reasons)
            quarantined.append(events[rows].with_columns(pl.Series(REASON, [reasons[r] for r in rows])))
        accepted = events.filter(pl.Series(keep)) if not keep.all() else events
        return accepted, (events[held:held + 1] if held is not None else None), newest

    def _first_jump(self, ts: np.ndarray, start: int, newest: int | None) -> int | None:
        """Index of the first event from ``start`` more than the tolerance ahead of everything before it."""
        rest = ts[start:]
        if newest is None:
            return start  # a partition's first event waits for its successor
        before = np.maximum.accumulate(np.concatenate(([newest], rest[:-1])))
        jumps = np.flatnonzero(rest > before + self.tolerance_ms)
        return start + int(jumps[0]) if jumps.size else None

    def _first_jump_slowly(self, ts: np.ndarray, start: int, newest: int | None) -> int | None:
        """:meth:`_first_jump` without a pass over the whole rest: for batches full of jumps."""
        tolerance = self.tolerance_ms
        assert tolerance is not None
        for index in range(start, len(ts)):
            value = int(ts[index])
            if newest is None or value > newest + tolerance:
                return index
            newest = max(newest, value)
        return None


def _max(newest: int | None, events: pl.DataFrame) -> int | None:
    if not events.height:
        return newest
    return _max_of(newest, events["ts"].to_numpy())


def _max_of(newest: int | None, values: np.ndarray) -> int | None:
    if not len(values):
        return newest
    top = int(np.max(values))
    return top if newest is None else max(newest, top)


def _joined(quarantined: list[pl.DataFrame], events: pl.DataFrame) -> pl.DataFrame:
    if not quarantined:
        return events.clear().with_columns(pl.lit(None, pl.String).alias(REASON))
    return pl.concat(quarantined, how="vertical_relaxed")
