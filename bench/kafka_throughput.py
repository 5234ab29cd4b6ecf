"""Kafka in, Kafka out: flows.dmp against the ceilings and against per-event Bytewax.

    python bench/kafka_throughput.py                     # 2M events, one worker each
    python bench/kafka_throughput.py --events 500000

Starts a local broker (Tansu, from the dev extra), publishes the simulator's
events once to a 4-partition topic (keyed by user), then measures on that
same topic, each in a fresh process with one worker, timing only the work,
once per round in shuffled order (the median of ``--rounds``, 3 by default):

(a) the raw consume rate with confluent-kafka alone;
(b) consume + JSON parse into Polars frames: the ceiling of any JSON pipeline;
(c) Kafka -> flows.dmp -> Kafka (trends, leaderboard, late, dead letters);
(d) the idiomatic Bytewax pipeline from its docs: KafkaSource -> json.loads
    -> key_on product -> fold_window (EventClock, TumblingWindower) -> KafkaSink.

(e) the same flows.dmp query from a JSON Lines file of the same events to
    files: the file path the Kafka path is held against.

Prints events/s of each and the ratios (c)/(b) and (c)/(d); and the
CPU-seconds per 1M events of each (user + sys of the measuring process,
librdkafka's threads included; the broker's own CPU is not) and the ratio of
(c) to (e) (target: Kafka at most 1.3x the file run). Times and CPU are of
the work alone: the interpreter's start-up, the imports and building the
flow (about a CPU-second, the same whatever the input) are left out.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.per_event import (  # noqa: E402
    TREND_SLOTS,
    add_to_trend,
    measured,
    merge,
    parse,
    run_child,
    shuffled_rounds,
)

TOPIC = "bench-events"
PARTITIONS = 4
WINDOW = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def consume_all(bootstrap: str, on_batch) -> int:
    """Read the whole topic with one consumer per partition's worth of assignment; return messages."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from flows.engine.sources.kafka import CONSUMER_DEFAULTS

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.partition.eof": True,
                         **CONSUMER_DEFAULTS})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    ended, count = set(), 0
    while len(ended) < PARTITIONS:
        messages = consumer.consume(50_000, 0.1)
        values = []
        for message in messages:
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            values.append(message.value())
        count += len(values)
        if values:
            on_batch(values)
    consumer.close()
    return count


def raw_consume(bootstrap: str) -> dict[str, float]:
    with measured() as run:
        consume_all(bootstrap, lambda values: None)
    return run


def consume_and_parse(bootstrap: str) -> dict[str, float]:
    import polars as pl

    schema = {name: pl.String for name in ("event_id", "event_type", "ts", "user_id", "product_id")}
    schema.update({"price": pl.Float64, "quantity": pl.Int64})
    with measured() as run:
        consume_all(bootstrap, lambda values: pl.read_ndjson(io.BytesIO(b"\n".join(values)), schema=schema))
    return run


def file_columnar(path: str) -> dict[str, float]:
    from bytewax.testing import run_main

    from flows import dmp
    from flows.engine.config import Settings

    with tempfile.TemporaryDirectory(prefix="bench-files-") as out:
        flow = dmp.build(Settings(source="file", input=path, sinks=("files",), out_dir=out, summary=False,
                                  analytics=("trends",)))
        with measured() as run:
            run_main(flow)
        return run


def columnar(bootstrap: str) -> dict[str, float]:
    from bytewax.testing import run_main

    from flows import dmp
    from flows.engine.config import KafkaSettings, Settings

    kafka = KafkaSettings(brokers=bootstrap, topic=TOPIC, bounded=True, output_prefix=f"bench-dmp-{time.time_ns()}.")
    flow = dmp.build(Settings(source="kafka", sinks=("kafka",), kafka=kafka, summary=False, analytics=("trends",)))
    with measured() as run:
        run_main(flow)
    return run


