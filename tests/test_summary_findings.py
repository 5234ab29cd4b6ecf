"""The run summary's findings: what each stream found equals a batch recomputation from its rows, whatever the batching.

A small simulated shop (two partitions, planted bundles, abandoners and big
spenders, malformed and late records; short time-series buckets, so that
half an hour of event time has anomalies) runs through ``flows.dmp`` three
ways: in the simulator's own batches, in 500-record batches, and in random
batches interleaved at random over two workers. Every run's findings are
the same, and equal each finding over all of its stream's rows at once, and
plain recomputations of the headline figures from those rows. Partials
merge in any grouping and order; an interrupted summary has its findings;
and the printed lines are as the formats say.
"""

from __future__ import annotations

import random
from typing import Any

import polars as pl
import pytest
from bytewax.testing import TestingSource

from flows import dmp
from flows.engine.analytics import registry
from flows.engine.analytics.timeseries import ANOMALIES
from flows.engine.analytics.triggers import TRIGGERS
from flows.engine.config import Settings, SimSettings
from flows.engine.findings import Finding
from flows.engine.present import reason_kind
from flows.engine.sources.simulator import SimSource
from flows.engine.summary import RunSummary, Tally, format_summary
from flows.engine.testing import CapturedOutputs, batches, interleave, read_source, run

MINUTE = 60_000
SIM = SimSettings(events=40_000, events_per_second=20, users=3_000, products=300, partitions=2, seed=11,
                  malformed_rate=0.003, straggler_rate=0.003)
SETTINGS = Settings(
    sim=SIM, monitor_interval_ms=0, funnel_window_ms=5 * MINUTE, session_gap_ms=3 * MINUTE, reco_interval_ms=5 * MINUTE,
    ts_bucket_ms=MINUTE, ts_ma=3, ts_period=5, ts_seasons=1, ts_acf_window=6, anomaly_window=5, anomaly_z=3.0,
    anomaly_min_events=1, high_value_threshold=300.0, high_value_window_ms=10 * MINUTE,
    high_value_slide_ms=5 * MINUTE, trigger_cooldown_ms=10 * MINUTE,
)
FOUND = [s.name for s in registry.streams(SETTINGS) if s.finding is not None]


def simulated_records() -> dict[str, list[bytes]]:
    """Each simulator partition's records (JSON Lines), in order."""
    return {name: [line for item in items for line in item.payload.split(b"\n") if line]
            for name, items in read_source(SimSource(SIM)).items()}


def run_shop(items: list | None = None, workers: int = 1) -> CapturedOutputs:
    """The shop through flows.dmp: the simulator itself, or ``items`` (raw batches) from a testing source."""
    captured = CapturedOutputs()
    if items is None:
        flow = dmp.build(SETTINGS, outputs=captured.outputs())
    else:
        flow = dmp.build(SETTINGS, source=TestingSource(items), partitions=[f"sim-{i}" for i in range(SIM.partitions)],
                         outputs=captured.outputs())
    run(flow, workers=workers)
    return captured


@pytest.fixture(scope="module")
def runs() -> dict[str, CapturedOutputs]:
    records = simulated_records()
    even = {name: batches(lines, partition=name, size=500) for name, lines in records.items()}
    rng = random.Random(3)
    uneven = {name: batches(lines, partition=name, sizes=[rng.randint(1, 2_000) for _ in range(60)])
              for name, lines in records.items()}
    order = [name for name, items in uneven.items() for _ in items]
    rng.shuffle(order)
    return {
        "simulator": run_shop(),
        "500 a batch": run_shop(interleave(even, [name for items in even.values() for _ in items for name in even])),
        "random batches, 2 workers": run_shop(interleave(uneven, order), workers=2),
    }


@pytest.fixture(scope="module")
def shop(runs) -> CapturedOutputs:
    return runs["500 a batch"]


def finding(stream: str) -> Finding:
    declared = registry.stream(stream).finding
    assert declared is not None
    return declared


def test_every_stream_with_a_finding_is_in_the_summary_in_declared_order(shop):
    assert list(shop.summary["findings"]) == FOUND
    assert {"funnel", "sessions", "triggers", "anomalies", "recommendations", "dead_letters", "late"} <= set(FOUND)


def test_the_streams_came_in_many_output_batches(shop):
    """Else merging would go untested: the fixture's 500-record batches close windows as they go."""
    batched = {name: len([1 for _, rows in items if rows.height]) for name, items in shop.items.items()}
    assert min(batched[name] for name in ("trends", "sessions", "funnel", "recommendations", "triggers")) > 3, batched


