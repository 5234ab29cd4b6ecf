"""The platform's main flow: trends, leaderboard, sessions, funnel, recommendations, triggers.

    python -m bytewax.run flows.dmp            # simulator in, ./out files out

In: raw batches from the simulator, files or Kafka (``DMP_SOURCE``) or any
source given to :func:`build`. Out, to files and/or Kafka (``DMP_SINK``):
``trends`` (per product and window), ``leaderboard`` (top N per window),
``quality`` (per window: on time, late, duplicates, dead letters, watermark),
``late`` (events that missed a window) and ``dead_letters`` (records that
could not be decoded); ``sessions`` (per user visit), ``funnel`` (ordered
view -> cart -> purchase per window and category), ``recommendations``
(products bought together) and ``triggers`` (abandoned carts, big
spenders); ``timeseries`` (business metrics per bucket, decomposed) and
``anomalies`` (alerts on them); ``monitoring`` (the pipeline's own figures
per worker, also Prometheus metrics); plus a run summary at the end of a
bounded run.
``DMP_ANALYTICS`` chooses what runs. Configuration: ``DMP_*`` variables
(see the README); bad values stop it at start-up.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Sequence

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from flows.engine.analytics.funnel import funnel_function, funnel_rows
from flows.engine.analytics.leaderboard import leaderboard
from flows.engine.analytics.recommendations import RecommendLogic, RecoSettings
from flows.engine.analytics.seasonal import SeriesConfig
from flows.engine.analytics.timeseries import ALERTS, SERIES, TimeSeriesLogic, timeseries_aggregate
from flows.engine.analytics.trends import TrendChange, tiling, trends_aggregate
from flows.engine.analytics.triggers import (
    CART_ABANDONED,
    HIGH_VALUE,
    Candidates,
    CooldownLogic,
    abandoned_carts,
    big_spenders,
    spend_aggregate,
)
from flows.engine.analytics.user_sessions import session_rows, sessions_aggregate
from flows.engine.config import Settings
from flows.engine.errors import DmpError
from flows.engine.monitor import (
    WorkerIdentity,
    batch_report,
    late_report,
    latency_report,
    monitor,
    watermark_report,
)
from flows.engine.operators import decode, decoder, stamp_event_time, summarize, write
from flows.engine.operators import window as window_op
from flows.engine.present import late_rows, quality_rows
from flows.engine.schema import StampedBatch
from flows.engine.sinks import Outputs, build_outputs
from flows.engine.sources import open_source, source_partitions
from flows.engine.summary import Tally
from flows.engine.windows import SlidingWindow, TumblingWindow


def event_fields(settings: Settings) -> tuple[str, ...]:
    """Optional event fields the analytics use besides the required ones (the rest are not parsed)."""
    wants_category = settings.runs("funnel") or settings.runs("timeseries") or settings.runs("anomalies")
    return ("event_id", "category") if wants_category else ("event_id",)


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
    fields = event_fields(settings)
    source = source if source is not None else open_source(settings, prepare=decoder(fields))
    partitions = list(partitions) if partitions is not None else source_partitions(source)
    outputs = outputs if outputs is not None else build_outputs(settings, streams_of(settings))
    shards = settings.shards

    flow = Dataflow("dmp")
    raw = op.input("read", flow, source)  # RawBatch per source partition
    decoded = decode("decode", raw, fields)  # Decoded(events, dead_letters, tallies)
    stamped = stamp_event_time(  # StampedBatch: watermark per event, duplicates dropped
        "stamp_event_time", decoded.events, settings.allowed_lateness_ms, settings.dedup_horizon_ms
    )
    write("write_dead_letters", decoded.dead_letters, outputs.sinks("dead_letters"))  # raw bytes; sinks render
    tallies = [decoded.tallies]
    reports: list[Stream] = []  # what each worker measured, for monitoring (DMP_MONITOR_INTERVAL > 0)
    measure = (lambda step: reports.append(step())) if settings.monitor_interval_ms else (lambda step: None)
    measure(lambda: op.map("report_batches", decoded.tallies, batch_report))
    measure(lambda: op.filter_map("report_watermarks", stamped, watermark_report))

    def released(name: str, windows: Any) -> None:  # latency of each emission of window results
        measure(lambda: op.filter_map(f"report_{name}_latency", windows.results,
                                      lambda kv: latency_report(kv[1].read_at)))

    if settings.runs("trends"):
        window, top_n = settings.window, settings.top_n
        windows = window_op(  # Windowed(results, late, quality)
            "trends_windows", stamped, trends_aggregate(window), partitions, shards, clock
        )
        released("trends", windows)
        measure(lambda: op.map("report_late", windows.late, lambda kv: late_report(kv[1])))
        trends = op.stateful_batch("compare_with_previous_window", windows.results, lambda s: TrendChange(window, s))
        board = op.map("rank_top_n", windows.results, lambda kv: (kv[0], leaderboard(kv[1].rows, top_n, window.size_ms)))
        quality = op.map("present_quality", windows.quality, lambda kv: (kv[0], quality_rows(kv[1])))
        late = op.map("present_late", windows.late, lambda kv: (kv[0], late_rows(kv[1], kv[0], window)))
        write("write_trends", trends, outputs.sinks("trends"))
        write("write_leaderboard", board, outputs.sinks("leaderboard"))
        write("write_quality", quality, outputs.sinks("quality"))
        write("write_late", late, outputs.sinks("late"))
        tallies.append(op.map("tally_late", windows.late, lambda kv: Tally(late=kv[1].height)))
        tallies.append(op.map("tally_sales", windows.results, lambda kv: Tally(sales=tiling(kv[1].rows, window))))

    if settings.runs("funnel"):
        funnel_window = TumblingWindow(settings.funnel_window_ms)
        steps = window_op("funnel_windows", stamped, funnel_function(funnel_window), partitions, shards, clock)
        released("funnel", steps)
        funnel = op.map("funnel_rates", steps.results, lambda kv: (kv[0], funnel_rows(kv[1].rows, funnel_window.size_ms)))
        write("write_funnel", funnel, outputs.sinks("funnel"))

    if settings.runs("timeseries") or settings.runs("anomalies"):
        bucket = TumblingWindow(settings.ts_bucket_ms)
        buckets = window_op("timeseries_buckets", stamped, timeseries_aggregate(bucket), partitions, shards, clock)
        released("timeseries", buckets)
        analysed = op.stateful_batch(  # (SERIES | ALERTS, rows) as each bucket closes
            "decompose", buckets.results, lambda resume: TimeSeriesLogic(series_config(settings), bucket.size_ms, resume)
        )
        for stream, tag in (("timeseries", SERIES), ("anomalies", ALERTS)):
            if settings.runs(stream):
                rows = op.filter_map(f"{stream}_rows", analysed, lambda kv, tag=tag: kv if kv[1][0] == tag else None)
                write(f"write_{stream}", op.map(f"untag_{stream}", rows, lambda kv: (kv[0], kv[1][1])),
                      outputs.sinks(stream))

    if {"sessions", "recommendations", "triggers"} & set(settings.analytics):
        gap = settings.session_gap_ms
        sessions = window_op(  # closed sessions, released in one order (keyed "sessions")
            "session_windows", stamped, sessions_aggregate(gap, settings.reco_basket_limit), partitions, shards
        )
        released("sessions", sessions)
        if settings.runs("sessions"):
            rows = op.map("present_sessions", sessions.results, lambda kv: (kv[0], session_rows(kv[1].rows)))
            write("write_sessions", rows, outputs.sinks("sessions"))
        if settings.runs("recommendations"):
            reco = reco_settings(settings)
            lists = op.stateful_batch("co_purchases", sessions.results, lambda resume: RecommendLogic(reco, gap, resume))
            write("write_recommendations", lists, outputs.sinks("recommendations"))
        if settings.runs("triggers"):
            carts = op.map("cart_candidates", sessions.results, lambda kv: (CART_ABANDONED, Candidates(
                abandoned_carts(kv[1].rows), kv[1].closed_until - 2 * gap)))
            spend_window = SlidingWindow(settings.high_value_window_ms, settings.high_value_slide_ms)
            purchases = op.map("purchases_only", stamped, only_purchases)
            spend = window_op("spend_windows", purchases, spend_aggregate(spend_window), partitions, shards, clock)
            released("spend", spend)
            threshold = round(settings.high_value_threshold * 1_000_000)
            spenders = op.map("spend_candidates", spend.results, lambda kv: (HIGH_VALUE, Candidates(
                big_spenders(kv[1].rows, spend_window, threshold), kv[1].closed_until)))
            candidates = op.merge("candidates", carts, spenders)
            cooldown = settings.trigger_cooldown_ms
            fired = op.stateful_batch("cooldown", candidates, lambda resume: CooldownLogic(cooldown, resume))
            write("write_triggers", fired, outputs.sinks("triggers"))

    if reports:
        rows = monitor("monitor", op.merge("reports", *reports), settings.monitor_interval_ms / 1000)  # per worker
        write("write_monitoring", rows, outputs.sinks("monitoring"))
        op.output("identify_workers", rows, WorkerIdentity())  # tells each worker thread its index

    if outputs.summary is not None:
        tallies.append(op.filter_map("tally_duplicates", stamped, duplicates_tally))
        op.output("write_summary", summarize("summarize", op.merge("tallies", *tallies), settings.top_n),
                  outputs.summary)
    return flow


def streams_of(settings: Settings) -> list[str]:
    """The output streams the settings' analytics write."""
    streams = ["dead_letters"]
    if settings.runs("trends"):
        streams += ["trends", "leaderboard", "quality", "late"]
    streams += [name for name in ("funnel", "sessions", "recommendations", "triggers", "timeseries", "anomalies")
                if settings.runs(name)]
    return streams + (["monitoring"] if settings.monitor_interval_ms else [])


