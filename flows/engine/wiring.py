"""What a flow hands each analytic's wiring function: the stamped events, and where results go.

In: the stamped events of a flow (:class:`~flows.engine.schema.StampedBatch`
stream), its settings, source partitions and outputs. Out: nothing
directly; an analytic's ``wire(wiring)`` draws its branch with these verbs:

- :meth:`Wiring.window`: run a declared windowed analytic over the stamped
  events (with its latency measured for monitoring);
- :meth:`Wiring.write`: send a stream of typed rows to the sinks of one output stream
  (and, when it declares a finding, each batch's partial to the run summary);
- :meth:`Wiring.tally`: add per-batch counts to the run summary;
- :meth:`Wiring.measure`: a stream of monitoring reports (only built when monitoring is on);
- :meth:`Wiring.shared`: a sub-graph several analytics use (session windows,
  the time-series decomposition), built once whichever of them runs first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Stream

from flows.engine.aggregate import WindowSpec
from flows.engine.analytics import registry
from flows.engine.monitor import latency_report
from flows.engine.operators import Windowed, only_events, window, write
from flows.engine.present import late_rows, quality_rows
from flows.engine.schema import StampedBatch
from flows.engine.setting import Group
from flows.engine.sinks import Outputs
from flows.engine.streams import OutputStream
from flows.engine.summary import Tally
from flows.engine.windows import Window

G = TypeVar("G", bound=Group)
T = TypeVar("T")


class Wiring:
    """The shared ends of a flow's analytic branches; see the module docstring."""

    def __init__(self, settings: Any, stamped: Stream[StampedBatch], partitions: Sequence[str],
                 outputs: Outputs) -> None:
        self.settings = settings
        self.stamped = stamped
        self.partitions = list(partitions)
        self.outputs = outputs
        self.tallies: list[Stream] = []
        self.found: dict[str, OutputStream] = {}  # the streams written whose findings go to the summary
        self.late: list[Stream] = []  # late rows of every windowed analytic, written together
        self.quality: list[Stream] = []  # quality rows of every fixed-window analytic, written together
        self.reports: list[Stream] = []
        self._shared: dict[str, Any] = {}
        self._windows: list[tuple[Window, pl.Expr | None]] = []

    def group(self, kind: type[G]) -> G:
        """The settings group ``kind`` (an analytic's own settings)."""
        return self.settings.group(kind)

    def window(self, label: str, spec: WindowSpec, *, only: pl.Expr | None = None,
               step_id: str | None = None) -> Windowed:
        """Run ``spec`` over the stamped events (those matching ``only``); ``Windowed(results, late, quality)``.

        Its windows also decide which events the run summary counts as late
        (:meth:`late_for_any`).
        """
        up = self.stamped if only is None else op.map(f"{label}_only", self.stamped, lambda b: only_events(b, only))
        self._windows.append((spec.window, only))
        windows = window(step_id or f"{label}_windows", up, spec, self.partitions, self.settings.shards)
        self.late.append(op.map(f"present_{label}_late", windows.late,
                                lambda kv: (kv[0], late_rows(kv[1], kv[0], label))))
        if spec.window.counts_quality:
            self.quality.append(op.map_value(f"present_{label}_quality", windows.quality,
                                             lambda rows: quality_rows(rows, label)))
        self.measure(lambda: op.filter_map(f"report_{label}_latency", windows.results,
                                           lambda kv: latency_report(kv[1].read_at)))
        return windows

    def write(self, stream: OutputStream, up: Stream[Any]) -> None:
        """Send typed rows (``(key, frame)`` items) to every sink of ``stream``.

        With a summary, a stream that declares a finding is tapped too: each
        batch's partial goes to the summary as a tally (one small Polars step
        per output batch).
        """
        write(f"write_{stream.name}", up, self.outputs.sinks(stream.name))
        finding = stream.finding
        if finding is None or self.outputs.summary is None:
            return
        name = stream.name
        self.found[name] = stream

        def partial(item: tuple[str, pl.DataFrame]) -> Tally | None:
            rows = item[1]
            return Tally(findings={name: finding.partial(rows)}) if rows.height else None

        self.tally(op.filter_map(f"find_in_{name}", up, partial))

    def tally(self, up: Stream[Any]) -> None:
        """Counts (:class:`~flows.engine.summary.Tally` items) for the run summary."""
        self.tallies.append(up)

    def findings(self) -> tuple[OutputStream, ...]:
        """The streams whose findings were tapped, in the order the streams are declared (the summary's order)."""
        order = [s.name for s in registry.streams(self.settings)]
        return tuple(sorted(self.found.values(), key=lambda s: order.index(s.name) if s.name in order else len(order)))

    def measure(self, build: Callable[[], Stream[Any]]) -> None:
        """Monitoring reports, built only when monitoring is on (``DMP_MONITOR_INTERVAL`` > 0)."""
        if self.settings.monitor_interval_ms:
            self.reports.append(build())

    def late_for_any(self) -> pl.Expr | None:
        """True for a stamped event late for at least one window of the analytics wired so far."""
        distinct = {(window, str(only)): (window, only) for window, only in self._windows}.values()
        lates = [window.late(pl.col("ts"), pl.col("watermark")) & (only if only is not None else True)
                 for window, only in distinct]
        return pl.any_horizontal(lates) if lates else None

    def shared(self, name: str, build: Callable[[], T]) -> T:
        """A sub-graph several analytics use, built the first time one of them asks."""
        if name not in self._shared:
            self._shared[name] = build()
        return self._shared[name]
