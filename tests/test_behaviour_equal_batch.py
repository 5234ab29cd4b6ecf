"""Sessions, recommendations and triggers, streamed through flows.dmp, equal a batch recomputation.

Random events over 1-2 partitions (with retried events and malformed
records), random batch splits and partition interleavings, random lateness,
1 or 2 workers: the ``sessions``, ``recommendations`` and ``triggers``
streams equal :mod:`tests.behaviour_oracle` exactly (scores to 1e-12).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from bytewax.testing import TestingSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import dmp
from flows.engine.config import Settings
from flows.engine.decode import decode_batch
from flows.engine.sources.files import FileSource
from flows.engine.testing import CapturedOutputs, batches, drain, interleave, run
from tests import behaviour_oracle as behaviour
from tests import window_oracle as oracle

BASE_MS = 1_709_280_000_000  # 2024-03-01T08:00:00Z
MINUTE = 60_000
MALFORMED = [b"{not json", b'{"event_type":"purchase","ts":"never","user_id":1,"product_id":"p1"}']


@st.composite
def partition_events(draw, name: str) -> list[dict]:
    """One partition's events: shoppers browsing, carting and buying over a few hours, a little out of order."""
    clock = BASE_MS + draw(st.integers(0, 60)) * 1000
    events: list[dict] = []
    for index in range(draw(st.integers(0, 40))):
        if events and draw(st.integers(0, 12)) == 0:  # a retry of an earlier event
            events.append(dict(draw(st.sampled_from(events))))
            continue
        clock += draw(st.sampled_from([0, 5_000, 60_000, 4 * MINUTE, 11 * MINUTE, 40 * MINUTE]))
        ts = clock - draw(st.sampled_from([0, 0, 0, 3_000, 2 * MINUTE, 30 * MINUTE]))
        events.append({
            "event_id": f"{name}-{index}" if draw(st.integers(0, 5)) else None,
            "event_type": draw(st.sampled_from(["view", "view", "add_to_cart", "add_to_cart", "remove_from_cart",
                                                "purchase"])),
            "ts": ts,
            "user_id": draw(st.sampled_from(["u1", "u2", "u3", "u4"])),
            "product_id": draw(st.sampled_from(["p1", "p2", "p3", "p4", "p5"])),
            "price": draw(st.sampled_from([1.25, 10.0, 99.99, 400.0])),
            "quantity": draw(st.integers(1, 3)),
        })
    return events


@st.composite
def scenario(draw):
    names = [f"part-{i}" for i in range(draw(st.integers(1, 2)))]
    events = {name: draw(partition_events(name)) for name in names}
    per_partition = {}
    for name, evs in events.items():
        records = [json.dumps({k: v for k, v in e.items() if v is not None}).encode() for e in evs]
        for bad in draw(st.lists(st.sampled_from(MALFORMED), max_size=1)):
            records.insert(draw(st.integers(0, len(records))), bad)
        sizes = draw(st.lists(st.integers(1, 12), max_size=6))
        per_partition[name] = batches(records, partition=name, sizes=sizes)
    order = draw(st.permutations([n for n, items in per_partition.items() for _ in items]))
    return {
        "events": events,
        "items": interleave(per_partition, order),
        "partitions": names,
        "lateness": draw(st.sampled_from([0, 60_000, 20 * MINUTE])),
        "gap": draw(st.sampled_from([5 * MINUTE, 30 * MINUTE])),
        "basket_limit": draw(st.sampled_from([2, 3, 20])),
        "neighbours": draw(st.sampled_from([1, 2, 50])),
        "cooldown": draw(st.sampled_from([0, 30 * MINUTE, 3 * 3_600_000])),
        "workers": draw(st.sampled_from([1, 2])),
    }


