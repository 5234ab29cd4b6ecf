"""Read a topic back: result rows as a table of their stream's columns, dead letters with their reason.

    python -m flows.tools.consume dmp.leaderboard --limit 20          # the topic as it is now, then stop
    python -m flows.tools.consume dmp.trends --key 1001 --format json  # one product's rows, as JSON Lines
    python -m flows.tools.consume dmp.dead_letters --follow           # new dead letters as they come; Ctrl-C

In: a topic (``--brokers``, by default ``DMP_KAFKA_BROKERS``; security and
timeouts from the ``DMP_KAFKA_*`` settings, as for the flows). Out, on
stdout: for ``<DMP_KAFKA_OUTPUT_PREFIX><stream>`` (``--prefix``), one line
per row under the stream's declared columns (``--format json``: each row's
JSON, as the sink wrote it); for the dead letters, each message's partition,
offset, key, ``dmp.reason`` and ``dmp.source`` headers and the record as
text (a truncated one says its original size); for any other topic,
partition, offset, key and value. Messages come partition by partition in
offset order as the broker serves them.

Without ``--follow`` it reads every partition from its start to its end
and stops; ``--follow`` keeps printing new messages, from the end (or with
``--from-beginning``, from the start). Tansu's "latest offset" is wrong, so
against the local broker ``--follow`` alone may begin with older messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from flows.engine.analytics import registry
from flows.engine.config import KafkaSettings
from flows.engine.errors import ConfigError, DmpError
from flows.engine.kafka_client import STATISTICS_MS, Silence, brokers_of, client_config, connect
from flows.engine.streams import OutputStream
from flows.tools import exit_with

WIDEST = 40  # characters a table cell shows before it is cut with "…"
DEAD_LETTER_COLUMNS = ("partition", "offset", "key", "reason", "source", "record")
PLAIN_COLUMNS = ("partition", "offset", "key", "value")


def stream_of(topic: str, prefix: str) -> OutputStream | None:
    """The output stream a topic carries (``<prefix><stream>``), if it is one."""
    if not topic.startswith(prefix):
        return None
    by_name = {declared.name: declared for declared in registry.streams()}
    return by_name.get(topic[len(prefix):])


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "backslashreplace")


def record(message: Message, stream: OutputStream | None) -> dict:
    """One message as a row: a stream's row as its JSON says, else what the message carries."""
    if stream is not None and stream.original is None:
        payload = message.value()
        assert payload is not None, "a stream's sink writes every row as a JSON value"
        return json.loads(payload)
    row = {"partition": message.partition(), "offset": message.offset(), "key": _text(message.key())}
    if stream is None:
        return {**row, "value": _text(message.value())}
    # confluent_kafka types headers() as what produce() takes (a dict, too); a consumed message has a list.
    listed = cast("list[tuple[str, bytes | None]]", message.headers() or [])
    headers = {name: _text(value) for name, value in listed}
    value = _text(message.value())
    if "dmp.original_size" in headers:
        value = f"({int(headers['dmp.original_size']):,} bytes, cut to {len(message.value() or b''):,}) {value}"
    return {**row, "reason": headers.get("dmp.reason", ""), "source": headers.get("dmp.source", ""),
            "record": value, "headers": headers}


def columns_of(stream: OutputStream | None) -> Sequence[str]:
    if stream is None:
        return PLAIN_COLUMNS
    return DEAD_LETTER_COLUMNS if stream.original is not None else stream.column_names


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        text = ",".join(_cell(v) for v in value)
    elif isinstance(value, float) and value.is_integer():
        text = f"{value:.1f}"
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= WIDEST else text[: WIDEST - 1] + "…"


class Table:
    """Rows under their columns; widths fit the first rows shown (later cells are cut to them)."""

    def __init__(self, columns: Sequence[str]):
        self.columns = list(columns)
        self.widths: list[int] | None = None

    def lines(self, rows: Sequence[dict]) -> Iterator[str]:
        cells = [[_cell(row.get(column)) for column in self.columns] for row in rows]
        if self.widths is None:
            self.widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(self.columns)]
            yield self._line(self.columns)
            yield self._line(["-" * width for width in self.widths])
        for line in cells:
            yield self._line(line)

    def _line(self, cells: Sequence[str]) -> str:
        assert self.widths is not None
        shown = [cell if len(cell) <= width else cell[: width - 1] + "…" for cell, width in zip(cells, self.widths)]
        return "  ".join(cell.ljust(width) for cell, width in zip(shown, self.widths)).rstrip()


