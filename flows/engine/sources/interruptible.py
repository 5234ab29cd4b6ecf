"""Interruptible sources: every partition stops the run cleanly once Ctrl-C or SIGTERM came.

In: any of our partitioned sources. Out: the same batches, snapshots and
partitions; once :mod:`flows.engine.interrupt` has recorded a signal, the
next poll of any partition raises Bytewax's ``AbortExecution``, which stops
the worker without end of input (no window closes, nothing is committed as
done), so a run resumed from the recovery store continues where the last
snapshot left off. One check of a global per poll: nothing per event.
"""

from __future__ import annotations

from typing import Any

from flows.engine import interrupt
from flows.engine.sources.wrapper import WrappedPartition, WrappedSource


class InterruptibleSource(WrappedSource):
    """Wraps a partitioned source so its partitions abort the run when a stop was asked for."""

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> InterruptiblePartition:
        return InterruptiblePartition(self.inner.build_part(step_id, for_part, resume_state))


class InterruptiblePartition(WrappedPartition):
    def next_batch(self) -> list[Any]:
        interrupt.check()
        return super().next_batch()
