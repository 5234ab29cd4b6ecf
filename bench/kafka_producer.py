"""What the Kafka sink's producer settings cost: CPU of Kafka -> flows.dmp -> Kafka per setting, side by side.

    .venv/bin/python bench/kafka_producer.py --events 500000 --rounds 3

Starts a local broker, publishes simulated events once, then runs the trends
query from Kafka to Kafka (as ``bench/kafka_throughput.py``'s (c)) once per
variant of the producer's settings (``PRODUCER_DEFAULTS`` of
:mod:`flows.engine.sinks.kafka` with one or two changed), each in a fresh
process, in shuffled rounds. Prints the median CPU-seconds per 1M events
(user + sys of the flow's process, librdkafka's threads included; the
broker's not) and every run's, so the spread is seen beside the differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kafka_throughput import PARTITIONS, TOPIC, columnar, publish  # noqa: E402
from bench.per_event import run_child, shuffled_rounds  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "ours (lz4, linger 20 ms)": {},
    "no compression": {"compression.type": "none"},
    "zstd": {"compression.type": "zstd"},
    "linger 5 ms": {"linger.ms": 5},
    "linger 100 ms": {"linger.ms": 100},
}


def kafka_to_kafka(bootstrap: str, changes: dict[str, Any]) -> dict[str, float]:
    """One run of ``bench/kafka_throughput.py``'s (c), the producer's settings changed."""
    import flows.engine.sinks.kafka as sink

    sink.PRODUCER_DEFAULTS.update(changes)
    return columnar(bootstrap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--on", help=argparse.SUPPRESS)  # the broker
    args = parser.parse_args()
    if args.run:
        print(json.dumps(kafka_to_kafka(args.on, VARIANTS[args.run])))
        return

    from bench.make_events import write_events
    from flows.tools.broker import LocalBroker

    with tempfile.TemporaryDirectory(prefix="bench-producer-") as scratch, \
            LocalBroker(log_path=Path(tempfile.gettempdir()) / "bench-tansu.log") as broker:
        broker.create_topic(TOPIC, PARTITIONS)
        publish(broker.bootstrap, write_events(Path(scratch) / "events.jsonl", args.events))
        runs = shuffled_rounds(list(VARIANTS), args.rounds,
                               lambda name: run_child(__file__, name, "--on", broker.bootstrap))
    print(f"Kafka -> flows.dmp (trends) -> Kafka, {args.events:,} events, median of {args.rounds} shuffled rounds:")
    for name, done in runs.items():
        per_million = [run["cpu"] / args.events * 1e6 for run in done]
        print(f"  {name:<26} {statistics.median(per_million):6.2f} CPU-s/1M   runs: "
              f"{', '.join(f'{value:.2f}' for value in sorted(per_million))}")


if __name__ == "__main__":
    main()
