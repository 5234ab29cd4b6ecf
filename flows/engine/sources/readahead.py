"""Read-ahead: a partition reads and decodes its next batches on another core.

In: any of our partitioned sources and a ``prepare`` function (the flow's
decoder). Out: the same batches, in the same order, each already passed
through ``prepare`` by a background thread while the worker thread was busy
with earlier ones. Polars and file reads release the GIL, so on a machine
with two cores decoding overlaps the windowing instead of alternating with
it (measured: see the README's benchmark section).

Snapshots stay exact: every prepared batch carries the partition's position
*after* it, and the partition reports the position after the last batch it
actually emitted, never one that is only read ahead.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

_POLL = timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Ready:
    items: list[Any]
    position: Any


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Ended:
    pass


class ReadAheadSource(FixedPartitionedSource):
    """Wraps a partitioned source so each partition prepares ``depth`` batches ahead."""

    def __init__(self, inner: FixedPartitionedSource, prepare: Callable[[Any], Any], depth: int = 2):
        if depth < 1:
            msg = f"read-ahead depth must be >= 1; got {depth}"
            raise ValueError(msg)
        self.inner = inner
        self.prepare = prepare
        self.depth = depth

    def partitions(self) -> list[str]:
        return self.inner.partitions()  # type: ignore[attr-defined]

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> ReadAheadPartition:
        inner = self.inner.build_part(step_id, for_part, resume_state)
        return ReadAheadPartition(inner, self.prepare, self.depth, name=f"{step_id}:{for_part}")


class ReadAheadPartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition, prepare: Callable[[Any], Any], depth: int, name: str):
        self.inner = inner
        self.prepare = prepare
        self.position = inner.snapshot()
        self.ready: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.waiting = False
        self.thread = threading.Thread(target=self._run, name=f"read-ahead {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self._sleep_until(self.inner.next_awake())  # e.g. the simulator's pacing
                try:
                    items = self.inner.next_batch()
                except StopIteration:
                    self._put(_Ended())
                    return
                if not items:
                    self._sleep_until(datetime.now(timezone.utc) + _POLL)
                    continue
                prepared = [self.prepare(item) for item in items]
                self._put(_Ready(prepared, self.inner.snapshot()))
        except BaseException as ex:  # noqa: BLE001 - re-raised in the worker thread
            self._put(_Failed(ex))

    def _sleep_until(self, moment: datetime | None) -> None:
        if moment is not None:
            self.stop.wait(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()))

    def _put(self, message: Any) -> None:
        while not self.stop.is_set():
            try:
                self.ready.put(message, timeout=0.1)
                return
            except queue.Full:
                continue

    def next_batch(self) -> list[Any]:
        try:
            message = self.ready.get_nowait()
        except queue.Empty:
            self.waiting = True  # nothing prepared yet: come back in a moment
            return []
        self.waiting = False
        if isinstance(message, _Ended):
            self.ready.put_nowait(message)  # stay ended if asked again
            raise StopIteration
        if isinstance(message, _Failed):
            raise message.error
        self.position = message.position
        return message.items

    def next_awake(self) -> datetime | None:
        # The background thread honours the inner partition's own schedule.
        return datetime.now(timezone.utc) + _POLL if self.waiting else None

    def snapshot(self) -> Any:
        return self.position

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.inner.close()