def run_dmp(case: dict) -> tuple[Settings, CapturedOutputs]:
    config = Settings(
        analytics=("sessions", "recommendations", "triggers"),
        allowed_lateness_ms=case["lateness"],
        session_gap_ms=case["gap"],
        reco_basket_limit=case["basket_limit"],
        reco_neighbours=max(case["neighbours"], 1),
        reco_top_k=1 if case["neighbours"] < 3 else 3,
        reco_interval_ms=15 * MINUTE,
        reco_half_life_ms=2 * 3_600_000,
        high_value_threshold=500.0,
        high_value_window_ms=2 * 3_600_000,
        high_value_slide_ms=30 * MINUTE,
        trigger_cooldown_ms=case["cooldown"],
        shards=3,
        summary=False,
    )
    captured = CapturedOutputs()
    flow = dmp.build(config, source=TestingSource(case["items"]), partitions=case["partitions"],
                     outputs=captured.outputs())
    run(flow, workers=case["workers"])
    return config, captured


def rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts() if frame.height else []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_sessions_recommendations_and_triggers_equal_the_batch_recomputation(case):
    config, captured = run_dmp(case)
    stamped = oracle.stamp(case["events"], config.allowed_lateness_ms, config.dedup_horizon_ms,
                           config.future_tolerance_ms, config.earliest_event_ms)
    sessions = behaviour.sessions(stamped, config.session_gap_ms, config.reco_basket_limit)

    # Sessions: every one, released in (close, user, start) order.
    assert rows(captured.frame("sessions")) == [behaviour.session_output(s) for s in sessions]

    # Triggers: both kinds through the cooldown; the order within one release may differ, so compare sorted.
    candidates = behaviour.cart_candidates(sessions) + behaviour.spend_candidates(
        stamped, config.high_value_window_ms, config.high_value_slide_ms, round(config.high_value_threshold * 1e6))
    expected = behaviour.triggers(candidates, config.trigger_cooldown_ms)
    key = lambda r: (r["triggered_at"], r["user_id"], r["trigger_type"])  # noqa: E731
    assert sorted(rows(captured.frame("triggers")), key=key) == sorted(expected, key=key)

    # Recommendations: the lists that changed, interval by interval, in order.
    want = behaviour.recommendations(sessions, config.reco_interval_ms, config.reco_half_life_ms,
                                     config.reco_top_k, config.reco_neighbours)
    got = rows(captured.frame("recommendations"))
    assert [(r["as_of"], r["product_id"], r["related"]) for r in got] == [
        (r["as_of"], r["product_id"], r["related"]) for r in want
    ]
    for g, w in zip(got, want):
        assert g["scores"] == pytest.approx(w["scores"], rel=1e-12, abs=1e-15)


REES46 = Path(__file__).resolve().parent / "data" / "rees46-2019-oct-sample.csv"


def rees46_events() -> list[dict]:
    """The sample's events as the decoder reads them (decoding is tested on its own)."""
    part = FileSource([REES46], batch_bytes=8192).build_part("read", str(REES46), None)
    frames = [decode_batch(raw, ()).events for raw in drain(part)]
    events = pl.concat(frames).with_columns(pl.col("event_type").cast(pl.String), pl.lit(None, pl.String).alias("event_id"))
    return events.select("event_id", "event_type", "ts", "user_id", "product_id", "price", "quantity").to_dicts()


@pytest.mark.parametrize("workers", [1, 2])
def test_rees46_sessions_equal_the_batch_recomputation(workers):
    config = Settings(analytics=("sessions",), summary=False, shards=4)
    captured = CapturedOutputs()
    source = FileSource([REES46], batch_bytes=8192)
    run(dmp.build(config, source=source, partitions=source.partitions(), outputs=captured.outputs()), workers=workers)
    events = rees46_events()
    stamped = oracle.stamp({str(REES46): events}, config.allowed_lateness_ms, config.dedup_horizon_ms,
                           config.future_tolerance_ms, config.earliest_event_ms)
    sessions = behaviour.sessions(stamped, config.session_gap_ms, config.reco_basket_limit)
    assert len(events) == 1000 and len(sessions) > 100
    assert rows(captured.frame("sessions")) == [behaviour.session_output(s) for s in sessions]