def test_every_stream_found_rows(shop):
    found = shop.summary["findings"]
    assert found["anomalies"]["anomalies"] > 0 and found["triggers"]["per_type"]["high_value_customer"]["fired"] > 0
    assert found["dead_letters"]["reasons"] and found["late"]["events"] and found["recommendations"]["pairs"]


@pytest.mark.parametrize("stream", FOUND)
def test_a_finding_equals_its_finding_of_all_the_rows_at_once(shop, stream):
    rows = shop.typed(stream)
    assert shop.summary["findings"][stream] == finding(stream).result(finding(stream).partial(rows))


@pytest.mark.parametrize("stream", FOUND)
def test_findings_do_not_depend_on_batches_interleaving_or_workers(runs, stream):
    found = {name: captured.summary["findings"][stream] for name, captured in runs.items()}
    assert found["simulator"] == found["500 a batch"] == found["random batches, 2 workers"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("stream", FOUND)
def test_partials_merge_in_any_grouping_and_order(shop, stream, seed):
    """Rows cut anywhere, partials merged in random groups in random order: the same result (and schema)."""
    rng, declared = random.Random(seed), finding(stream)
    rows = shop.typed(stream)
    cuts = sorted(rng.sample(range(rows.height + 1), min(rows.height + 1, 6)))
    partials = [declared.partial(rows[a:b]) for a, b in zip([0, *cuts], [*cuts, rows.height])]
    schema = declared.partial(rows.clear()).schema
    assert all(p.schema == schema for p in partials)
    while len(partials) > 1:
        rng.shuffle(partials)
        take = rng.randint(2, len(partials))
        partials = [declared.fold(partials[:take]), *partials[take:]]
        assert partials[0].schema == schema
    assert declared.result(partials[0]) == declared.result(declared.partial(rows))


# -- the headline figures, recomputed plainly from the rows ---------------------------


def sorted_counts(frame: pl.DataFrame, key: str) -> list[tuple[Any, int]]:
    counts = frame.group_by(key).len()
    return sorted(counts.iter_rows(), key=lambda kv: (-kv[1], kv[0]))


def test_the_funnel_adds_up_the_all_categories_rows(shop):
    rows, found = shop.frame("funnel"), shop.summary["findings"]["funnel"]
    overall = rows.filter(pl.col("category") == "*")
    assert (found["windows"], found["viewed"], found["carted"], found["purchased"]) == (
        overall.height, overall["viewed"].sum(), overall["carted"].sum(), overall["purchased"].sum())
    assert found["conversion"] == overall["purchased"].sum() / overall["viewed"].sum()
    categories = rows.filter(pl.col("category") != "*").group_by("category").agg(pl.col("viewed", "purchased").sum())
    big = [(c, p / v) for c, v, p in categories.iter_rows() if v >= 0.01 * found["viewed"]]
    assert found["best_category"]["category"] == min(big, key=lambda cr: (-cr[1], cr[0]))[0]
    assert found["worst_category"]["category"] == max(big, key=lambda cr: (-cr[1], cr[0]))[0]


def test_sessions_count_converted_and_median_length_to_the_second(shop):
    rows, found = shop.frame("sessions"), shop.summary["findings"]["sessions"]
    seconds = sorted(round(s * 1000) // 1000 for s in rows["duration_s"])
    assert (found["sessions"], found["converted"], found["abandoned_cart"]) == (
        rows.height, rows["converted"].sum(), rows["abandoned_cart"].sum())
    assert found["median_duration_s"] == seconds[(len(seconds) + 1) // 2 - 1]
    assert found["mean_events"] == rows["events"].sum() / rows.height
    assert found["revenue"] == pytest.approx(rows["revenue"].sum(), abs=1e-6)


def test_triggers_are_counted_per_type(shop):
    rows, found = shop.frame("triggers"), shop.summary["findings"]["triggers"]
    assert [(kind, t["fired"]) for kind, t in found["per_type"].items()] == sorted_counts(rows, "trigger_type")
    for kind, t in found["per_type"].items():
        assert t["value"] == pytest.approx(rows.filter(pl.col("trigger_type") == kind)["value"].sum(), abs=1e-6)


def test_anomalies_are_counted_per_series_and_the_strongest_shown(shop):
    rows, found = shop.frame("anomalies"), shop.summary["findings"]["anomalies"]
    assert found["anomalies"] == rows.height
    series = sorted(rows.group_by("metric", "category").len().iter_rows(), key=lambda r: (-r[2], r[0], r[1]))
    assert [(s["metric"], s["category"], s["anomalies"]) for s in found["per_series"]] == series
    strongest = sorted(rows.iter_rows(named=True),
                       key=lambda r: (-abs(r["score"]), r["bucket_start"], r["metric"], r["category"]))[:3]
    assert [(a["bucket_start"], a["metric"], a["category"], a["score"]) for a in found["strongest"]] == [
        (r["bucket_start"], r["metric"], r["category"], r["score"]) for r in strongest]


def test_recommended_pairs_sum_their_scores_over_every_list(shop):
    rows, found = shop.frame("recommendations"), shop.summary["findings"]["recommendations"]
    totals: dict[tuple[str, str], list] = {}
    for product, related, scores in rows.select("product_id", "related", "scores").iter_rows():
        for other, score in zip(related, scores):
            total = totals.setdefault(tuple(sorted((product, other))), [0, 0])
            total[0], total[1] = total[0] + 1, total[1] + round(score * 1e9)
    top = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))[:3]
    assert found["pairs"] == len(totals)
    assert [(tuple(p["products"]), p["lists"]) for p in found["most_recommended"]] == [(k, v[0]) for k, v in top]


def test_trends_and_the_leaderboard(shop):
    trends, found = shop.frame("trends"), shop.summary["findings"]
    per_window = trends.group_by("window_start").agg(pl.sum_horizontal("views", "carts", "removes", "purchases").sum())
    busiest = min(per_window.iter_rows(), key=lambda r: (-r[1], r[0]))
    assert (found["trends"]["windows"], found["trends"]["busiest"]["window_start"],
            found["trends"]["busiest"]["events"]) == (per_window.height, *busiest)
    firsts = sorted_counts(shop.frame("leaderboard").filter(pl.col("rank") == 1), "product_id")[:3]
    assert [(p["product_id"], p["windows"]) for p in found["leaderboard"]["most_often_first"]] == firsts


def test_late_quality_and_dead_letters(shop):
    found = shop.summary["findings"]
    late = shop.typed("late")
    assert list(found["late"]["per_analytic"].items()) == sorted_counts(late, "analytic")
    behind = late.select((pl.col("watermark") - pl.col("ts")).dt.total_milliseconds().max()).item()
    assert found["late"]["most_behind_s"] == behind / 1000
    quality = shop.frame("quality")
    assert {name: q["windows"] for name, q in found["quality"]["per_analytic"].items()} == dict(
        sorted_counts(quality.filter(pl.col("report") == "at_close"), "analytic"))
    kinds = shop.frame("dead_letters").select(reason_kind(pl.col("reason")))
    assert [(r["reason"], r["count"]) for r in found["dead_letters"]["reasons"]] == sorted_counts(kinds, "reason")
    assert sum(r["count"] for r in found["dead_letters"]["reasons"]) == shop.summary["dead_letters"]


# -- the summary step, and the printed lines -------------------------------------------


def trigger_rows(*kinds: str) -> pl.DataFrame:
    return TRIGGERS.conform(pl.DataFrame({
        "trigger_id": [f"t{i}" for i in range(len(kinds))], "trigger_type": list(kinds),
        "user_id": ["u"] * len(kinds), "triggered_at": [0] * len(kinds), "value": [1.5] * len(kinds),
        "since": [0] * len(kinds)}).with_columns(pl.col("triggered_at", "since").cast(pl.Datetime("ms", "UTC"))))


def test_an_interrupted_summary_has_the_findings_so_far_and_a_resumed_one_goes_on():
    partial = finding("triggers").partial
    summary = RunSummary(3, None, streams=[TRIGGERS, ANOMALIES])
    summary.on_batch([Tally(findings={"triggers": partial(trigger_rows("cart_abandoned", "cart_abandoned"))})])
    so_far = summary.summary(interrupted=True)
    assert so_far["interrupted"] and so_far["findings"] == {
        "triggers": {"fired": 2, "per_type": {"cart_abandoned": {"fired": 2, "value": 3.0}}},
        "anomalies": {"anomalies": 0, "per_series": [], "strongest": []},
    }
    resumed = RunSummary(3, summary.snapshot(), streams=[TRIGGERS, ANOMALIES])
    resumed.on_batch([Tally(findings={"triggers": partial(trigger_rows("high_value_customer"))})])
    [done], _ = resumed.on_eof()
    assert "interrupted" not in done and done["findings"]["triggers"]["per_type"] == {
        "cart_abandoned": {"fired": 2, "value": 3.0}, "high_value_customer": {"fired": 1, "value": 1.5}}


def test_many_partials_are_merged_as_they_come():
    partial = finding("triggers").partial(trigger_rows("cart_abandoned"))
    summary = RunSummary(3, None, streams=[TRIGGERS])
    summary.on_batch([Tally(findings={"triggers": partial}) for _ in range(1_000)])
    assert len(summary.state.findings["triggers"]) < 300
    assert summary.summary()["findings"]["triggers"]["fired"] == 1_000


def test_a_finding_of_a_stream_the_summary_was_not_given_is_an_error():
    with pytest.raises(KeyError, match="'triggers'"):
        RunSummary(3, None).on_batch([Tally(findings={"triggers": finding("triggers").partial(trigger_rows())})])


SUMMARY = {
    "records": 10, "events": 9, "dead_letters": 1, "duplicates": 0, "late": 1, "quarantined": 0, "on_time": 8,
    "reconciled": True, "revenue": 12.5, "top_products": [], "dead_letter_inputs": [],
    "findings": {
        "dead_letters": {"reasons": [{"reason": "not JSON", "count": 1}]},
        "quarantine": {"reasons": []},
        "sessions": {"sessions": 4, "converted": 1, "abandoned_cart": 2, "revenue": 12.5,
                     "revenue_per_converted": 12.5, "median_duration_s": 95, "mean_duration_s": 3_725.5,
                     "mean_events": 2.25},
        "triggers": {"fired": 0, "per_type": {}},
        "anomalies": {"anomalies": 0, "per_series": [], "strongest": []},
        "no_such_stream": {"anything": 1},
    },
}


def test_findings_are_printed_under_their_stream_names_aligned_with_the_counts():
    assert format_summary(SUMMARY).splitlines()[6:] == [
        "  dead_letters     1 not JSON",
        "  sessions         4 closed: 25.0% bought (12.50 each), 50.0% left a cart",
        "                   median length 1m 35s, mean 1h 02m, 2.2 events on average",
        "  triggers         none fired",
        "  anomalies        none",
    ]


@pytest.mark.parametrize(("stream", "found", "lines"), [
    ("dead_letters", {"reasons": [{"reason": r, "count": n} for r, n in (("a", 5), ("b", 3), ("c", 2), ("d", 1))]},
     ["5 a, 3 b, 3 of 2 other kinds"]),
    ("dead_letters", {"reasons": [{"reason": r, "count": n} for r, n in (("a", 5), ("b", 3), ("c", 2))]},
     ["5 a, 3 b, 2 c"]),
    ("late", {"events": 3, "per_analytic": {"trends": 2, "funnel": 1}, "most_behind_s": 90.5},
     ["trends 2, funnel 1; at most 1m 30s behind the watermark"]),
    ("late", {"events": 0, "per_analytic": {}, "most_behind_s": None}, []),
    ("quality", {"per_analytic": {"trends": {"windows": 1_440, "reports_after_close": 2, "dropped_after_idle": 0},
                                  "funnel": {"windows": 24, "reports_after_close": 0, "dropped_after_idle": 3}}},
     ["trends 1,440 windows, funnel 24; 2 reports after close, 3 events DROPPED after idle"]),
    ("trends", {"windows": 0}, ["no windows"]),
    ("funnel", {"windows": 2, "window_s": 3600.0, "viewed": 1_000, "carted": 100, "purchased": 25,
                "best_category": {"category": "shoes", "viewed": 400, "purchased": 20},
                "worst_category": {"category": "hats", "viewed": 600, "purchased": 5}},
     ["viewed 1,000 -> carted 100 (10.0%) -> bought 25 (25.0%): 2.5% conversion",
      "users per 1h window; best shoes 5.0%, worst hats 0.8%"]),
    ("triggers", {"fired": 3, "per_type": {"cart_abandoned": {"fired": 2, "value": 1_234.5},
                                           "high_value_customer": {"fired": 1, "value": 5_000.0}}},
     ["cart_abandoned 2 worth 1,234.50, high_value_customer 1 worth 5,000.00"]),
    ("anomalies", {"anomalies": 2, "per_series": [{"metric": "revenue", "category": "*", "anomalies": 1},
                                                  {"metric": "orders", "category": "shoes", "anomalies": 1}],
                   "strongest": [{"bucket_start": "2024-01-05T12:30:00Z", "metric": "revenue", "category": "*",
                                  "actual": 8_074.77, "expected": 1_925.5465, "score": 6.4036}]},
     ["2 in 2 series: revenue 1, orders (shoes) 1",
      "strongest 2024-01-05 12:30 revenue 8,074.77, expected 1,925.55 (score +6.4)"]),
    ("recommendations", {"pairs": 9, "most_recommended": [{"products": ["a", "b"], "lists": 26, "mean_score": 0.9},
                                                          {"products": ["a", "c"], "lists": 3, "mean_score": 0.5}]},
     ["pairs a + b (26 lists), a + c (3)"]),
])
def test_a_finding_prints_its_few_lines(stream, found, lines):
    assert finding(stream).lines(found) == lines
