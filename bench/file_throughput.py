"""flows.dmp against the idiomatic per-event Bytewax pipeline, on one JSON Lines file.

    python bench/file_throughput.py                  # 2M events, one worker each
    python bench/file_throughput.py --events 500000  # a quicker look

Both compute trends (per product and 1-minute window: views, carts,
purchases, units, revenue) and a top-10 leaderboard per window from the
same file of simulated events, with one Bytewax worker, each in a fresh
process. Only the dataflow's execution is timed (not interpreter start-up,
generating the file or reading it from disk: the page cache is warmed
first). flows.dmp runs ``--runs`` times and its median counts; this VM's
timings vary by 10-20% run to run. Prints events/s of each and the ratio.

The per-event pipeline is what Bytewax's documentation teaches: file lines
-> ``json.loads`` -> ``key_on`` product -> ``fold_window`` with an
``EventClock`` and a ``TumblingWindower``, then a second window step for
the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events  # noqa: E402
from bench.per_event import TREND_SLOTS, add_to_trend, merge, parse, run_child  # noqa: E402

WINDOW = timedelta(minutes=1)
LATENESS = timedelta(seconds=30)
TOP_N = 10
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def columnar(path: Path, out: Path):
    from flows import dmp
    from flows.engine.config import Settings

    # The foundation's query: trends and the leaderboard (what the per-event pipeline computes), to files as the
    # per-event pipeline writes them: the embedded default's results database would add its own cost.
    return dmp.build(Settings(source="file", input=str(path), out_dir=out, analytics=("trends",), sinks=("files",)))


def per_event(path: Path, out: Path):
    import bytewax.operators as op
    from bytewax.connectors.files import FileSink, FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window

    def window_start(window_id: int) -> datetime:
        return EPOCH + window_id * WINDOW

    flow = Dataflow("per_event")
    lines = op.input("read", flow, FileSource(path))
    events = op.filter_map("parse", lines, parse)
    keyed = op.key_on("by_product", events, lambda e: str(e["product_id"]))
    clock = EventClock(lambda e: e["ts"], wait_for_system_duration=LATENESS)
    windower = TumblingWindower(length=WINDOW, align_to=EPOCH)
    totals = fold_window("trends", keyed, clock, windower, lambda: [0] * TREND_SLOTS, add_to_trend, merge)
    rows = op.map(
        "trend_row",
        totals.down,
        lambda kv: {"window_start": window_start(kv[1][0]).isoformat(), "product_id": kv[0],
                    "views": kv[1][1][1], "carts": kv[1][1][2], "purchases": kv[1][1][4],
                    "units": kv[1][1][5], "revenue": kv[1][1][6] / 1_000_000},
    )
    trend_lines = op.map("trend_json", rows, lambda r: (r["product_id"], json.dumps(r)))
    op.output("write_trends", trend_lines, FileSink(out / "trends.jsonl"))

    sold = op.filter("sold", rows, lambda r: r["purchases"] > 0)
    by_window = op.key_on("one_board", sold, lambda _: "board")
    board_clock = EventClock(lambda r: datetime.fromisoformat(r["window_start"]), wait_for_system_duration=WINDOW)
    boards = fold_window(
        "leaderboard", by_window, board_clock, windower, list, lambda acc, r: [*acc, r], lambda a, b: a + b
    )
    ranked = op.flat_map(
        "rank",
        boards.down,
        lambda kv: [
            (kv[0], json.dumps({**r, "rank": i + 1}))
            for i, r in enumerate(sorted(kv[1][1], key=lambda r: (-r["revenue"], -r["units"], r["product_id"]))[:TOP_N])
        ],
    )
    op.output("write_leaderboard", ranked, FileSink(out / "leaderboard.jsonl"))
    return flow


VARIANTS = {"flows.dmp (columnar)": columnar, "per-event Bytewax": per_event}


def run_one(variant: str, path: Path) -> float:
    """Build and run one variant in this process; return the execution time."""
    from bytewax.testing import run_main

    with tempfile.TemporaryDirectory() as out:
        flow = VARIANTS[variant](path, Path(out))
        started = time.perf_counter()
        run_main(flow)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of flows.dmp (the median is reported)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--run", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:  # child process: one variant, report seconds as JSON
        print(json.dumps({"seconds": run_one(args.run, args.path)}))
        return

    path = ensure_events(args.data / f"events-{args.events}.jsonl", args.events)
    with open(path, "rb") as handle:  # warm the page cache: time processing, not the disk
        while handle.read(64 << 20):
            pass
    print(f"input: {path} ({args.events:,} events, {path.stat().st_size / 1e6:,.0f} MB), 1 worker each")
    rates = {}
    for variant, runs in zip(VARIANTS, (args.runs, 1)):  # the per-event run takes over a minute
        seconds = sorted(run_child(__file__, variant, "--path", str(path))["seconds"] for _ in range(runs))
        median = seconds[len(seconds) // 2]
        rates[variant] = args.events / median
        spread = f"  (runs: {', '.join(f'{s:.2f}' for s in seconds)} s)" if runs > 1 else ""
        print(f"  {variant:<22} {median:8.2f} s {rates[variant]:>12,.0f} events/s{spread}", flush=True)
    columnar_rate, per_event_rate = rates.values()
    print(f"  ratio                  {columnar_rate / per_event_rate:8.1f}x")


if __name__ == "__main__":
    main()
