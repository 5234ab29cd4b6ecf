"""Kafka sinks: each output stream to its topic, one message per row.

In: ``(key, frame)`` items of one stream. Out: messages on
``<DMP_KAFKA_OUTPUT_PREFIX><stream>``: each row as JSON, keyed by the row's
natural key as its stream declares it (so a compacted topic keeps every
row); dead letters as the original bytes, unchanged, keyed by the original
key, with the reason and origin in headers.

The producer batches (``linger.ms``), is idempotent, and when its local
queue is full it serves delivery reports and retries instead of dropping
(Bytewax's own Kafka sink raises ``BufferError`` there). At the end of every
epoch it waits until everything is acknowledged, so once Bytewax completes
an epoch its output is in Kafka: at least once, without a round trip per
write (Bytewax's sink flushes on every write). A resumed run may repeat the
last epoch's messages; results are deterministic, so the repeats are
byte-identical. A delivery failure stops the flow with the broker's error,
and so do brokers that acknowledge nothing for ``DMP_KAFKA_UNAVAILABLE_TIMEOUT``
while messages wait (one line per interval meanwhile; see
:mod:`flows.engine.kafka_client`).

No message exceeds ``DMP_KAFKA_MESSAGE_MAX_BYTES`` (the producer's
``message.max.bytes``; librdkafka refuses a larger one, and a dead letter of
a 2 MB record used to stop the run, and every resumed run after it): a dead
letter too large is cut to fit, with headers ``dmp.original_size`` and
``dmp.original_sha256`` of the original bytes; a result row too large (none
comes near) goes to the dead-letter topic the same way, with the reason, in
place of its own topic. Neither is ever dropped, nor fatal.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence

import polars as pl
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from flows.engine.config import KafkaSettings
from flows.engine.errors import ConfigError, DmpError
from flows.engine.kafka_client import STATISTICS_MS, Silence, brokers_of, client_config, connect, stops_cleanly
from flows.engine.present import DEAD_LETTERS
from flows.engine.streams import OutputStream

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS = {
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    # Only failures call back into Python (one call per message costs ~0.3 us).
    "delivery.report.only.error": True,
}
# What a message costs the broker beyond its key, value and headers (record
# and batch framing, lz4's worst case on incompressible bytes), with room to spare.
MESSAGE_OVERHEAD = 1024
Headers = Sequence[tuple[str, bytes]]


def producer_config(settings: KafkaSettings, silence: Silence | None = None) -> dict:
    """Our producers' librdkafka settings: quiet, idempotent, ``DMP_KAFKA_MESSAGE_MAX_BYTES`` at most.

    A message waits for the broker up to the unavailable timeout (and at
    least librdkafka's 5 minutes), so that timeout, not the message's, is
    what stops a run when the brokers are gone. With ``silence``, the
    producer's statistics tell it when the brokers last answered.
    """
    config = {**client_config(settings), **PRODUCER_DEFAULTS, "message.max.bytes": settings.message_max_bytes,
              "message.timeout.ms": max(300_000, settings.unavailable_timeout_ms + 60_000)}
    if silence is not None:
        config.update({"stats_cb": silence.statistics, "statistics.interval.ms": STATISTICS_MS})
    return config


def produce(producer: Producer, topic: str, value: bytes, key: bytes | None, on_delivery: Callable,
            headers: Headers | None = None, silence: Silence | None = None,
            doing: Callable[[], str] = lambda: "producing") -> None:
    """Queue one message; when the local queue is full, serve delivery reports and retry, never drop.

    With the producer's ``silence`` (fed by its statistics), a queue that
    stays full while the brokers say nothing for the unavailable timeout raises
    :class:`~flows.engine.kafka_client.KafkaUnavailableError`.
    """
    while True:
        try:
            # confluent_kafka types headers as an invariant list of (str, str | bytes | None), which a list of
            # (str, bytes) pairs (what fitted() makes) is not to mypy, though it is to the client.
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)  # type: ignore[arg-type]
            return
        except BufferError:
            producer.poll(0.05)
            if silence is not None:
                silence.check(doing)


def await_acknowledgements(producer: Producer, silence: Silence, doing: Callable[[], str]) -> None:
    """Until every queued message is acknowledged, or the brokers have said nothing for the unavailable timeout."""
    step = min(1.0, silence.brokers.every)
    while producer.flush(step):
        silence.check(doing)


def fitted(value: bytes, key: bytes | None, headers: Headers, limit: int) -> tuple[bytes, bytes | None, list]:
    """A message of at most ``limit`` bytes: a value too long is cut, its original size and SHA-256 in headers.

    >>> value, key, headers = fitted(b"x" * 20_000, b"k", [("dmp.reason", b"not JSON")], 10_000)
    >>> len(value) <= 10_000 - 1024, dict(headers)["dmp.original_size"]
    (True, b'20000')
    """
    headers = list(headers)
    size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers) + MESSAGE_OVERHEAD
    if size <= limit:
        return value, key, headers
    headers += [("dmp.original_size", str(len(value)).encode()),
                ("dmp.original_sha256", hashlib.sha256(value).hexdigest().encode())]
    if key is not None and len(key) > limit // 4:  # a key this long would leave the value no room
        headers.append(("dmp.original_key_size", str(len(key)).encode()))
        key = key[: limit // 4]
    room = limit - MESSAGE_OVERHEAD - len(key or b"") - sum(len(k) + len(v) for k, v in headers)
    return value[: max(room, 0)], key, headers


class KafkaSinkError(DmpError):
    """Kafka refused or lost a message, or an output topic cannot be had."""


def ensure_topics(settings: KafkaSettings, topics: Sequence[str], partitions: int) -> list[str]:
    """Create the output topics that do not exist yet; return the ones created.

    Production clusters often forbid automatic topic creation, so this is
    done once at start-up, and a refusal stops the run naming the topics.
    """
    admin, metadata = connect(settings)
    existing = set(metadata.topics)
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

    @stops_cleanly
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaSinkPartition:
        return _KafkaSinkPartition(self.settings, self.stream, self.topic)


class _KafkaSinkPartition(StatefulSinkPartition[pl.DataFrame, None]):
    """Produces as frames arrive; waits for acknowledgements once per epoch.

    Bytewax calls :meth:`snapshot` at the end of every epoch, before the
    epoch counts as done; flushing there (and failing loudly if anything was
    refused) is what makes the output at-least-once without paying a
    round trip on every write. :meth:`close` runs in a destructor, where an
    exception aborts the process: it never raises, and waits little.
    """

    def __init__(self, settings: KafkaSettings, stream: OutputStream, topic: str):
        self.settings = settings
        self.stream = stream
        self.topic = topic
        self.dead_letter_topic = f"{settings.output_prefix}{DEAD_LETTERS.name}"
        self.limit = settings.message_max_bytes
        self.brokers = brokers_of(settings)
        self.silence = Silence(self.brokers)
        self.producer = Producer(producer_config(settings, self.silence))
        self.failures: list[str] = []
        self.too_large = 0  # result rows sent to the dead letters for their size

    @stops_cleanly
    def write_batch(self, values: list[pl.DataFrame]) -> None:
        if not len(self.producer):
            self.silence.busy()  # nothing was waiting: an idle producer's brokers had nothing to say
        for frame in values:
            if not frame.height:
                continue
            if self.stream.original is not None:
                self._originals(frame)
            else:
                self._rows(frame)
        self.producer.poll(0)  # serve delivery reports as we go
        self._raise_failures()
        if len(self.producer):
            self.silence.check(self._progress)

    def _rows(self, frame: pl.DataFrame) -> None:
        messages, keys = row_messages(frame, self.stream)
        produce, topic, delivered = self.producer.produce, self.topic, self._delivered
        room = self.limit - MESSAGE_OVERHEAD
        for value, key in zip(messages, keys):
            if len(value) + len(key or b"") > room:
                self._row_too_large(value, key)
                continue
            try:
                produce(topic, value, key, on_delivery=delivered)
            except BufferError:
                self._produce(topic, value, key, None)  # the queue is full: the slow, patient way

    def _row_too_large(self, value: bytes, key: bytes | None) -> None:
        """A result row over the limit goes to the dead letters, cut to fit, never dropped."""
        reason = (f"a {self.stream.name} row of {len(value):,} bytes is over "
                  f"DMP_KAFKA_MESSAGE_MAX_BYTES={self.limit:,}")
        source = f"{self.stream.name}#{(key or b'')[:200].decode('utf-8', 'replace')}"  # the key may be the size
        if not self.too_large:
            log.warning("Kafka topic %s: %s; sent to %s instead (key %s)", self.topic, reason,
                        self.dead_letter_topic, source)
        self.too_large += 1
        self._produce(self.dead_letter_topic, value, key, dead_letter_headers(reason, source))

    def _originals(self, frame: pl.DataFrame) -> None:
        """Dead letters: the original bytes and key, with the reason and origin in headers."""
        for reason, raw, source, key in frame.select("reason", self.stream.original, "source", "key").iter_rows():
            self._produce(self.topic, raw, key, dead_letter_headers(reason, source))

    def _produce(self, topic: str, value: bytes, key: bytes | None, headers: Headers | None) -> None:
        value, key, headers = fitted(value, key, headers or [], self.limit)
        produce(self.producer, topic, value, key, self._delivered, headers or None, self.silence, self._progress)

    def _delivered(self, error, message) -> None:
        if error is not None:
            self.failures.append(_delivery_failure(error, message, self.limit))

    def _raise_failures(self) -> None:
        if self.failures:
            failure, self.failures = self.failures[0], []
            msg = f"writing {self.stream.name} to Kafka topic {self.topic!r} failed: {failure}"
            raise (ConfigError if "DMP_KAFKA_MESSAGE_MAX_BYTES" in failure else KafkaSinkError)(msg)

    def _progress(self) -> str:
        return f"writing {self.topic!r}: {len(self.producer):,} messages not acknowledged"

    @stops_cleanly
    def snapshot(self) -> None:
        await_acknowledgements(self.producer, self.silence, self._progress)
        self._raise_failures()
        return None

    def close(self) -> None:
        # Bytewax snapshots every written partition at the end of its last
        # epoch, so a normal end has nothing left here; after a failure
        # elsewhere, the brokers may be gone, and waiting helps no one.
        try:
            left = self.producer.flush(min(5.0, self.brokers.timeout))
        except Exception as ex:  # in a destructor: say it, never raise
            left, self.failures = len(self.producer), [*self.failures, repr(ex)]
        if left or self.failures:
            log.warning("Kafka topic %s: %d messages not acknowledged at close%s", self.topic, left,
                        f" ({self.failures[0]})" if self.failures else "")


def _delivery_failure(error: KafkaError, message, limit: int) -> str:
    if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return (f"the broker refused a {len(message):,}-byte message as too large ({error.str()}): the topic's "
                f"max.message.bytes is below DMP_KAFKA_MESSAGE_MAX_BYTES={limit:,}; lower that, or raise the topic's")
    return str(error)
