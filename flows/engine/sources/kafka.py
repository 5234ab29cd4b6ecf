"""Kafka source: one source partition per Kafka partition, messages in batches.

In: a topic (``DMP_KAFKA_*`` settings). Out: :class:`RawBatch` items of up
to ``batch_messages`` messages of one Kafka partition, in offset order,
with each message's offset and key. Event time comes from the payload,
never from Kafka's message timestamps.

- Each Kafka partition is assigned directly to a consumer of its own (no
  consumer group, no rebalancing, no committed offsets): the next offset to
  read is the partition's Bytewax snapshot, so a resumed run continues
  exactly where its last snapshot was. Without a snapshot a partition
  starts at ``earliest`` or ``latest``. Prefetching is bounded per
  partition (``queued.max.messages.kbytes``).
- Bounded mode stops each partition at its end: librdkafka's partition EOF,
  which comes from the fetch responses, not from the "latest offset"
  report (which some brokers, Tansu among them, get wrong), or at explicit
  end offsets. The final batch has ``last=True``.
- ``fetch.queue.backoff.ms`` is lowered from librdkafka's 1000 ms, which
  stalls a Python consumer that falls behind (5-20 ms measured 5x faster).
- Broker trouble stops the run with one clear error (see
  :mod:`flows.engine.kafka_client`): no answer for
  ``DMP_KAFKA_UNAVAILABLE_TIMEOUT`` (the error names the partitions' next
  offsets), or a next offset that is no longer on the broker
  (``DMP_KAFKA_ON_MISSING_OFFSET``): a snapshot of a partition the topic no
  longer has, of a topic since recreated (its topic id changed), or an
  offset below the partition's start or beyond its end. Kafka reports the
  last two in the fetch (``auto.offset.reset=error``); Tansu, which serves
  nothing there and no error either, through the high watermark of its
  fetch responses (librdkafka's cached watermarks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)

from flows.engine.config import KafkaSettings
from flows.engine.errors import ConfigError, SourceError
from flows.engine.kafka_client import (
    STATISTICS_MS,
    MissingOffsetError,
    Silence,
    brokers_of,
    client_config,
    connect,
    stops_cleanly,
)
from flows.engine.schema import RawBatch

log = logging.getLogger(__name__)

CONSUMER_DEFAULTS = {
    "enable.auto.commit": False,
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 100,
    # Prefetch per partition: enough to keep a batch ready, bounded in memory
    # (16 MB a partition; a worker with 32 partitions holds at most ~0.5 GB).
    "queued.min.messages": 50_000,
    "queued.max.messages.kbytes": 16_384,
}
_POLL_SECONDS = 0.05
_SHOWN_PARTITIONS = 12  # an error lists this many partitions' offsets, then a count


@dataclass(frozen=True)
class Topic:
    """A topic's partition ids and, when the broker tells (Kafka 2.8+, Tansu), its topic id."""

    name: str
    partitions: list[int]
    id: str | None = None


def describe_topic(settings: KafkaSettings, topic: str) -> Topic:
    """The partitions and id of ``topic``; a clear error when the broker or topic is missing."""
    admin, metadata = connect(settings)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        known = ", ".join(sorted(t for t in metadata.topics if not t.startswith("__"))) or "none"
        msg = f"DMP_KAFKA_TOPIC={topic!r} does not exist on {settings.brokers} (topics: {known})"
        raise ConfigError(msg)
    partitions = sorted(metadata.topics[topic].partitions)
    try:
        described = admin.describe_topics(TopicCollection([topic]))[topic].result(settings.connect_timeout_ms / 1000)
        topic_id = str(described.topic_id) if described.topic_id is not None else None
    except (KafkaException, AttributeError):  # an old broker, or no Describe right: no recreation check
        topic_id = None
    return Topic(topic, partitions, None if topic_id in (None, "AAAAAAAAAAAAAAAAAAAAAA") else topic_id)


def topic_partitions(settings: KafkaSettings, topic: str) -> list[int]:
    """The partition ids of ``topic``; a clear error when the broker or topic is missing."""
    return describe_topic(settings, topic).partitions


def _offsets(messages: list) -> Sequence[int]:
    """Each message's offset: a range when contiguous (the usual case), else a list."""
    if not messages:
        return []
    first, last = messages[0].offset(), messages[-1].offset()
    if last - first == len(messages) - 1:
        return range(first, last + 1)
    return [message.offset() for message in messages]


