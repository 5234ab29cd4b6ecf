"""Idle partitions: tell the flow when a source partition has gone quiet.

In: any of our partitioned sources and ``DMP_IDLE_TIMEOUT``. Out: the same
batches, plus one empty *idle marker* (``RawBatch(idle=True)``) when a
partition has delivered nothing for the timeout, measured on ``clock``
(wall clock by default; tests pass their own). The windowing then leaves
that partition out of the minimum watermark, so windows close on a quiet
stream, until the partition delivers again (any batch clears it).

Markers carry no data and are not part of the partition's position, so
snapshots and resumes are exactly those of the wrapped source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.schema import RawBatch
from flows.engine.sources.wrapper import WrappedPartition, WrappedSource


class IdleAwareSource(WrappedSource):
    """Wraps a partitioned source so quiet partitions announce they are idle."""

    def __init__(self, inner: FixedPartitionedSource, timeout_ms: int, clock: Callable[[], float] = time.monotonic):
        if timeout_ms <= 0:
            msg = f"idle timeout must be > 0 ms; got {timeout_ms}"
            raise ValueError(msg)
        super().__init__(inner)
        self.timeout_s = timeout_ms / 1000
        self.clock = clock

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> IdleAwarePartition:
        inner = self.inner.build_part(step_id, for_part, resume_state)
        return IdleAwarePartition(for_part, inner, self.timeout_s, self.clock)


class IdleAwarePartition(WrappedPartition):
    """One partition's batches, and an idle marker once it has been quiet for the timeout."""

    def __init__(self, name: str, inner: StatefulSourcePartition, timeout_s: float, clock: Callable[[], float]):
        super().__init__(inner)
        self.name = name
        self.timeout_s = timeout_s
        self.clock = clock
        self.heard = clock()
        self.marked = False

    def next_batch(self) -> list[Any]:
        items = super().next_batch()
        now = self.clock()
        if items:
            self.heard, self.marked = now, False
            return items
        if not self.marked and now - self.heard >= self.timeout_s:
            self.marked = True
            return [RawBatch(self.name, [], origin=self.name, idle=True)]
        return []

    def next_awake(self) -> datetime | None:
        inner = self.inner.next_awake()
        if self.marked:
            return inner
        remaining = max(0.0, self.heard + self.timeout_s - self.clock())
        deadline = datetime.now(timezone.utc) + timedelta(seconds=remaining)
        return min(inner, deadline) if inner is not None else None
