"""Progress on stderr for runs longer than a few seconds: events, events/s, event time, percent done, time left.

In: the decoded batches (:class:`~flows.engine.schema.EventBatch`), each
made a small :class:`Step` where it was decoded (its counts, its newest
event time, how far its file has been read: a few numbers per batch, never
anything per event), and the bytes of every partition when the source
knows them (files). Out: nothing downstream; one worker (all steps go to
one key, as the summary's tallies do) prints

    dmp: 1,234,567 events (45,678/s), event time 2024-01-03T14:05:00Z; 37% of 2.1 GB read, about 1m20s left

once the run has gone ``delay`` seconds: refreshed in place (``\\r``) every
second when stderr is a terminal (``DMP_PROGRESS=auto``), otherwise a line
every 10 seconds (or always, ``DMP_PROGRESS=lines``). The event time is the
oldest of the partitions' newest events (partitions that ended aside):
what windows can close up to. Rates are over this run's wall clock; a
resumed run counts from where it resumed. Nothing for runs shorter than
``delay``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal, TextIO

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from flows.engine import interrupt
from flows.engine.schema import EventBatch

Mode = Literal["auto", "lines", "off"]
DELAY_S = 5.0
TERMINAL_EVERY_S = 1.0
LINES_EVERY_S = 10.0


@dataclass(frozen=True)
class Step:
    """What one batch moved: its partition's counts, newest event time and bytes read."""

    partition: str
    records: int
    events: int
    newest_ms: int | None
    read_to: int | None
    last: bool


def step(batch: EventBatch) -> Step:
    """A decoded batch's progress (one reduction over its ``ts`` column)."""
    newest = batch.events["ts"].max() if batch.events.height else None
    return Step(batch.partition, batch.records, batch.events.height, None if newest is None else int(newest),  # type: ignore[arg-type]
                batch.read_to, batch.last)


class Progress(StatefulBatchLogic[Step, None, None]):
    """Adds up steps and prints a line when one is due (also on timers, so a quiet run still shows it)."""

    def __init__(self, sizes: Mapping[str, int] | None, mode: Mode, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, delay: float = DELAY_S) -> None:
        self.sizes = dict(sizes) if sizes else None
        self.stream = stream or sys.stderr
        self.in_place = mode == "auto" and self.stream.isatty()
        self.every = TERMINAL_EVERY_S if self.in_place else LINES_EVERY_S
        self.clock = clock
        self.started = clock()
        self.due = self.started + max(delay, self.every)
        self.events = 0
        self.newest: dict[str, int] = {}
        self.ended: set[str] = set()
        self.read_to: dict[str, int] = {}
        self.first_read: dict[str, int] = {}  # where each partition stood when this run first heard of it
        self.shown = False
        interrupt.on_stop(self.close_line)

    def on_batch(self, values: list[Step]) -> tuple[list[None], bool]:
        for s in values:
            self.events += s.events
            if s.newest_ms is not None:
                self.newest[s.partition] = max(self.newest.get(s.partition, s.newest_ms), s.newest_ms)
            if s.last:
                self.ended.add(s.partition)
            if s.read_to is not None:
                self.first_read.setdefault(s.partition, s.read_to)  # the rate counts what this run reads after
                self.read_to[s.partition] = s.read_to
        return self._show_if_due(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[None], bool]:
        return self._show_if_due(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[None], bool]:
        if self.shown:
            self._show(final=True)
        return [], StatefulBatchLogic.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.now(timezone.utc) + timedelta(seconds=max(0.0, self.due - self.clock()))

    def snapshot(self) -> None:
        return None  # a resumed run shows its own progress

    def close_line(self) -> None:
        """End a line refreshed in place, so what follows (the summary) starts on its own."""
        if self.shown and self.in_place:
            self.stream.write("\n")
            self.stream.flush()
            self.in_place = False

    def _show_if_due(self) -> list[None]:
        now = self.clock()
        if now >= self.due:
            self._show()
            self.due = now + self.every
        return []

    def _show(self, *, final: bool = False) -> None:
        text = self.line(self.clock() - self.started)
        if self.in_place:
            self.stream.write(f"\r\033[K{text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def line(self, elapsed: float) -> str:
        """The progress line after ``elapsed`` seconds of this run."""
        parts = [f"dmp: {self.events:,} events ({self.events / max(elapsed, 1e-9):,.0f}/s)"]
        reached = self.event_time()
        if reached is not None:
            parts[0] += f", event time {datetime.fromtimestamp(reached / 1000, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
        if self.sizes:
            total = sum(self.sizes.values())
            done = sum(self.read_to.get(name, 0) for name in self.sizes)
            read_now = done - sum(self.first_read.values())
            share = done / total if total else 1.0
            text = f"{share:.0%} of {_size(total)} read"
            if read_now > 0 and done < total:
                text += f", about {_duration((total - done) * elapsed / read_now)} left"
            parts.append(text)
        return "; ".join(parts)

    def event_time(self) -> int | None:
        """The oldest of the newest event times of the partitions still going (of all, once all ended)."""
        going = [ms for name, ms in self.newest.items() if name not in self.ended]
        marks = going or list(self.newest.values())
        return min(marks) if marks else None


def _size(n: int) -> str:
    """
    >>> _size(2_100_000_000), _size(5_300), _size(12)
    ('2.1 GB', '5.3 kB', '12 B')
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    """
    >>> _duration(80), _duration(3725), _duration(7)
    ('1m20s', '1h02m', '7s')
    """
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


@operator
def progress(step_id: str, batches: Stream[EventBatch], sizes: Mapping[str, int] | None, mode: Mode) -> None:
    """Show the run's progress on stderr (one worker prints); ``mode`` is ``DMP_PROGRESS``."""
    steps = op.map("steps", batches, step)  # a few numbers per batch, cheap to send to one worker
    keyed = op.key_on("one_key", steps, lambda _: "progress")
    op.stateful_batch("show", keyed, lambda resume: Progress(sizes, mode))