class _Keys(Sequence):
    """Message keys, read only when asked (dead letters need them; events do not)."""

    def __init__(self, messages: list):
        self._messages = messages

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [message.key() for message in self._messages[index]]
        return self._messages[index].key()

    def __reduce__(self):
        return (list, ([message.key() for message in self._messages],))


def partition_name(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


@dataclass(frozen=True)
class KafkaPosition:
    """The next offset a partition reads; ``done`` once a bounded partition ended.

    ``topic_id`` is the id of the topic the offset belongs to (``None``
    when the broker does not say, or in snapshots older than it), so a
    resumed run can tell that the topic was recreated meanwhile.
    """

    offset: int
    done: bool = False
    topic_id: str | None = None


class KafkaSource(FixedPartitionedSource[RawBatch, KafkaPosition]):
    """Every partition of one topic; see the module docstring."""

    def __init__(self, settings: KafkaSettings, topic: str | None = None):
        self.settings = settings
        self.topic = topic or settings.topic
        described = describe_topic(settings, self.topic)
        self.ids, self.topic_id = described.partitions, described.id
        self.brokers = brokers_of(settings)
        self.next_offsets: dict[int, int] = {}  # this process's partitions, for error messages
        self.end_offsets = dict(settings.end_offsets)
        unknown = sorted(set(self.end_offsets) - set(self.ids))
        if unknown:
            msg = f"DMP_KAFKA_END_OFFSETS names partitions {unknown} that {self.topic!r} does not have ({self.ids})"
            raise ConfigError(msg)

    @property
    def bounded(self) -> bool:
        return self.settings.bounded or bool(self.end_offsets)

    def partitions(self) -> list[str]:
        return [partition_name(self.topic, p) for p in self.ids]

    def list_parts(self) -> list[str]:
        return self.partitions()

    @stops_cleanly
    def build_part(self, step_id: str, for_part: str, resume_state: KafkaPosition | None) -> KafkaPartition:
        partition = int(for_part.rpartition("/")[2])
        return KafkaPartition(self, partition, resume_state)

    def progress(self) -> str:
        """What this process read, for an error message: each partition's next offset."""
        shown = sorted(self.next_offsets.items())
        offsets = ", ".join(f"{p}:{_offset_text(o)}" for p, o in shown[:_SHOWN_PARTITIONS])
        more = f" (+{len(shown) - _SHOWN_PARTITIONS} more)" if len(shown) > _SHOWN_PARTITIONS else ""
        return f"reading {self.topic!r}, next offsets {offsets or 'none'}{more}"


def _offset_text(offset: int) -> str:
    return {OFFSET_BEGINNING: "earliest", OFFSET_END: "latest"}.get(offset, str(offset))


class KafkaPartition(StatefulSourcePartition[RawBatch, KafkaPosition]):
    """One Kafka partition, through a consumer of its own.

    (Measured: one consumer shared by a worker's partitions fetched no
    faster, and it advanced partitions unevenly, each poll returning long
    runs of one partition, so windows closed later and state piled up.)
    """

    def __init__(self, source: KafkaSource, partition: int, resume: KafkaPosition | None):
        self.source = source
        self.settings = source.settings
        self.name = partition_name(source.topic, partition)
        self.partition = TopicPartition(source.topic, partition)
        self.batch_messages = source.settings.batch_messages
        self.end = source.end_offsets.get(partition) if source.end_offsets else None
        self.start = OFFSET_BEGINNING if source.settings.start == "earliest" else OFFSET_END
        self.position = resume if resume is not None else KafkaPosition(self.start, topic_id=source.topic_id)
        self.gone = False  # the snapshot's partition is not in the topic any more (and that is allowed)
        self.consumer: Consumer | None = None
        if self.position.done:
            return
        if resume is not None:
            self._check_resume(resume)
        source.next_offsets[partition] = self.position.offset
        if self.gone:
            return
        self.silence = Silence(source.brokers)
        config = {
            **client_config(source.settings, source.brokers),
            **CONSUMER_DEFAULTS,
            "group.id": f"dmp-{source.topic}",  # required by the client; no group is joined
            "enable.partition.eof": source.bounded and self.end is None,
            "auto.offset.reset": "error",  # an offset that is not there any more is ours to handle
            "stats_cb": self.silence.statistics,
            "statistics.interval.ms": STATISTICS_MS,
        }
        self.consumer = Consumer(config)
        self.consumer.assign([TopicPartition(source.topic, partition, self.position.offset)])

    def _check_resume(self, resume: KafkaPosition) -> None:
        """A snapshot of a partition the topic no longer has, or of a topic since recreated."""
        source = self.source
        if self.partition.partition not in source.ids:
            self._missing(f"is of a partition the topic no longer has (it has {len(source.ids)})")
        elif resume.topic_id and source.topic_id and resume.topic_id != source.topic_id:
            self._missing("is of an earlier topic of that name: the topic was recreated since the snapshot")

    def _missing(self, what: str) -> None:
        """The next offset is not on the broker: stop, or go on as ``DMP_KAFKA_ON_MISSING_OFFSET`` says."""
        choice = self.settings.on_missing_offset
        said = f"Kafka partition {self.name}: the next offset {_offset_text(self.position.offset)} {what}"
        if choice == "fail":
            raise MissingOffsetError(f"{said} (DMP_KAFKA_ON_MISSING_OFFSET=fail)")
        if self.partition.partition not in self.source.ids:
            log.warning("%s; nothing to read there (DMP_KAFKA_ON_MISSING_OFFSET=%s)", said, choice)
            self.gone = True
            return
        log.warning("%s; reading it from its %s offset (DMP_KAFKA_ON_MISSING_OFFSET=%s)", said, choice, choice)
        offset = OFFSET_BEGINNING if choice == "earliest" else OFFSET_END
        self.position = KafkaPosition(offset, topic_id=self.source.topic_id)
        if self.consumer is not None:
            self.consumer.assign([TopicPartition(self.partition.topic, self.partition.partition, offset)])

    @stops_cleanly
    def next_batch(self) -> list[RawBatch]:
        if self.gone:  # ends at once: its watermark must not hold windows back
            self.gone, self.position = False, KafkaPosition(self.position.offset, True, self.source.topic_id)
            return [RawBatch(self.name, [], origin=self.name, offsets=[], keys=[], last=True)]
        if self.position.done or self.consumer is None:
            raise StopIteration
        messages = self.consumer.consume(self.batch_messages, _POLL_SECONDS)
        ended = False
        if messages:
            self.silence.busy()
            if any([message.error() is not None for message in messages]):  # rare: EOF, broker trouble
                messages, ended = self._without_errors(messages)
        if self.end is not None:
            # confluent_kafka types Message.offset() Optional; a consumed message without an error has one.
            kept = [message for message in messages if message.offset() < self.end]  # type: ignore[operator]
            ended = ended or len(kept) < len(messages) or bool(kept and kept[-1].offset() + 1 >= self.end)  # type: ignore[operator]
            messages = kept
        if not messages and not ended:
            self._quiet()
            return []
        values = [message.value() or b"" for message in messages]
        offsets = _offsets(messages)
        next_offset = offsets[-1] + 1 if messages else self.position.offset
        self.position = KafkaPosition(next_offset, done=ended, topic_id=self.source.topic_id)
        self.source.next_offsets[self.partition.partition] = next_offset
        batch = RawBatch(self.name, values, origin=self.name, offsets=offsets, keys=_Keys(messages), last=ended)
        if ended:
            self.close()
        return [batch]

    def _quiet(self) -> None:
        """Nothing came: is the next offset still there, and are the brokers?"""
        offset = self.position.offset
        if offset >= 0 and self.consumer is not None:
            high = self.consumer.get_watermark_offsets(self.partition, cached=True)[1]  # from fetches, no request
            if high >= 0 and offset > high:
                self._missing(f"is beyond the partition's end ({high}): the topic was recreated or truncated")
                return
        self.silence.check(self.source.progress)

    def _without_errors(self, messages: list) -> tuple[list, bool]:
        kept, ended = [], False
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                ended = True
            elif error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                self._missing(f"is out of the partition's range ({error.str()}): the topic was recreated or "
                              "truncated, or retention deleted it")
                return [], False
            elif error.fatal():
                msg = f"Kafka partition {self.name}: {error}"
                raise SourceError(msg)
            else:  # librdkafka retries; an error on every poll must not become a line on every poll
                self.source.brokers.heard_of(f"partition {self.name}: {error.str()} (retrying)")
        return kept, ended

    def snapshot(self) -> KafkaPosition:
        return self.position

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
