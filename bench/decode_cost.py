"""What decoding one 16 MB chunk of simulated events costs, and what its screens add.

    python bench/decode_cost.py                 # 7 rounds, all event fields
    python bench/decode_cost.py --fields ""     # only the required fields

Times :func:`flows.engine.decode.decode_batch` on the first 16 MB of the
benchmark file (JSON Lines of the simulator's events, as the file source
reads them) with ``duplicates="first"`` (the default) and ``"reject"``, and,
in the same rounds, the fast path's screens on their own: the search for a
backslash (no escape, no lone surrogate: all ``"first"`` does on this data)
and the regex pass that looks for fields given twice (what ``"reject"``
adds). Rounds interleave the variants, so a noisy neighbour slows all of
them alike; printed are the minimum and median wall time of each, and the
median CPU time (all threads: Polars uses several), which a crowded machine
inflates less. ``--messages`` decodes the lines as a message list (Kafka's
shape).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chunk-mb", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fields", default=None, help="comma-separated optional fields (default: all)")
    parser.add_argument("--messages", action="store_true", help="decode the chunk's lines as a message list")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    args = parser.parse_args()

    from flows.engine.decode import decode_batch
    from flows.engine.parse import Records
    from flows.engine.schema import RawBatch

    data = ensure_events(args.data / f"events-{args.events}.jsonl", args.events).read_bytes()
    chunk = data[: int(args.chunk_mb * (1 << 20))]
    chunk = chunk[: chunk.rfind(b"\n") + 1]
    payload = chunk.rstrip(b"\n").split(b"\n") if args.messages else chunk
    raw = RawBatch("p", payload, origin="bench")
    optional = None if args.fields is None else tuple(f for f in args.fields.split(",") if f)
    wanted = tuple(decode_batch(raw, optional).events.columns)
    allowing, rejecting = Records(raw, wanted, "first"), Records(raw, wanted, "reject")
    joined = b"\n".join(payload) if args.messages else chunk
    _fields, rows = allowing.parse()
    assert rows is None, "the benchmark chunk should take the fast path"

    variants = {
        "decode_batch": lambda: decode_batch(raw, optional),
        "decode_batch, duplicates='reject'": lambda: decode_batch(raw, optional, duplicates="reject"),
        "  screen, duplicates='first'": lambda: allowing._suspect(joined),
        "  screen, duplicates='reject'": lambda: rejecting._suspect(joined),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            run()
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    lines = chunk.count(b"\n")
    shape = f"{len(payload):,} messages" if args.messages else f"one chunk of {lines:,} lines"
    print(f"{len(chunk) / 1e6:.1f} MB, {shape}, optional fields: {optional if optional is not None else 'all'}")
    base = statistics.median(cpu["decode_batch"])
    print(f"  {'':<36} {'wall min':>10} {'wall median':>12} {'CPU median':>11}")
    for name, times in seconds.items():
        median_cpu = statistics.median(cpu[name])
        print(f"  {name:<36} {min(times) * 1e3:7.1f} ms {statistics.median(times) * 1e3:9.1f} ms "
              f"{median_cpu * 1e3:8.1f} ms  ({median_cpu / base:6.1%} of decode_batch)")


if __name__ == "__main__":
    main()