def per_event(bootstrap: str) -> dict[str, float]:
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
    from bytewax.testing import run_main

    from flows.tools.broker import LocalBroker  # noqa: F401 - same environment as the others

    flow = Dataflow("per_event_kafka")
    messages = op.input("read", flow, KafkaSource([bootstrap], [TOPIC], tail=False, batch_size=10_000))
    events = op.filter_map("parse", messages, lambda message: parse(message.value))
    keyed = op.key_on("by_product", events, lambda e: str(e["product_id"]))
    clock = EventClock(lambda e: e["ts"], wait_for_system_duration=timedelta(seconds=30))
    totals = fold_window("trends", keyed, clock, TumblingWindower(WINDOW, EPOCH), lambda: [0] * TREND_SLOTS,
                         add_to_trend, merge)
    out = op.map("to_message", totals.down,
                 lambda kv: KafkaSinkMessage(kv[0].encode(),
                                             json.dumps({"window": kv[1][0], "totals": kv[1][1]}).encode()))
    op.output("write", out, KafkaSink([bootstrap], "bench-per-event.trends"))
    with measured() as run:
        run_main(flow)
    return run


VARIANTS = {
    "(a) consume only": raw_consume,
    "(b) consume + JSON parse": consume_and_parse,
    "(c) Kafka -> flows.dmp -> Kafka": columnar,
    "(d) per-event Bytewax": per_event,
    "(e) file -> flows.dmp -> files": file_columnar,
}


def publish(bootstrap: str, path: Path) -> None:
    from flows.tools.produce import main as produce

    produce(["--brokers", bootstrap, "--topic", TOPIC, "--file", str(path), "--quiet"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="each variant once per round, in shuffled order")
    parser.add_argument("--run", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--on", help=argparse.SUPPRESS)  # the broker, or (e) the events file
    args = parser.parse_args()
    if args.run:
        print(json.dumps(VARIANTS[args.run](args.on)))
        return

    from bench.make_events import write_events
    from flows.tools.broker import LocalBroker

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as scratch, \
            LocalBroker(log_path=Path(tempfile.gettempdir()) / "bench-tansu.log") as broker:
        broker.create_topic(TOPIC, PARTITIONS)
        for stream in ("trends", "leaderboard", "late", "dead_letters"):
            broker.create_topic(f"bench-dmp.{stream}", 3)
        broker.create_topic("bench-per-event.trends", 3)
        started = time.perf_counter()
        # Clean JSON, so (b), the ceiling of parsing, is defined; dead letters are tested elsewhere.
        # One file of events, published for (a)-(d) and read by (e).
        events = write_events(Path(scratch) / "events.jsonl", args.events)
        publish(broker.bootstrap, events)
        print(f"published {args.events:,} events to {TOPIC} ({PARTITIONS} partitions) in "
              f"{time.perf_counter() - started:.1f}s; one worker each, median of {args.rounds} shuffled rounds:")
        runs = shuffled_rounds(list(VARIANTS), args.rounds, lambda name: run_child(
            __file__, name, "--on", str(events) if VARIANTS[name] is file_columnar else broker.bootstrap))
    rates, cpus = {}, {}
    for name, done in runs.items():
        seconds = statistics.median(run["seconds"] for run in done)
        cpus[name] = statistics.median(run["cpu"] for run in done)
        rates[name] = args.events / seconds
        print(f"  {name:<34} {seconds:8.2f} s {rates[name]:>12,.0f} events/s "
              f"{cpus[name] / args.events * 1e6:8.2f} CPU-s/1M")
    _a, b, c, d, _e = rates.values()
    kafka, files = cpus["(c) Kafka -> flows.dmp -> Kafka"], cpus["(e) file -> flows.dmp -> files"]
    print(f"  (c) / (b)  {c / b:6.0%}   (target >= 70%)")
    print(f"  (c) / (d)  {c / d:6.1f}x  (target >= 10x)")
    print(f"  CPU (c) / (e)  {kafka / files:5.2f}x  (target <= 1.3x)")


if __name__ == "__main__":
    main()
