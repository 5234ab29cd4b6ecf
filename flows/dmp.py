"""The platform's main flow: purchase trends and a sales leaderboard.

    python -m bytewax.run flows.dmp            # simulator in, ./out files out

In: raw batches from the simulator, files or Kafka (``DMP_SOURCE``) or any
source given to :func:`build`. Out, to files and/or Kafka (``DMP_SINK``):
``trends`` (per product and window), ``leaderboard`` (top N per window),
``quality`` (per window: on time, late, duplicates, dead letters, watermark),
``late`` (events that missed a window) and ``dead_letters`` (records that
could not be decoded), plus a run summary at the end of a bounded run.
Configuration: ``DMP_*`` variables (see the README); bad values stop it at
start-up.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Sequence

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from flows.engine.analytics.leaderboard import leaderboard
from flows.engine.analytics.trends import TrendChange, tiling, trends_aggregate
from flows.engine.config import Settings
from flows.engine.errors import DmpError
from flows.engine.operators import decode, decoder, stamp_event_time, summarize, write
from flows.engine.operators import window as window_op
from flows.engine.present import late_rows, quality_rows
from flows.engine.schema import StampedBatch
from flows.engine.sinks import Outputs, build_outputs
from flows.engine.sources import open_source, source_partitions
from flows.engine.summary import Tally


# Optional event fields this flow uses besides the required ones (the rest are not parsed).
EVENT_FIELDS = ("event_id",)


def build(
    settings: Settings | None = None,
    *,
    source: Source | None = None,
    partitions: Sequence[str] | None = None,
    outputs: Outputs | None = None,
    clock: Callable[[], float] = time.time,
) -> Dataflow:
    """Build the flow; every argument defaults to what ``DMP_*`` settings say.

    ``partitions`` names every partition ``source`` emits batches for (our
    sources know theirs; a ``TestingSource`` of plain records needs none).
    ``clock`` (wall time) stamps quality rows.
    """
    settings = settings if settings is not None else Settings.from_env()
    source = source if source is not None else open_source(settings, prepare=decoder(EVENT_FIELDS))
    partitions = list(partitions) if partitions is not None else source_partitions(source)
    outputs = outputs if outputs is not None else build_outputs(settings)
    window, top_n = settings.window, settings.top_n

    flow = Dataflow("dmp")
    raw = op.input("read", flow, source)  # RawBatch per source partition
    decoded = decode("decode", raw, EVENT_FIELDS)  # Decoded(events, dead_letters, tallies)
    stamped = stamp_event_time(  # StampedBatch: watermark per event, duplicates dropped
        "stamp_event_time", decoded.events, settings.allowed_lateness_ms, settings.dedup_horizon_ms
    )
    windows = window_op(  # Windowed(results, late, quality)
        "trends_windows", stamped, trends_aggregate(window), partitions, settings.shards, clock
    )
    trends = op.stateful_batch("compare_with_previous_window", windows.results, lambda s: TrendChange(window, s))
    board = op.map("rank_top_n", windows.results, lambda kv: (kv[0], leaderboard(kv[1].rows, top_n, window.size_ms)))
    quality = op.map("present_quality", windows.quality, lambda kv: (kv[0], quality_rows(kv[1])))
    late = op.map("present_late", windows.late, lambda kv: (kv[0], late_rows(kv[1], kv[0], window)))

    write("write_trends", trends, outputs.sinks("trends"))
    write("write_leaderboard", board, outputs.sinks("leaderboard"))
    write("write_quality", quality, outputs.sinks("quality"))
    write("write_late", late, outputs.sinks("late"))
    write("write_dead_letters", decoded.dead_letters, outputs.sinks("dead_letters"))  # raw bytes; sinks render

    if outputs.summary is not None:
        duplicates = op.filter_map("tally_duplicates", stamped, duplicates_tally)
        late_tally = op.map("tally_late", windows.late, lambda kv: Tally(late=kv[1].height))
        sales = op.map("tally_sales", windows.results, lambda kv: Tally(sales=tiling(kv[1].rows, window)))
        tallies = op.merge("tallies", decoded.tallies, duplicates, late_tally, sales)
        op.output("write_summary", summarize("summarize", tallies, settings.top_n), outputs.summary)
    return flow


def duplicates_tally(batch: StampedBatch) -> Tally | None:
    return Tally(duplicates=batch.duplicates.height) if batch.duplicates is not None else None


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run flows.dmp` asks for `flow`: build it from the
    # environment then, not at import, and report bad settings plainly.
    if name == "flow":
        try:
            return build()
        except DmpError as ex:
            print(f"dmp: {ex}", file=sys.stderr)
            raise SystemExit(2) from None
    raise AttributeError(name)
