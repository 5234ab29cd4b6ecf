"""Read-ahead: a worker's partitions read, and decode, their next batches on another core.

In: any of our partitioned sources and a ``prepare`` function (the flow's
decoder, which passes already-decoded batches through). Out: the same
batches, in the same order per partition, read ahead by one background
thread per worker, and decoded ahead too whenever that thread has time
(see :class:`_Reader` for how the decoding balances itself between it and
the worker). Polars, file reads and the Kafka client release the GIL, so on
a 2-core machine the reading and decoding overlap the windowing instead of
alternating with it (see the README's benchmarks). One thread serves all
of a worker's partitions in turn: four Kafka partitions cost one extra
thread, not four competing ones.

Snapshots stay exact: every fetched batch carries its partition's position
*after* it, and a partition reports the position after the last batch it
actually emitted, never one that is only read ahead. A batch the reader
fails to decode is handed over raw, so the error surfaces in the flow's
decode step exactly as it would without read-ahead.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.sources.wrapper import WrappedSource

_WAIT = timedelta(milliseconds=2)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Ended:
    pass


class ReadAheadSource(WrappedSource):
    """Wraps a partitioned source so each partition prepares ``depth`` batches ahead."""

    def __init__(self, inner: FixedPartitionedSource, prepare: Callable[[Any], Any], depth: int = 2):
        if depth < 1:
            msg = f"read-ahead depth must be >= 1; got {depth}"
            raise ValueError(msg)
        super().__init__(inner)
        self.prepare = prepare
        self.depth = depth
        self._readers: dict[int, _Reader] = {}
        self._lock = threading.Lock()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> ReadAheadPartition:
        # Partitions are built on their worker's thread: one reader per worker.
        with self._lock:
            worker = threading.get_ident()
            reader = self._readers.get(worker)
            if reader is None or not reader.is_alive():
                reader = self._readers[worker] = _Reader(self.prepare, f"read-ahead {step_id}")
        partition = ReadAheadPartition(self.inner.build_part(step_id, for_part, resume_state), self.depth, reader)
        reader.add(partition)
        return partition


class _Reader(threading.Thread):
    """One background thread per worker: fetches ahead first, decodes when it has time.

    Fetching keeps every partition ``depth`` batches ahead; with time to
    spare (all queues full), the thread decodes the oldest raw batches. The
    worker takes the head of a queue as it is: decoded if the reader got to
    it, raw otherwise (the flow's decode step decodes it then). So the work
    balances itself: file reads are cheap and nearly every batch arrives
    decoded; Kafka polls are not, and the worker decodes what the reader
    cannot. (Measured: a second background thread was slower on two cores.)
    """

    def __init__(self, prepare: Callable[[Any], Any], name: str):
        super().__init__(name=name, daemon=True)
        self.prepare = prepare
        self.partitions: list[ReadAheadPartition] = []
        self.changed = threading.Condition()
        self.stopping = False
        self.started_once = False

    def add(self, partition: ReadAheadPartition) -> None:
        with self.changed:
            self.partitions.append(partition)
            self.changed.notify_all()
        if not self.started_once:
            self.started_once = True
            self.start()

    def remove(self, partition: ReadAheadPartition) -> None:
        with self.changed:
            if partition in self.partitions:
                self.partitions.remove(partition)
            self.stopping = not self.partitions
            self.changed.notify_all()

    def run(self) -> None:
        while True:
            with self.changed:
                if self.stopping:
                    return
                partitions = list(self.partitions)
            fetching = [p for p in partitions if p.wants_more()]
            if fetching and any([partition.fetch_one() for partition in fetching]):
                continue
            if any([partition.decode_one(self.prepare) for partition in partitions]):
                continue
            with self.changed:
                # Nothing fetched (an idle source) or every queue full and decoded: wait.
                self.changed.wait(0.05 if not fetching else 0.001)


@dataclass
class _Slot:
    """One fetched batch: raw until the reader decodes it (``claimed`` while it does)."""

    items: list[Any]
    position: Any
    decoded: bool = False
    claimed: bool = False


class ReadAheadPartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition, depth: int, reader: _Reader):
        self.inner = inner
        self.depth = depth
        self.reader = reader
        self.position = inner.snapshot()
        self.queue: collections.deque = collections.deque()  # _Slot, then maybe _Ended / _Failed
        self.lock = threading.Condition()
        self.done = False  # the inner partition ended or failed (seen by the reader)
        self.idle = False  # the worker found nothing: poll again in a moment
        self.hungry = False  # the worker waited or decoded itself: leave it the head
        self.not_before: datetime | None = None

    # -- reader thread ------------------------------------------------------------
    def wants_more(self) -> bool:
        if self.done or len(self.queue) >= self.depth:
            return False
        return self.not_before is None or datetime.now(timezone.utc) >= self.not_before

    def fetch_one(self) -> bool:
        """Read one raw batch of this partition; whether anything came."""
        try:
            items = cast(list[Any], self.inner.next_batch())  # Bytewax says Iterable; ours return lists
        except StopIteration:
            message: Any = _Ended()
        except BaseException as ex:
            message = _Failed(ex)
        else:
            self.not_before = self.inner.next_awake()  # e.g. the simulator's pacing
            if not items:
                return False
            message = _Slot(items, self.inner.snapshot())
        with self.lock:
            if not isinstance(message, _Slot):
                self.done = True
            self.queue.append(message)
        return True

    def decode_one(self, prepare: Callable[[Any], Any]) -> bool:
        """Decode the oldest raw batch the worker has not taken; whether there was one.

        While the worker is hungry (it found nothing, or had to decode its
        last batch itself), its next batch (the head) is left raw for it:
        two cores decoding, instead of the worker waiting on the reader.
        """
        with self.lock:
            candidates = list(self.queue)[1:] if self.hungry else self.queue
            slot = next((s for s in candidates if isinstance(s, _Slot) and not s.decoded and not s.claimed), None)
            if slot is None:
                return False
            slot.claimed = True
        try:
            decoded = [prepare(item) for item in slot.items]
        except BaseException:
            decoded = None
        with self.lock:
            if decoded is not None:
                slot.items, slot.decoded = decoded, True
            slot.claimed = False
            self.lock.notify_all()
        return True

    # -- worker thread ------------------------------------------------------------
    def next_batch(self) -> list[Any]:
        with self.lock:
            while self.queue and isinstance(self.queue[0], _Slot) and self.queue[0].claimed:
                self.lock.wait()  # the reader is decoding it right now; it will not be long
            if not self.queue:
                self.idle = self.hungry = True  # nothing fetched yet: come back in a moment
                return []
            self.idle = False
            self.hungry = isinstance(self.queue[0], _Slot) and not self.queue[0].decoded
            head = self.queue[0]
            if isinstance(head, _Ended):
                raise StopIteration
            if isinstance(head, _Failed):
                raise head.error
            self.queue.popleft()
        with self.reader.changed:
            self.reader.changed.notify_all()  # there is room again
        self.position = head.position
        return head.items  # decoded, or raw for the flow's decode step

    def next_awake(self) -> datetime | None:
        return datetime.now(timezone.utc) + _WAIT if self.idle else None

    def snapshot(self) -> Any:
        return self.position

    def close(self) -> None:
        self.reader.remove(self)
        self.inner.close()
