"""The base of our source wrappers (read-ahead, idle, interruptible): everything passed to the wrapped source.

A wrapper overrides only what it changes; partitions, parts, wake-ups,
snapshots and closing are the wrapped source's own, so wrapping never
changes a position or a resume.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class WrappedSource(FixedPartitionedSource):
    """A partitioned source around ``inner``: its partitions (our sources name them) and parts."""

    def __init__(self, inner: FixedPartitionedSource):
        self.inner = inner

    def partitions(self) -> list[str]:
        return self.inner.partitions()  # type: ignore[attr-defined]

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()


class WrappedPartition(StatefulSourcePartition[Any, Any]):
    """A source partition around ``inner``: its batches (as a list), wake-ups, snapshots and close."""

    def __init__(self, inner: StatefulSourcePartition):
        self.inner = inner

    def next_batch(self) -> list[Any]:
        # StopIteration: the partition ended. (Bytewax types batches as Iterable; our partitions return lists.)
        return list(self.inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()
