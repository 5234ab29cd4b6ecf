"""Write the simulator's events to a JSON Lines file (the benchmarks' input).

    python bench/make_events.py bench/data/events-2m.jsonl --events 2000000

Deterministic: the same arguments write the same bytes. The simulator's
partitions are concatenated in delivery order, one after another, so the
file reads like one long, bounded out-of-order stream. The shop is a busy
one (100 events/s of event time, 20,000 shoppers: the simulator's defaults
before the default became a week of a small shop), so the benchmarks
measure the engine on dense windows, as they always have.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flows.engine.config import SimSettings
from flows.engine.sources import SimSource

BENCH_RATE = 100.0  # events per second of event time
BENCH_USERS = 20_000


def write_events(path: Path, events: int, seed: int = 42, malformed_rate: float = 0.0) -> Path:
    settings = SimSettings(events=events, seed=seed, partitions=1, malformed_rate=malformed_rate,
                           events_per_second=BENCH_RATE, users=BENCH_USERS)
    source = SimSource(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for name in source.partitions():
            part = source.build_part("make_events", name, None)
            while True:
                try:
                    for batch in part.next_batch():
                        out.write(batch.payload)
                except StopIteration:
                    break
    tmp.replace(path)
    return path


def ensure_events(path: Path, events: int) -> Path:
    """The file, generated once and reused while it exists."""
    if not path.exists():
        started = time.perf_counter()
        write_events(path, events)
        print(f"generated {events:,} events into {path} in {time.perf_counter() - started:.1f}s")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    args = parser.parse_args()
    write_events(args.path, args.events, args.seed, args.malformed_rate)