def reco_settings(settings: Settings) -> RecoSettings:
    return RecoSettings(settings.reco_interval_ms, settings.reco_half_life_ms, settings.reco_top_k,
                        settings.reco_neighbours)


def series_config(settings: Settings) -> SeriesConfig:
    return SeriesConfig(settings.ts_ma, settings.ts_period, settings.ts_seasons, settings.ts_acf_window,
                        settings.anomaly_window, settings.anomaly_z, settings.anomaly_min_events)


def only_purchases(batch: StampedBatch) -> StampedBatch:
    """The purchases of a batch, with the partition's progress (quality counts stay with trends)."""
    events = batch.events.filter(pl.col("event_type") == "purchase")
    return dataclasses.replace(batch, events=events, duplicates=None, dead_letters=0)


def duplicates_tally(batch: StampedBatch) -> Tally | None:
    return Tally(duplicates=batch.duplicates.height) if batch.duplicates is not None else None


def only(analytics: Sequence[str]) -> Callable[..., Dataflow]:
    """:func:`build` restricted to some analytics (what ``flows.sessions`` and friends run)."""

    def build_only(settings: Settings | None = None, **kwargs: Any) -> Dataflow:
        settings = settings if settings is not None else Settings.from_env(ignore=("DMP_ANALYTICS",))
        return build(settings.replace(analytics=tuple(analytics)), **kwargs)

    return build_only


def flow_attribute(build_flow: Callable[[], Dataflow]) -> Callable[[str], Any]:
    """A flow module's ``__getattr__``: ``python -m bytewax.run`` asks for ``flow``.

    The flow is built then, from the environment, not at import; bad
    settings are reported plainly.
    """

    def module_getattr(name: str) -> Any:
        if name != "flow":
            raise AttributeError(name)
        try:
            return build_flow()
        except DmpError as ex:
            print(f"dmp: {ex}", file=sys.stderr)
            raise SystemExit(2) from None

    return module_getattr


__getattr__ = flow_attribute(build)
