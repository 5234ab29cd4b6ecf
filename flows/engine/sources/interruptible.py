"""Interruptible sources: every partition stops the run cleanly once Ctrl-C or SIGTERM came.

In: any of our partitioned sources. Out: the same batches, snapshots and
partitions; once :mod:`flows.engine.interrupt` has recorded a signal, the
next poll of any partition raises Bytewax's ``AbortExecution``, which stops
the worker without end of input (no window closes, nothing is committed as
done), so a run resumed from the recovery store continues where the last
snapshot left off. One check of a global per poll: nothing per event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine import interrupt


class InterruptibleSource(FixedPartitionedSource):
    """Wraps a partitioned source so its partitions abort the run when a stop was asked for."""

    def __init__(self, inner: FixedPartitionedSource):
        self.inner = inner

    def partitions(self) -> list[str]:
        return self.inner.partitions()  # type: ignore[attr-defined]

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> InterruptiblePartition:
        return InterruptiblePartition(self.inner.build_part(step_id, for_part, resume_state))


class InterruptiblePartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition):
        self.inner = inner

    def next_batch(self) -> list[Any]:
        interrupt.check()
        return list(self.inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()
