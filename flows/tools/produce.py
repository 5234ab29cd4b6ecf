"""Publish shop events to a Kafka topic: simulated, or replayed from files.

    python -m flows.tools.produce --brokers 127.0.0.1:9092 --topic events --sim --events 300000
    python -m flows.tools.produce --brokers 127.0.0.1:9092 --topic events --file data/2019-Oct.csv.gz
    python -m flows.tools.produce ... --sim --events 0 --rate 500      # forever, 500 events/s

``--brokers`` defaults to ``DMP_KAFKA_BROKERS``; the other ``DMP_KAFKA_*``
settings (security, timeouts) come from the environment as for the flows.

Each record becomes one message, keyed by its ``user_id`` so a user's
events keep their order (``--key none`` for no key; records without a
user id, e.g. corrupted ones, go without a key). The simulator takes the
same ``--seed`` / event count as ``DMP_SIM_*``; files are JSON Lines or
REES46 CSV, read as-is and streamed. Shows progress on stderr and ends with
the count and each partition's end offset (usable as DMP_KAFKA_END_OFFSETS).
The producer is idempotent and never drops a message: a full local queue
is drained and retried, and any delivery failure ends the run with an error.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import sys
import time
from collections.abc import Iterator

import polars as pl
from confluent_kafka import Producer

from flows.engine.config import KafkaSettings, SimSettings
from flows.engine.errors import ConfigError, DmpError
from flows.engine.kafka_client import Silence, brokers_of
from flows.engine.schema import RawBatch
from flows.engine.sinks.kafka import await_acknowledgements, produce, producer_config
from flows.engine.sources import FileSource, SimSource
from flows.engine.sources.files import expand_inputs
from flows.engine.sources.kafka import topic_partitions
from flows.tools import exit_with


def raw_batches(source: SimSource | FileSource) -> Iterator[RawBatch]:
    """Every batch of every partition, taking a batch from each partition in turn."""
    parts = [source.build_part("produce", name, None) for name in source.partitions()]
    while parts:
        for part in list(parts):
            try:
                yield from part.next_batch()
            except StopIteration:
                parts.remove(part)


def records(batch: RawBatch) -> list[bytes]:
    lines = bytes(batch.payload).split(b"\n")  # type: ignore[arg-type]
    return [line.rstrip(b"\r") for line in lines if line.strip()]


def user_keys(batch: RawBatch, lines: list[bytes]) -> list[bytes | None]:
    """Each record's user id (None where there is none, e.g. a corrupted record)."""
    if batch.format == "csv":
        column = (batch.csv_header or ()).index("user_id")
        keys: list[bytes | None] = []
        for line in lines:
            fields = next(csv.reader([line.decode("utf-8", "replace")]), [])
            keys.append(fields[column].encode() if len(fields) > column and fields[column] else None)
        return keys
    try:  # the usual case: every line is JSON, one read of just the user ids
        found = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema={"user_id": pl.String})["user_id"]
        if found.len() != len(lines):
            raise ValueError("lines and rows differ")
    except Exception:
        texts = pl.Series([line.decode("utf-8", "replace") for line in lines], dtype=pl.String)
        found = texts.str.json_path_match("$.user_id")  # null where the record is not JSON
    return [key.encode() if key else None for key in found.to_list()]


