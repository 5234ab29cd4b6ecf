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
from typing import Any, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.schema import RawBatch


class IdleAwareSource(FixedPartitionedSource):
    """Wraps a partitioned source so quiet partitions announce they are idle."""

    def __init__(self, inner: FixedPartitionedSource, timeout_ms: int, clock: Callable[[], float] = time.monotonic):
        if timeout_ms <= 0:
            msg = f"idle timeout must be > 0 ms; got {timeout_ms}"
            raise ValueError(msg)
        self.inner = inner
        self.timeout_s = timeout_ms / 1000
        self.clock = clock

    def partitions(self) -> list[str]:
        return self.inner.partitions()  # type: ignore[attr-defined]

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> IdleAwarePartition:
        inner = self.inner.build_part(step_id, for_part, resume_state)
        return IdleAwarePartition(for_part, inner, self.timeout_s, self.clock)


class IdleAwarePartition(StatefulSourcePartition[Any, Any]):
    """One partition's batches, and an idle marker once it has been quiet for the timeout."""

    def __init__(self, name: str, inner: StatefulSourcePartition, timeout_s: float, clock: Callable[[], float]):
        self.name = name
        self.inner = inner
        self.timeout_s = timeout_s
        self.clock = clock
        self.heard = clock()
        self.marked = False

    def next_batch(self) -> list[Any]:
        # StopIteration: the partition ended. (Bytewax types batches as Iterable; our partitions return lists.)
        items = cast(list[Any], self.inner.next_batch())
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

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()
