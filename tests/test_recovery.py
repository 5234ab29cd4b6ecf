"""A run aborted mid-stream and resumed from its snapshots ends with the same files, for every window kind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from polars.testing import assert_frame_equal

from flows import dmp
from flows.engine.aggregate import Max, Sum, WindowedAggregate, WindowedFunction
from flows.engine.analytics.registry import streams
from flows.engine.analytics.trends import trends_aggregate
from flows.engine.config import Settings, SimSettings
from flows.engine.present import DEAD_LETTERS
from flows.engine.schema import RawBatch
from flows.engine.sinks import FileSink, Outputs, build_outputs
from flows.engine.sources import SimSource
from flows.engine.testing import batches, interleave, windowed_flow
from flows.engine.windows import SessionWindow, SlidingWindow

SIM = SimSettings(events=12_000, events_per_second=100.0, partitions=2, users=300, products=80, malformed_rate=0.003,
                  straggler_rate=0.005)  # a busy shop: two minutes of event time


def simulated_batches() -> list:
    """The simulator's records, re-cut into small batches so a run can stop half-way."""
    source = SimSource(SIM)
    per_partition = {}
    for name in source.partitions():
        part, lines = source.build_part("read", name, None), []
        while True:
            try:
                lines.extend(line for b in part.next_batch() for line in b.payload.splitlines())
            except StopIteration:
                break
        per_partition[name] = batches(lines, partition=name, size=400, as_lines=True)
    rounds = max(len(items) for items in per_partition.values())
    return interleave(per_partition, [name for _ in range(rounds) for name in per_partition])


def outputs(out_dir: Path) -> Outputs:
    return build_outputs(Settings(out_dir=out_dir, summary=False))


def read(out_dir: Path, stream: str) -> pl.DataFrame:
    path = out_dir / stream / "part-0000.jsonl"
    if not path.exists() or not path.stat().st_size:
        return pl.DataFrame()
    frame = pl.read_ndjson(path)
    return frame.sort(frame.columns)


@pytest.mark.parametrize("abort_after", [1, 9, 20])
def test_an_aborted_run_resumed_from_recovery_gives_the_uninterrupted_results(tmp_path: Path, abort_after: int):
    items = simulated_batches()
    settings = Settings(window_ms=60_000, allowed_lateness_ms=20_000, shards=3, summary=False)
    partitions = ["sim-0", "sim-1"]

    whole = tmp_path / "whole"
    run_main(dmp.build(settings, source=TestingSource(items), partitions=partitions, outputs=outputs(whole)))

    resumed = tmp_path / "resumed"
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    config = RecoveryConfig(str(recovery))
    abort = TestingSource.ABORT()
    first = TestingSource([*items[:abort_after], abort, *items[abort_after:]])
    run_main(dmp.build(settings, source=first, partitions=partitions, outputs=outputs(resumed)),
             epoch_interval=timedelta(0), recovery_config=config)  # stops at the ABORT
    partial = read(resumed, "trends").height

    # The resumed run must not read the snapshotted batches again: give it junk
    # in their place, which would show up as dead letters if it did.
    junk = [RawBatch(b.partition, [b"junk"], origin="junk") for b in items[: abort_after - 1]]
    second = TestingSource([*junk, *items[abort_after - 1 : abort_after], abort, *items[abort_after:]])
    run_main(dmp.build(settings, source=second, partitions=partitions, outputs=outputs(resumed)),
             epoch_interval=timedelta(0), recovery_config=config)

    assert partial < read(whole, "trends").height
    for stream in [s.name for s in streams()]:
        if stream == "monitoring":  # wall-clock figures
            continue
        assert_frame_equal(read(resumed, stream), read(whole, stream))
    assert read(whole, "quality")["late"].sum() and read(whole, "quality")["dead_letters"].sum()


# -- every window kind ------------------------------------------------------------------

KINDS = {
    # The simulated stream spans about two minutes of event time.
    "sliding": trends_aggregate(SlidingWindow(30_000, 10_000)),
    "sessions": WindowedAggregate(
        "sessions", ("user_id",), SessionWindow(5_000),
        {"purchases": Sum(pl.col("event_type") == "purchase"), "last_view": Max(pl.col("ts"))},
    ),
    "distinct_users": WindowedFunction(
        "distinct_users", ("product_id",), SessionWindow(3_000), ("user_id",),
        lambda frame: frame.group_by("window_start", "window_end", "product_id").agg(pl.col("user_id").n_unique()),
    ),
}


def run_kind(spec, items: list, out_dir: Path, recovery: RecoveryConfig | None = None) -> None:
    sinks = {stream: FileSink(out_dir / stream) for stream in ("results", "late", "quality", "dead_letters")}
    sinks["dead_letters"] = FileSink(out_dir / "dead_letters", stream=DEAD_LETTERS)
    flow, _ = windowed_flow(spec, TestingSource(items), ["sim-0", "sim-1"], lateness_ms=20_000,
                            dedup_horizon_ms=50_000, shards=3, fields=("event_id",), sinks=sinks)
    kwargs = {"epoch_interval": timedelta(0), "recovery_config": recovery} if recovery is not None else {}
    run_main(flow, **kwargs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_window_kind_resumes_to_the_uninterrupted_results(tmp_path: Path, kind: str):
    spec, items, abort_after = KINDS[kind], simulated_batches(), 13
    run_kind(spec, items, tmp_path / "whole")

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    config = RecoveryConfig(str(recovery))
    abort = TestingSource.ABORT()
    run_kind(spec, [*items[:abort_after], abort, *items[abort_after:]], tmp_path / "resumed", config)
    partial = read(tmp_path / "resumed", "results").height
    junk = [RawBatch(b.partition, [b"junk"], origin="junk") for b in items[: abort_after - 1]]
    run_kind(spec, [*junk, *items[abort_after - 1 : abort_after], abort, *items[abort_after:]],
             tmp_path / "resumed", config)

    whole = read(tmp_path / "whole", "results")
    assert 0 < partial < whole.height
    for stream in ("results", "late", "dead_letters", *(("quality",) if kind == "sliding" else ())):
        assert_frame_equal(read(tmp_path / "resumed", stream), read(tmp_path / "whole", stream))