def read(settings: KafkaSettings, topic: str, *, from_beginning: bool, follow: bool, limit: int | None,
         key: str | None) -> Iterator[list[Message]]:
    """The topic's messages in batches (of ``key`` only, ``limit`` at most), until its end unless ``follow``."""
    _admin, metadata = connect(settings)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        known = ", ".join(sorted(t for t in metadata.topics if not t.startswith("__"))) or "none"
        raise ConfigError(f"topic {topic!r} does not exist on {settings.brokers} (topics: {known})")
    partitions = sorted(metadata.topics[topic].partitions)
    brokers = brokers_of(settings)
    silence = Silence(brokers)
    consumer = Consumer({
        **client_config(settings, brokers), "group.id": "dmp-consume", "enable.auto.commit": False,
        "enable.partition.eof": not follow, "stats_cb": silence.statistics, "statistics.interval.ms": STATISTICS_MS,
    })
    start = OFFSET_END if follow and not from_beginning else OFFSET_BEGINNING
    consumer.assign([TopicPartition(topic, p, start) for p in partitions])
    wanted = key.encode() if key is not None else None
    ended: set[int] = set()
    left = limit
    try:
        while (follow or len(ended) < len(partitions)) and (left is None or left > 0):
            batch = []
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is None:
                    if wanted is None or message.key() == wanted:
                        batch.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())  # type: ignore[arg-type]  # Optional in confluent_kafka; EOF names one
                else:
                    raise DmpError(f"reading {topic!r}: {error.str()}")
            if not batch:
                silence.check(lambda: f"reading {topic!r}")
                continue
            silence.busy()
            if left is not None:
                batch, left = batch[:left], left - len(batch[:left])
            yield batch
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.tools.consume", description=__doc__.splitlines()[0])
    parser.add_argument("topic", help="e.g. dmp.leaderboard or dmp.dead_letters")
    parser.add_argument("--brokers", default=os.environ.get("DMP_KAFKA_BROKERS"),
                        help="bootstrap servers, host:port[,...] (default: $DMP_KAFKA_BROKERS)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="with --follow, start at the beginning, not the end (without it, the whole topic is read)")
    parser.add_argument("--follow", action="store_true", help="keep printing new messages until Ctrl-C")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many messages")
    parser.add_argument("--key", default=None, help="only messages with this key (e.g. 1001, 2024-03-01T10:00:00Z#1)")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--prefix", default=os.environ.get("DMP_KAFKA_OUTPUT_PREFIX", "dmp."),
                        help="output topics are <prefix><stream> (default: $DMP_KAFKA_OUTPUT_PREFIX or dmp.)")
    args = parser.parse_args(argv)
    stream = stream_of(args.topic, args.prefix)
    table = Table(columns_of(stream))
    try:
        if not args.brokers:
            raise ConfigError("no brokers: pass --brokers host:port or set DMP_KAFKA_BROKERS")
        if args.limit is not None and args.limit < 1:
            raise ConfigError(f"--limit {args.limit}: must be at least 1")
        settings = dataclasses.replace(KafkaSettings.read(os.environ), brokers=args.brokers)
        shown = 0
        for batch in read(settings, args.topic, from_beginning=args.from_beginning, follow=args.follow,
                          limit=args.limit, key=args.key):
            if args.format == "json" and stream is not None and stream.original is None:
                lines: Iterator[str] = (_text(message.value()) for message in batch)  # the row as the sink wrote it
            elif args.format == "json":
                lines = (json.dumps(record(message, stream), ensure_ascii=False) for message in batch)
            else:
                lines = table.lines([record(message, stream) for message in batch])
            for line in lines:
                print(line, flush=args.follow)
            shown += len(batch)
        if not shown and args.format == "table":
            print(f"(no messages{' with key ' + repr(args.key) if args.key is not None else ''} on {args.topic!r})",
                  file=sys.stderr)
    except DmpError as ex:
        exit_with("consume", ex)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # | head
        sys.stderr.close()


if __name__ == "__main__":
    main()
