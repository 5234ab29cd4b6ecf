"""The peer benchmark: the same windowed query on flows.dmp, Flink SQL, Pathway, Quix Streams and per-event Bytewax.

    .venv/bin/python bench/peers/run.py                           # 2M + 1k events, 5 rounds, every system
    .venv/bin/python bench/peers/run.py --systems dmp,flink --events 100000 --rounds 1

In: the simulator's events (``bench/make_events.py``: the 2M-event JSON
Lines file, reused when present, and a 1,000-event file for the start-up
cost). Out: one table on stdout (date, machine and every version in its
header), ready to paste into a README; each run's log in
``bench/data/peers/logs/``.

Each round runs every system on both files once, in a shuffled order; each
run is a fresh process tree, measured whole (``measure.py``): wall clock,
CPU-seconds (user + sys, every process of the tree, JVMs included) and
peak summed RSS. The table shows medians over the rounds: events/s (wall,
the big file), CPU-s per 1M events, marginal CPU-s per 1M (the big run's
median CPU minus the small run's, per 1M events of the difference), the
small run's wall and CPU (start-up), the peak RSS, and each system's rows
checked against flows.dmp's (``results.py``). The peers install into their
own virtualenvs on first use (``envs.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events
from bench.peers import results
from bench.peers.measure import Usage, become_subreaper, run_tree
from bench.peers.systems import DEFAULT, SYSTEMS, System

DATA = ROOT / "bench" / "data"
loads: list[float] = []  # the 1-minute load average as each run started
LOGS = DATA / "peers" / "logs"


@dataclass
class Tally:
    """What one system's runs measured, per input size."""

    usages: dict[int, list[Usage]] = field(default_factory=dict)
    checks: list[results.Check] = field(default_factory=list)
    broker_cpu_s: list[float] = field(default_factory=list)  # Quix: Tansu's CPU during the big runs
    failures: list[str] = field(default_factory=list)

    def median(self, size: int, attribute: str) -> float:
        return statistics.median(getattr(usage, attribute) for usage in self.usages[size])


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores ({model}), {memory / 2**20:.0f} GiB, Linux {platform.release()}"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=False,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (uncommitted changes)" if dirty else "")


CALIBRATION = "import time\nx = 0\nfor i in range(10_000_000):\n    x += i\nprint(time.process_time())"


def calibrate() -> float:
    """CPU-s of a fixed pure-Python loop in a fresh interpreter: how fast this machine is just now."""
    done = subprocess.run([sys.executable, "-c", CALIBRATION], check=True, capture_output=True, text=True)
    return float(done.stdout)


def warm(path: Path) -> None:
    """Read the file once, so every system reads it from the page cache."""
    with open(path, "rb") as handle:
        while handle.read(64 << 20):
            pass


def run_once(system: System, events: Path, count: int, log: Path) -> tuple[Usage, results.Rows | None, dict]:
    """One measured run; its rows (``None`` if it failed) and what else it noted."""
    with tempfile.TemporaryDirectory(prefix=f"peers-{system.key}-") as tmp:
        out = Path(tmp) / "out"
        with system.launch(events, count, out, log) as launch:
            usage = run_tree(launch.argv, env=launch.env, cwd=ROOT, log=log, keep=launch.keep)
        rows = None
        if usage.returncode == 0:
            try:
                rows = results.read(out, system.money)
            except (OSError, ValueError, KeyError) as ex:
                with open(log, "a") as handle:
                    handle.write(f"\nbench: reading its rows failed: {ex!r}\n")
        return usage, rows, launch.notes


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-lines:])


