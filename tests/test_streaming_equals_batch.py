"""The streaming flow equals a batch recomputation, whatever the batching.

For random events (some retried) over random partitions, random batch
splits, random partition interleavings, random lateness, tumbling or
sliding windows, dedup on or off, and 1, 2 or 3 workers, ``flows.dmp`` emits
exactly the rows of :mod:`tests.oracle` (trends, leaderboard, late events),
every malformed record as a dead letter, and a summary that reconciles.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
from bytewax.testing import TestingSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows import dmp
from flows.engine.config import Settings
from flows.engine.testing import CapturedOutputs, batches, interleave, run
from tests import oracle

BASE_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
EVENT_TYPES = ["view", "view", "add_to_cart", "remove_from_cart", "purchase"]
PRODUCTS = ["p1", "p2", "p3", "p4", "p5", "p10"]
PRICES = [None, 0.0, 0.01, 9.99, 19.99, 100.0, 330.98]

SCREEN = Settings()  # the event-time rules flows.dmp applies by default


def iso_ms(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@st.composite
def partition_events(draw, name: str) -> list[dict]:
    """Events of one partition: event time drifts forward with bounded disorder."""
    count = draw(st.integers(0, 40))
    # Mostly whole seconds, so window ends and watermarks often coincide
    # exactly: the boundary where "late" is decided by <= rather than <.
    clock = BASE_MS + draw(st.integers(0, 60)) * 1000
    events: list[dict] = []
    for index in range(count):
        if events and draw(st.integers(0, 9)) == 0:  # a producer retry: the same event again
            events.append(dict(draw(st.sampled_from(events))))
            continue
        clock += draw(st.sampled_from([0, 1_000, 2_000, 5_000, 10_000, 17_000, 333]))
        ts = clock - draw(st.sampled_from([0, 0, 0, 1_000, 5_000, 15_000, 30_000, 70_000, 200_000]))
        events.append(
            {
                "event_id": f"{name}-{index}",
                "event_type": draw(st.sampled_from(EVENT_TYPES)),
                # Mix the accepted time formats; they must all mean the same instant.
                "ts": draw(st.sampled_from([iso_ms(ts), ts])),
                "user_id": draw(st.integers(1, 5)),
                "product_id": draw(st.sampled_from(PRODUCTS)),
                "price": draw(st.sampled_from(PRICES)),
                "quantity": draw(st.integers(1, 3)),
            }
        )
    return events


MALFORMED = [
    b"{not json",
    b'{"event_type":"view","ts":"never","user_id":1,"product_id":"p1"}',
    b'{"event_type":"view","ts":1709280000000,"product_id":"p1"}',
    b'{"event_type":"purchase","ts":1709280000000,"user_id":1,"product_id":"p1","price":-3}',
    b'\xff\xfe',
]


@st.composite
def scenario(draw):
    names = [f"part-{i}" for i in range(draw(st.integers(1, 3)))]
    per_partition_events = {name: draw(partition_events(name)) for name in names}
    per_partition_batches = {}
    records_by_partition = {}
    for name, events in per_partition_events.items():
        records = [json.dumps(e).encode() for e in events]
        # Sprinkle malformed records at random positions.
        for bad in draw(st.lists(st.sampled_from(MALFORMED), max_size=3)):
            records.insert(draw(st.integers(0, len(records))), bad)
        records_by_partition[name] = records
        sizes = draw(st.lists(st.integers(1, 12), max_size=8))
        per_partition_batches[name] = batches(
            records, partition=name, sizes=sizes, as_lines=draw(st.booleans()), last=draw(st.booleans())
        )
    order = draw(st.permutations([n for n, bs in per_partition_batches.items() for _ in bs]))
    window_ms = draw(st.sampled_from([10_000, 30_000, 60_000]))
    return {
        "events": per_partition_events,
        "records": records_by_partition,
        "items": interleave(per_partition_batches, order),
        "window_ms": window_ms,
        "slide_ms": draw(st.sampled_from([None, *(s for s in (5_000, 10_000, 15_000, 20_000) if window_ms % s == 0)])),
        "dedup": draw(st.booleans()),
        "lateness_ms": draw(st.sampled_from([0, 5_000, 30_000, 120_000])),
        "shards": draw(st.integers(1, 4)),
        "top_n": draw(st.integers(1, 4)),
        "source_batch": draw(st.integers(1, 3)),
    }


def events_frame(events: list[dict]) -> pl.DataFrame:
    """What the decoder should make of valid events (computed independently)."""
    rows = []
    for event in events:
        ts = event["ts"]
        if isinstance(ts, str):
            ts = int(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000)
        rows.append({**event, "ts": ts, "product_id": str(event["product_id"])})
    schema = {"event_id": pl.String, "event_type": pl.String, "ts": pl.Int64, "product_id": pl.String,
              "price": pl.Float64, "quantity": pl.Int64}
    return pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=schema)


def run_scenario(case: dict, workers: int) -> CapturedOutputs:
    captured = CapturedOutputs()
    config = Settings(
        analytics=("trends",),
        window_ms=case["window_ms"],
        window_slide_ms=case["slide_ms"],
        dedup=case["dedup"],
        allowed_lateness_ms=case["lateness_ms"],
        shards=case["shards"],
        top_n=case["top_n"],
    )
    flow = dmp.build(
        config,
        source=TestingSource(case["items"], batch_size=case["source_batch"]),
        partitions=list(case["events"]),
        outputs=captured.outputs(),
    )
    run(flow, workers=workers)
    return captured


def check(case: dict, captured: CapturedOutputs) -> None:
    want = oracle.expected(
        {name: events_frame(events) for name, events in case["events"].items()},
        case["window_ms"],
        case["lateness_ms"],
        case["top_n"],
        slide_ms=case["slide_ms"],
        horizon_ms=case["lateness_ms"] + case["window_ms"] if case["dedup"] else None,
        tolerance_ms=SCREEN.future_tolerance_ms,
        earliest_ms=SCREEN.earliest_event_ms,
    )
    for stream in ("trends", "leaderboard"):
        got = captured.sorted_frame(stream)
        if want[stream].height == 0:
            assert got.height == 0, stream
        else:
            assert_frame_equal(got, want[stream], check_dtypes=False)
    late = captured.frame("late")
    if want["late"].height == 0:
        assert late.height == 0
    else:
        got_late = late.select(want["late"].columns).sort(want["late"].columns)
        assert_frame_equal(got_late, want["late"], check_dtypes=False)

    dead = captured.frame("dead_letters")
    malformed = sum(len(records) - len(case["events"][name]) for name, records in case["records"].items())
    assert dead.height == malformed
    summary = captured.summary
    assert summary is not None and summary["reconciled"]
    assert summary["records"] == sum(len(r) for r in case["records"].values())
    assert summary["late"] == want["late"].height
    assert summary["duplicates"] == want["duplicates"]


COMMON = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(scenario())
def test_one_worker_matches_batch_recomputation(case):
    check(case, run_scenario(case, workers=1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.sampled_from([2, 3]))
def test_several_workers_match_batch_recomputation(case, workers):
    check(case, run_scenario(case, workers=workers))
