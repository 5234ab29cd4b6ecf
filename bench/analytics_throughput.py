"""What each analytic, and monitoring, costs: flows.dmp with them, against trends only.

    python bench/analytics_throughput.py                  # 2M events, 3 runs each
    python bench/analytics_throughput.py --events 500000 --runs 1
    python bench/analytics_throughput.py --only monitoring   # the monitoring variants

Runs flows.dmp over the same JSON Lines file of simulated events (the one
``bench/file_throughput.py`` uses), one worker, each run in a fresh
process, timing only the dataflow, with ``DMP_ANALYTICS`` set to: trends
only (the foundation's figure), trends plus each of sessions, funnel,
recommendations, triggers and time series with anomalies, and everything;
and trends only with monitoring off, at its default interval (10s) and
every second. Prints the median events/s of each and its ratio to trends
only, all measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events  # noqa: E402
from bench.per_event import run_child  # noqa: E402

EVERYTHING = ("trends", "sessions", "funnel", "recommendations", "triggers", "timeseries", "anomalies")
# Variant: (analytics, monitoring interval in ms; 10s is the default).
VARIANTS = {
    "trends only": (("trends",), 10_000),
    "+ sessions": (("trends", "sessions"), 10_000),
    "+ funnel": (("trends", "funnel"), 10_000),
    "+ recommendations": (("trends", "recommendations"), 10_000),
    "+ triggers": (("trends", "triggers"), 10_000),
    "+ timeseries": (("trends", "timeseries", "anomalies"), 10_000),
    "everything": (EVERYTHING, 10_000),
    "no monitoring": (("trends",), 0),
    "monitoring every 1s": (("trends",), 1_000),
}
GROUPS = {"analytics": [v for v in VARIANTS if "monitoring" not in v],
          "monitoring": ["trends only", "no monitoring", "monitoring every 1s"]}


def run_one(variant: str, path: Path) -> float:
    from bytewax.testing import run_main

    from flows import dmp
    from flows.engine.config import Settings

    with tempfile.TemporaryDirectory() as out:
        analytics, interval = VARIANTS[variant]
        settings = Settings(source="file", input=str(path), out_dir=Path(out), analytics=analytics,
                            monitor_interval_ms=interval)
        flow = dmp.build(settings)
        started = time.perf_counter()
        run_main(flow)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--only", choices=list(GROUPS), help="run one group of variants")
    parser.add_argument("--run", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps({"seconds": run_one(args.run, args.path)}))
        return

    path = ensure_events(args.data / f"events-{args.events}.jsonl", args.events)
    with open(path, "rb") as handle:  # warm the page cache
        while handle.read(64 << 20):
            pass
    print(f"input: {path} ({args.events:,} events), flows.dmp, 1 worker, median of {args.runs}")
    rates = {}
    for variant in GROUPS[args.only] if args.only else VARIANTS:
        seconds = sorted(run_child(__file__, variant, "--path", str(path))["seconds"] for _ in range(args.runs))
        median = seconds[len(seconds) // 2]
        rates[variant] = args.events / median
        ratio = rates[variant] / rates["trends only"]
        print(f"  {variant:<20} {median:7.2f} s {rates[variant]:>11,.0f} events/s   {ratio:5.2f} of trends only"
              f"   (runs: {', '.join(f'{s:.2f}' for s in seconds)} s)", flush=True)


if __name__ == "__main__":
    main()
