"""CPU-seconds per million events of flows.dmp: every analytic, trends alone, Kafka in and out.

    .venv/bin/python bench/pipeline_cost.py                       # 2M events, 5 shuffled rounds
    .venv/bin/python bench/pipeline_cost.py --rounds 3 --variants default trends
    .venv/bin/python bench/pipeline_cost.py --before 6ba96e4       # this tree and a revision, side by side

Each variant runs ``python -m bytewax.run flows.dmp`` (one worker, files
out to a scratch directory, monitoring at its default) as a child process
over the same JSON Lines file of simulated events, and over a 1,000-event
file for the start-up cost; the variants run in a shuffled order each round.
Measured: user+sys CPU-seconds of the whole process tree (``RUSAGE_CHILDREN``
around each run), reported per million events and *marginal* per million
events (the 2M run's CPU minus the 1k run's, per million of the difference:
start-up left out). With ``--before REV`` the same variants also run from
that revision (checked out in a temporary ``git worktree``), interleaved in
the same rounds, so "before" and "after" share the machine's conditions.
Prints the medians, side by side, from this one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events  # noqa: E402
from bench.per_event import shuffled_rounds  # noqa: E402

VARIANTS = {
    "default": {},
    "trends": {"DMP_ANALYTICS": "trends"},
}


def cpu_run(settings: dict[str, str], path: Path, tree: Path = ROOT) -> tuple[float, float]:
    """(CPU-seconds, wall seconds) of one flows.dmp run (of the code in ``tree``) over ``path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    with tempfile.TemporaryDirectory(prefix="cost-") as out:
        env.update({"DMP_SOURCE": "file", "DMP_INPUT": str(path), "DMP_OUT_DIR": out, "DMP_SUMMARY": "false",
                    "PYTHONPATH": str(tree), **settings})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=tree, env=env,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"flows.dmp failed ({done.returncode}): {done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="DMP_X=value", help="extra settings for all")
    parser.add_argument("--before", help="also measure this git revision, interleaved")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    data = ROOT / "bench" / "data"
    big = ensure_events(data / f"events-{args.events}.jsonl", args.events)
    small = ensure_events(data / "events-1000.jsonl", 1_000)
    with tempfile.TemporaryDirectory(prefix="cost-tree-") as scratch:
        trees = {"": ROOT}
        if args.before:
            tree = Path(scratch) / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.before], cwd=ROOT, check=True,
                           capture_output=True)
            trees = {f"{args.before} ": tree, "now ": ROOT}
        try:
            runs = measure(trees, args, extra, big, small)
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", trees[f"{args.before} "]], cwd=ROOT,
                               capture_output=True, check=False)
    print(f"input: {big.name} ({args.events:,} events), one worker, median of {args.rounds} shuffled rounds")
    print(f"  {'variant':<18} {'CPU-s':>8} {'CPU-s/1M':>9} {'marginal/1M':>12} {'wall s':>8} {'events/s':>10}")
    for label in trees:
        for variant in args.variants:
            cpu = statistics.median(c for c, _ in runs[(label, variant, "big")])
            wall = statistics.median(w for _, w in runs[(label, variant, "big")])
            base = statistics.median(c for c, _ in runs[(label, variant, "small")])
            marginal = (cpu - base) / (args.events - 1_000) * 1e6
            print(f"  {label + variant:<18} {cpu:>8.2f} {cpu / args.events * 1e6:>9.2f} {marginal:>12.2f} "
                  f"{wall:>8.2f} {args.events / wall:>10,.0f}")


def measure(trees: dict[str, Path], args: argparse.Namespace, extra: dict[str, str], big: Path, small: Path
            ) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    def run(name: tuple[str, str, str]) -> tuple[float, float]:
        label, variant, size = name
        return cpu_run({**VARIANTS[variant], **extra}, big if size == "big" else small, trees[label])

    names = [(label, v, size) for label in trees for v in args.variants for size in ("big", "small")]
    return shuffled_rounds(names, args.rounds, run)


if __name__ == "__main__":
    main()
