"""Idle partitions: markers on a quiet partition (an injected clock, no sleeps), and their effect.

A partition that delivers nothing for ``DMP_IDLE_TIMEOUT`` announces it once;
the windowing then closes windows without it. The documented exception: if
it comes back with events of windows that closed meanwhile, those events are
counted in ``quality`` as ``dropped_after_idle`` instead of merged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.aggregate import Sum, WindowedAggregate
from flows.engine.schema import RawBatch
from flows.engine.sources import IdleAwareSource
from flows.engine.sources.idle import IdleAwarePartition
from flows.engine.testing import run, windowed_flow
from flows.engine.windows import TumblingWindow

MINUTE = 60_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Scripted(StatefulSourcePartition):
    """A partition that returns the next scripted batch list on each poll (StopIteration at the end)."""

    def __init__(self, script: list, on_poll: Callable[[], None] | None = None, awake: datetime | None = None) -> None:
        self.script = list(script)
        self.on_poll = on_poll
        self.awake = awake

    def next_batch(self) -> list:
        if self.on_poll is not None:
            self.on_poll()
        if not self.script:
            raise StopIteration
        step = self.script.pop(0)
        return step() if callable(step) else step

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> int:
        return len(self.script)


def marker(items: list) -> bool:
    return len(items) == 1 and isinstance(items[0], RawBatch) and items[0].idle


def test_a_quiet_partition_announces_itself_once_after_the_timeout():
    clock = FakeClock()
    data = [RawBatch("p", [b"{}"])]
    part = IdleAwarePartition("p", Scripted([[], [], [], data, [], []]), timeout_s=5, clock=clock)
    clock.now += 4.9
    assert part.next_batch() == []  # not yet
    clock.now += 0.1
    assert marker(part.next_batch())
    clock.now += 60
    assert part.next_batch() == []  # said once is enough
    assert part.next_batch() == data  # speaking again resets it
    clock.now += 4
    assert part.next_batch() == []
    clock.now += 1
    assert marker(part.next_batch())


def test_the_partition_wakes_up_in_time_to_announce_it():
    clock = FakeClock()
    later = datetime.now(timezone.utc) + timedelta(hours=1)  # e.g. a paced simulator
    part = IdleAwarePartition("p", Scripted([[]], awake=later), timeout_s=5, clock=clock)
    clock.now += 2
    wake = part.next_awake()
    assert wake is not None
    assert 2.5 < (wake - datetime.now(timezone.utc)).total_seconds() <= 3.0
    part.inner.awake = None
    assert part.next_awake() is None  # the wrapped partition wants to be polled at once anyway


def test_snapshots_are_the_wrapped_partitions():
    part = IdleAwarePartition("p", Scripted([[], []]), timeout_s=5, clock=FakeClock())
    assert part.snapshot() == 2


def test_a_zero_timeout_is_refused():
    with pytest.raises(ValueError, match="idle timeout"):
        IdleAwareSource(Shop({}), 0)


# -- in a flow ---------------------------------------------------------------------------


def records(*rows: tuple[int, str]) -> list[bytes]:
    return [
        f'{{"event_type":"view","ts":{ts},"user_id":"u","product_id":"{product}"}}'.encode() for ts, product in rows
    ]


class Shop(FixedPartitionedSource):
    def __init__(self, partitions: dict[str, Scripted]) -> None:
        self.parts = partitions

    def partitions(self) -> list[str]:
        return list(self.parts)

    def list_parts(self) -> list[str]:
        return list(self.parts)

    def build_part(self, step_id: str, for_part: str, resume_state: object) -> Scripted:
        return self.parts[for_part]


SPEC = WindowedAggregate("views", ("product_id",), TumblingWindow(MINUTE), {"views": Sum(pl.col("event_type") == "view")})
A_EVENTS = records((10_000, "x"), (70_000, "x"), (200_000, "x"))  # a's watermark reaches 200s


def run_shop(idle: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Partition a delivers, then waits; b is quiet, then brings an event of window [0, 1m).

    With idleness on, b's data comes only after window [0, 1m) was emitted
    without it (so the order is certain); off, nothing can close before b.
    """
    clock = FakeClock()
    emitted: list = []  # the flow's captured results, filled in once it is built

    def tick() -> None:
        clock.now += 1  # one second of wall clock per poll of b

    def b_returns() -> list:
        waiting = idle and not any(rows.height for _key, rows in emitted[0].results)
        if waiting and clock.now < 10_000:  # (gives up after ~9000 polls: the test then fails)
            b.script.insert(0, b_returns)  # keep waiting (the flow is still running)
            return []
        return [RawBatch("b", records((30_000, "x"), (190_000, "y")), origin="b", last=True)]

    def a_waits() -> list:
        if b.script:
            a.script.insert(0, a_waits)  # stay open (holding nothing back) until b is done
        return []

    a = Scripted([[RawBatch("a", A_EVENTS, origin="a")], a_waits, [RawBatch("a", [], origin="a", last=True)]])
    b = Scripted([[], [], [], b_returns])
    source = IdleAwareSource(Shop({"a": a, "b": b}), 5_000, clock=clock) if idle else Shop({"a": a, "b": b})
    b.on_poll = tick
    flow, captured = windowed_flow(SPEC, source, ["a", "b"], lateness_ms=0, shards=2)
    emitted.append(captured)
    run(flow)
    return captured.frame("results"), captured.frame("quality")


def test_windows_close_on_a_quiet_partition_and_late_comers_are_counted():
    results, quality = run_shop(idle=True)
    assert sorted(results.select("window_start", "product_id", "views").rows()) == [
        (0, "x", 1),  # b's event of this window came after it closed
        (MINUTE, "x", 1),
        (3 * MINUTE, "x", 1),
        (3 * MINUTE, "y", 1),
    ]
    per_window = quality.group_by("window_start").agg(pl.col("events", "dropped_after_idle").sum()).sort("window_start")
    assert per_window.rows() == [(0, 1, 1), (MINUTE, 1, 0), (3 * MINUTE, 2, 0)]


def test_without_idleness_the_quiet_partition_holds_windows_until_it_speaks():
    results, quality = run_shop(idle=False)
    assert (0, "x", 2) in results.select("window_start", "product_id", "views").rows()
    assert quality["dropped_after_idle"].sum() == 0
