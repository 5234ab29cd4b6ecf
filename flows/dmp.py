"""The platform's main flow: every analytic of the registry, over the shop's events.

    python -m bytewax.run flows.dmp            # simulator in, ./out files out

In: raw batches from the simulator, files or Kafka (``DMP_SOURCE``) or any
source given to :func:`build`. Out, to files and/or Kafka (``DMP_SINK``):
``dead_letters`` (records that could not be decoded), each running
analytic's streams (``DMP_ANALYTICS``: trends and the leaderboard with
their ``quality`` and ``late`` streams, sessions, the funnel,
recommendations, triggers, time series and anomalies; see
:mod:`flows.engine.analytics`), ``monitoring`` (the pipeline's own figures
per worker, also Prometheus metrics) and a run summary at the end of a
bounded run (counts that reconcile, and what each stream found); progress
on stderr (``DMP_PROGRESS``). Configuration:
``DMP_*`` variables (see the README); bad values stop it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from flows.engine.analytics import registry
from flows.engine.config import Settings
from flows.engine.launch import flow_attribute
from flows.engine.monitor import WorkerIdentity, batch_report, late_report, monitor, watermark_report
from flows.engine.operators import DecodeOptions, decode, decoder, stamp_event_time, summarize, write
from flows.engine.present import DEAD_LETTERS, LATE, QUALITY, QUARANTINE, quarantine_rows
from flows.engine.progress import progress
from flows.engine.sinks import Outputs, build_outputs
from flows.engine.sources import open_source, source_partitions, source_sizes
from flows.engine.summary import event_tally
from flows.engine.wiring import Wiring


def build(
    settings: Settings | None = None,
    *,
    source: Source | None = None,
    partitions: Sequence[str] | None = None,
    outputs: Outputs | None = None,
    fresh_outputs: bool = False,
) -> Dataflow:
    """Build the flow; every argument defaults to what ``DMP_*`` settings say.

    ``partitions`` names every partition ``source`` emits batches for (our
    sources know theirs; a ``TestingSource`` of plain records needs none).
    ``fresh_outputs``: a run that does not resume, whose file outputs replace
    every stream's files (``python -m bytewax.run`` knows; see :mod:`flows.engine.launch`).
    """
    settings = settings if settings is not None else Settings.from_env()
    fields = registry.event_fields(settings)
    decoding: DecodeOptions = {"bounds": settings.bounds, "duplicates": settings.duplicate_fields}
    source = source if source is not None else open_source(settings, prepare=decoder(fields, **decoding))
    partitions = list(partitions) if partitions is not None else source_partitions(source)
    outputs = outputs if outputs is not None else build_outputs(settings, fresh=fresh_outputs)

    flow = Dataflow("dmp")
    raw = op.input("read", flow, source)  # RawBatch per source partition
    decoded = decode("decode", raw, fields, **decoding)  # Decoded(events, dead_letters, tallies)
    stamped = stamp_event_time(  # StampedBatch: quarantine, watermark per event, duplicates dropped
        "stamp_event_time", decoded.events, settings.allowed_lateness_ms, settings.dedup_horizon_ms,
        screen=settings.screen,
    )
    branches = Wiring(settings, stamped, partitions, outputs)  # what every analytic draws from; findings to the summary
    branches.write(DEAD_LETTERS, decoded.dead_letters)  # typed rows; sinks render
    if settings.progress != "off":
        progress("show_progress", decoded.events, source_sizes(source), settings.progress)  # stderr, one worker
    quarantined = op.filter_map("quarantined", stamped, quarantine_rows)  # (partition, rows)
    branches.write(QUARANTINE, quarantined)
    branches.tally(decoded.tallies)
    branches.measure(lambda: op.map("report_batches", decoded.tallies, batch_report))
    branches.measure(lambda: op.filter_map("report_watermarks", stamped,
                                           lambda batch: watermark_report(batch, settings.live)))
    for analytic in registry.running(settings):  # trends, sessions, funnel, ...: flows/engine/analytics/
        analytic.wire(branches)
    for stream, parts in ((LATE, branches.late), (QUALITY, branches.quality)):  # of every analytic that has them
        if parts:
            branches.write(stream, op.merge(f"{stream.name}_rows", *parts))
    late = branches.late_for_any()  # late for a window of any analytic that runs
    events = op.map("tally_events", stamped, lambda batch: event_tally(batch, late))  # duplicates, late, sales
    branches.tally(events)
    branches.measure(lambda: op.map("report_late", events, late_report))

    if branches.reports:
        rows = monitor("monitor", op.merge("reports", *branches.reports), settings.monitor_interval_ms / 1000,
                       settings.live)
        write("write_monitoring", rows, outputs.sinks("monitoring"))
        op.output("identify_workers", rows, WorkerIdentity())  # tells each worker thread its index
    if outputs.summary is not None:
        summarize("summarize", op.merge("tallies", *branches.tallies), settings.top_n, outputs.summary,
                  settings.max_dead_letter_share, branches.findings())  # at the end, or of what a Ctrl-C let through
    return flow


def only(analytics: Sequence[str]) -> Callable[..., Dataflow]:
    """:func:`build` restricted to some analytics (what ``flows.sessions`` and friends run)."""

    def build_only(settings: Settings | None = None, **kwargs: Any) -> Dataflow:
        settings = settings if settings is not None else Settings.from_env(ignore=("DMP_ANALYTICS",))
        return build(settings.replace(analytics=tuple(analytics)), **kwargs)

    return build_only


__all__ = ["build", "flow_attribute", "only"]
__getattr__ = flow_attribute(build)  # python -m bytewax.run flows.dmp: built then, from DMP_* settings
