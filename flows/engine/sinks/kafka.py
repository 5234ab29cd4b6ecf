"""Kafka sinks: each output stream to its topic, one message per row.

In: ``(key, frame)`` items of one stream. Out: messages on
``<DMP_KAFKA_OUTPUT_PREFIX><stream>``: each row as JSON, keyed by the row's
natural key as its stream declares it (so a compacted topic keeps every row); dead letters as the original bytes,
unchanged, keyed by the original key, with the reason and origin in headers.

The producer batches (``linger.ms``), is idempotent, and when its local
queue is full it serves delivery reports and retries instead of dropping
(Bytewax's own Kafka sink raises ``BufferError`` there). At the end of every
epoch it waits until everything is acknowledged, so once Bytewax completes
an epoch its output is in Kafka: at least once, without a round trip per
write (Bytewax's sink flushes on every write). A resumed run may repeat the
last epoch's messages; results are deterministic, so the repeats are
byte-identical. A delivery failure stops the flow with the broker's error.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import polars as pl
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flows.engine.config import KafkaSettings
from flows.engine.errors import DmpError
from flows.engine.streams import OutputStream

PRODUCER_DEFAULTS = {
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    # Only failures call back into Python (one call per message costs ~0.3 us).
    "delivery.report.only.error": True,
}

def produce(producer: Producer, topic: str, value: bytes, key: bytes | None, on_delivery: Callable,
            headers: Sequence[tuple[str, bytes]] | None = None) -> None:
    """Queue one message; when the local queue is full, serve delivery reports and retry, never drop."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


class KafkaSinkError(DmpError):
    """Kafka refused or lost a message, or an output topic cannot be had."""


def ensure_topics(settings: KafkaSettings, topics: Sequence[str], partitions: int) -> list[str]:
    """Create the output topics that do not exist yet; return the ones created.

    Production clusters often forbid automatic topic creation, so this is
    done once at start-up, and a refusal stops the run naming the topics.
    """
    admin = AdminClient(settings.client_config())
    try:
        existing = set(admin.list_topics(timeout=15).topics)
    except KafkaException as ex:
        msg = f"DMP_KAFKA_BROKERS={settings.brokers!r}: no answer within 15s ({ex.args[0]})"
        raise KafkaSinkError(msg) from None
    missing = [topic for topic in topics if topic not in existing]
    if not missing:
        return []
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing])
    for topic, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as ex:
            if "TOPIC_ALREADY_EXISTS" in str(ex):
                continue
            msg = f"output topic {topic!r} does not exist and cannot be created ({ex.args[0]}); create {missing}"
            raise KafkaSinkError(msg) from None
    return missing


def row_messages(frame: pl.DataFrame, stream: OutputStream) -> tuple[list[bytes], list[bytes | None]]:
    """Each typed row as a JSON value (as JSON Lines show it), and its natural key as text."""
    typed = stream.conform(frame)
    buffer = io.BytesIO()
    stream.to_json(typed).write_ndjson(buffer)
    values = buffer.getvalue().split(b"\n")[:-1]
    keys = typed.select(stream.key_text().cast(pl.Binary).alias("key"))["key"].to_list()
    return values, keys


def dead_letter_headers(reason: str, source: str) -> list[tuple[str, bytes]]:
    """Reason and origin as headers; a Kafka origin also as topic/partition/offset."""
    headers = [("dmp.reason", reason.encode()), ("dmp.source", source.encode())]
    where, _, offset = source.rpartition("@")
    topic, _, partition = where.rpartition("/")
    if topic and partition.isdigit() and offset.isdigit():
        headers += [("dmp.topic", topic.encode()), ("dmp.partition", partition.encode()),
                    ("dmp.offset", offset.encode())]
    return headers


class KafkaSink(FixedPartitionedSink[pl.DataFrame, None]):
    """One output stream to one topic, through ``parts`` producers spread over workers."""

    def __init__(self, settings: KafkaSettings, stream: OutputStream, parts: int = 2):
        self.settings = settings
        self.stream = stream
        self.topic = f"{settings.output_prefix}{stream.name}"
        self.parts = parts

    def list_parts(self) -> list[str]:
        return [f"{self.topic}#{index}" for index in range(self.parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaSinkPartition:
        return _KafkaSinkPartition(self.settings, self.stream, self.topic)


class _KafkaSinkPartition(StatefulSinkPartition[pl.DataFrame, None]):
    """Produces as frames arrive; waits for acknowledgements once per epoch.

    Bytewax calls :meth:`snapshot` at the end of every epoch, before the
    epoch counts as done; flushing there (and failing loudly if anything was
    refused) is what makes the output at-least-once without paying a
    round trip on every write.
    """

    def __init__(self, settings: KafkaSettings, stream: OutputStream, topic: str):
        self.stream = stream
        self.topic = topic
        self.producer = Producer({**settings.client_config(), **PRODUCER_DEFAULTS})
        self.failures: list[str] = []

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        for frame in values:
            if not frame.height:
                continue
            if self.stream.original is not None:
                self._originals(frame)
            else:
                messages, keys = row_messages(frame, self.stream)
                produce, topic, delivered = self.producer.produce, self.topic, self._delivered
                for value, key in zip(messages, keys):
                    try:
                        produce(topic, value, key, on_delivery=delivered)
                    except BufferError:
                        self._produce(value, key, None)  # the queue is full: the slow, patient way
        self.producer.poll(0)  # serve delivery reports as we go
        self._raise_failures()

    def _originals(self, frame: pl.DataFrame) -> None:
        """Dead letters: the original bytes and key, with the reason and origin in headers."""
        for reason, raw, source, key in frame.select("reason", self.stream.original, "source", "key").iter_rows():
            self._produce(raw, key, dead_letter_headers(reason, source))

    def _produce(self, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> None:
        produce(self.producer, self.topic, value, key, self._delivered, headers)

    def _delivered(self, error, message) -> None:
        if error is not None:
            self.failures.append(str(error))

    def _raise_failures(self) -> None:
        if self.failures:
            msg = f"writing {self.stream.name} to Kafka topic {self.topic!r} failed: {self.failures[0]}"
            raise KafkaSinkError(msg)

    def snapshot(self) -> None:
        remaining = self.producer.flush(60)
        if remaining:
            self.failures.append(f"{remaining} messages not acknowledged within 60 s")
        self._raise_failures()
        return None

    def close(self) -> None:
        self.snapshot()