def measure(systems: list[System], sizes: dict[int, Path], rounds: int, order: random.Random,
            tallies: dict[str, Tally]) -> None:
    """Run the rounds, adding to ``tallies``; after each round print the table so far.

    An interrupt (Ctrl-C, SIGTERM) ends the current run's whole tree and
    leaves ``tallies`` with the runs finished so far.
    """
    big = max(sizes)
    reference: results.Rows | None = None
    pending: list[tuple[str, results.Rows]] = []  # big runs waiting for flows.dmp's rows
    LOGS.mkdir(parents=True, exist_ok=True)
    loads.clear()
    for number in range(1, rounds + 1):
        runs = [(system, size) for system in systems for size in sizes]
        order.shuffle(runs)
        for system, size in runs:
            log = LOGS / f"{system.key}-{size}.log"
            loads.append(os.getloadavg()[0])
            usage, rows, notes = run_once(system, sizes[size], size, log)
            tally = tallies[system.key]
            line = (f"  round {number}/{rounds}  {system.label:<24} {size:>11,} events  {usage.wall_s:7.1f} s wall "
                    f"{usage.cpu_s:8.1f} CPU-s {usage.peak_rss_mb:7.0f} MB")
            if rows is None:
                tally.failures.append(f"round {number}, {size:,} events: exit {usage.returncode}, see {log}")
                print(f"{line}  FAILED (exit {usage.returncode}); the end of {log}:\n{tail(log)}", flush=True)
                continue
            tally.usages.setdefault(size, []).append(usage)
            if size == big:
                if "broker_cpu_s" in notes:
                    tally.broker_cpu_s.append(notes["broker_cpu_s"])
                if system.key == "dmp" and reference is None:
                    reference = rows
                pending.append((system.key, rows))
                if reference is None:
                    line += "  rows: checked once flows.dmp has run"
                else:
                    for key, waiting in pending:
                        tallies[key].checks.append(results.check(waiting, reference, big))
                        if key != system.key:
                            print(f"    (earlier {SYSTEMS[key].label} rows: {describe(tallies[key].checks[-1])})")
                    pending.clear()
                    line += f"  rows: {describe(tally.checks[-1])}"
            print(line, flush=True)
        print(f"  after round {number}/{rounds}:")
        for row in table(systems, tallies, sizes):
            print("    " + row)
        print(flush=True)


def describe(check: results.Check) -> str:
    return "= flows.dmp" if check.same else "differ from flows.dmp"