class Publisher:
    """An idempotent producer that never drops: full queue -> poll and retry."""

    def __init__(self, settings: KafkaSettings, topic: str):
        self.topic = topic
        self.silence = Silence(brokers_of(settings))
        # Every delivery report is wanted here: they give the end offsets.
        self.producer = Producer({**producer_config(settings, self.silence), "delivery.report.only.error": False})
        self.failures: list[str] = []
        self.end_offsets: dict[int, int] = {}
        self.sent = 0

    def publish(self, value: bytes, key: bytes | None) -> None:
        if not len(self.producer):
            self.silence.busy()
        produce(self.producer, self.topic, value, key, self._delivered, silence=self.silence, doing=self._doing)
        self.sent += 1

    def _doing(self) -> str:
        return f"publishing to {self.topic!r}: {self.sent:,} records sent, {len(self.producer):,} not acknowledged"

    def _delivered(self, error, message) -> None:
        if error is not None:
            self.failures.append(str(error))
        else:
            partition = message.partition()
            self.end_offsets[partition] = max(self.end_offsets.get(partition, 0), message.offset() + 1)

    def flush(self) -> None:
        await_acknowledgements(self.producer, self.silence, self._doing)
        if self.failures:
            msg = f"publishing to {self.topic!r} failed: {self.failures[0]} ({len(self.failures)} failures)"
            raise DmpError(msg)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.tools.produce", description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("DMP_KAFKA_BROKERS"),
                        help="bootstrap servers, host:port[,...] (default: $DMP_KAFKA_BROKERS)")
    parser.add_argument("--topic", default="events")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--sim", action="store_true", help="publish the built-in simulator's events")
    what.add_argument("--file", help="JSON Lines / REES46 CSV path or glob (comma-separated for several)")
    parser.add_argument("--events", type=int, default=300_000, help="simulated events; 0 = forever")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--malformed-rate", type=float, default=SimSettings().malformed_rate)
    parser.add_argument("--start", default=None, help="simulated event time of the first event (ISO-8601 or now)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second; 0 = as fast as possible")
    parser.add_argument("--key", choices=["user_id", "none"], default="user_id")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)

    try:
        if not args.brokers:
            raise ConfigError("no brokers: pass --brokers host:port or set DMP_KAFKA_BROKERS")
        settings = dataclasses.replace(KafkaSettings.read(os.environ), brokers=args.brokers, topic=args.topic)
        partitions = topic_partitions(settings, args.topic)
        if args.sim:
            # One simulator partition: events go out in delivery order and the
            # user keys spread them over the topic's partitions.
            sim = SimSettings(events=args.events, seed=args.seed, partitions=1, malformed_rate=args.malformed_rate)
            if args.start:
                from flows.engine.setting import instant

                sim = SimSettings(**{**sim.__dict__, "start_ms": instant(args.start)})
            source: SimSource | FileSource = SimSource(sim)
            total = args.events or None
        else:
            source = FileSource(expand_inputs(args.file))
            total = None
        publish(Publisher(settings, args.topic), raw_batches(source), args.key, args.rate, total, args.quiet,
                len(partitions))
    except DmpError as ex:
        exit_with("produce", ex)
    except KeyboardInterrupt:
        raise SystemExit("produce: interrupted") from None


def publish(
    publisher: Publisher, batches: Iterator[RawBatch], key: str, rate: float, total: int | None, quiet: bool,
    partitions: int,
) -> None:
    started = time.monotonic()
    shown = 0.0
    for batch in batches:
        lines = records(batch)
        keys = user_keys(batch, lines) if key == "user_id" else [None] * len(lines)
        for value, message_key in zip(lines, keys):
            publisher.publish(value, message_key)
            if rate > 0:
                ahead = publisher.sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    publisher.producer.poll(ahead)
        publisher.producer.poll(0)
        if not quiet and time.monotonic() - shown > 0.25:
            shown = time.monotonic()
            _progress(publisher.sent, total, started)
    publisher.flush()
    elapsed = time.monotonic() - started
    if not quiet:
        _progress(publisher.sent, total, started)
        print(file=sys.stderr)
    ends = ",".join(f"{p}:{o}" for p, o in sorted(publisher.end_offsets.items()))
    print(f"published {publisher.sent:,} records to {publisher.topic!r} ({partitions} partitions) "
          f"in {elapsed:.1f}s; end offsets {ends}")


def _progress(sent: int, total: int | None, started: float) -> None:
    of = f" / {total:,}" if total else ""
    rate = sent / max(time.monotonic() - started, 1e-9)
    print(f"\r  {sent:,}{of} records  ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