def _range(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def check_cells(tally: Tally, is_reference: bool) -> list[str]:
    """Trends and leaderboard: rows equal / differing / missing / extra; events not counted (ranges over rounds)."""
    if not tally.checks:
        return ["n/a", "n/a", "n/a"]
    cells = []
    for stream in ("trends", "leaderboard"):
        comparisons = [getattr(check, stream) for check in tally.checks]
        if is_reference and all(c.same for c in comparisons):
            cells.append(f"{_range([c.equal for c in comparisons])} rows (ref.)")
            continue
        cells.append(" / ".join(_range([getattr(c, part) for c in comparisons])
                                for part in ("equal", "differ", "missing", "extra")))
    cells.append(_range([check.uncounted for check in tally.checks]))
    return cells


def table(systems: list[System], tallies: dict[str, Tally], sizes: dict[int, Path]) -> list[str]:
    big, small = max(sizes), min(sizes)
    header = ["system", "events/s", "CPU-s/1M", "marginal", "1k wall s", "1k CPU-s", "peak MB",
              "trends = / ≠ / missing / extra", "leaderboard = / ≠ / missing / extra", "uncounted"]
    if small != 1000:
        header[4:6] = [f"{small:,} wall s", f"{small:,} CPU-s"]
    rows = [header]
    for system in systems:
        tally = tallies[system.key]
        if big not in tally.usages or small not in tally.usages:
            rows.append([system.label, "no runs", *[""] * (len(header) - 2)])
            continue
        wall, cpu = tally.median(big, "wall_s"), tally.median(big, "cpu_s")
        small_wall, small_cpu = tally.median(small, "wall_s"), tally.median(small, "cpu_s")
        rows.append([
            system.label,
            f"{big / wall:,.0f}",
            f"{cpu / big * 1e6:.2f}",
            f"{(cpu - small_cpu) / (big - small) * 1e6:.2f}",
            f"{small_wall:.2f}",
            f"{small_cpu:.2f}",
            f"{tally.median(big, 'peak_rss_mb'):,.0f}",
            *check_cells(tally, system.key == "dmp"),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def notes(systems: list[System], tallies: dict[str, Tally], big: int) -> list[str]:
    lines = []
    for system in systems:
        tally = tallies[system.key]
        lines.append(f"  {system.label}: {system.how}")
        if tally.broker_cpu_s:
            broker = statistics.median(tally.broker_cpu_s) / big * 1e6
            lines.append(f"    + the Tansu broker's own CPU during its runs (not in the table): "
                         f"{broker:.2f} CPU-s per 1M")
        distinct = Counter(tally.checks)
        if len(distinct) > 1:
            lines.append(f"    results varied over rounds: {len(distinct)} different outcomes "
                         f"in {len(tally.checks)} runs")
        for failure in tally.failures:
            lines.append(f"    FAILED: {failure}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(DEFAULT),
                        help=f"comma-separated, of {', '.join(SYSTEMS)} (default: {','.join(DEFAULT)})")
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the big file")
    parser.add_argument("--small", type=int, default=1000, help="events in the start-up file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="of the shuffled order (default: random)")
    args = parser.parse_args()
    unknown = [key for key in args.systems.split(",") if key not in SYSTEMS]
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    systems = [SYSTEMS[key] for key in args.systems.split(",")]
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)

    become_subreaper()
    # Ctrl-C or a SIGTERM ends the rounds but still prints the table; a shell that starts the
    # driver in the background leaves SIGINT ignored, so both are set here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.perf_counter()
    speed_before = calibrate()
    sizes = {count: ensure_events(DATA / f"events-{count}.jsonl", count) for count in (args.events, args.small)}
    for path in sizes.values():
        warm(path)
    versions = {system.key: system.versions(system.interpreter()) for system in systems}  # installs what is missing
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"peer benchmark, {when}: {args.rounds} rounds (shuffled, seed {seed}), medians; "
          f"python bench/peers/run.py --systems {args.systems} --events {args.events} --rounds {args.rounds}",
          flush=True)
    tallies = {system.key: Tally() for system in systems}
    try:
        measure(systems, sizes, args.rounds, random.Random(seed), tallies)
    except KeyboardInterrupt:
        print("\ninterrupted: the table below has the runs done so far", flush=True)
    speed_after = calibrate()
    rounds = min((len(usages) for tally in tallies.values() for usages in tally.usages.values()), default=0)

    big_path = sizes[args.events]
    print()
    print(f"peer benchmark, {when}, commit {commit()}")
    load = f"median {statistics.median(loads):.1f}, max {max(loads):.1f}" if loads else "no runs"
    print(f"machine: {machine()}; Python {platform.python_version()}; load average (1 min) as runs started: "
          f"{load}; a fixed Python loop took "
          f"{speed_before:.2f} CPU-s before the rounds, {speed_after:.2f} after (other work on the machine slows both)")
    print(f"input: {big_path.relative_to(ROOT)} ({args.events:,} events, {big_path.stat().st_size / 1e6:,.0f} MB) "
          f"and {args.small:,} events for start-up; {rounds} shuffled rounds (of {args.rounds}), medians")
    print("query: per product, tumbling 1-min event-time windows (views, carts, removes, purchases, units, revenue) "
          "+ top 10 per window; watermark = max event time - 30 s")
    for system in systems:
        print(f"  {system.label}: {versions[system.key]}")
    print()
    for line in table(systems, tallies, sizes):
        print(line)
    print()
    print("CPU-s: user + sys of the whole process tree, start-up included; marginal: (big - small) per 1M events; "
          "peak MB: summed RSS of the tree, sampled every 100 ms.")
    print("Rows are checked against flows.dmp's big run (= equal, ≠ same key and other values, missing, extra); "
          "uncounted: input events not in any trends row (late, or in windows never emitted).")
    for line in notes(systems, tallies, args.events):
        print(line)
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
