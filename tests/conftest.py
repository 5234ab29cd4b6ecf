"""Fixtures: a real Kafka-protocol broker for the session, topics with unique names, brokers of one's own."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from flows.tools.broker import LocalBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Iterator[LocalBroker]:
    """Tansu on a free loopback port, started by the tests themselves."""
    broker = LocalBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def topic_factory(kafka_broker: LocalBroker) -> Callable[..., str]:
    """Make a fresh topic: ``topic_factory(partitions=3)`` -> its unique name."""

    def make(partitions: int = 1, prefix: str = "t") -> str:
        return kafka_broker.create_topic(f"{prefix}-{uuid.uuid4().hex[:10]}", partitions)

    return make


@pytest.fixture
def broker_factory(tmp_path) -> Iterator[Callable[[], LocalBroker]]:
    """Brokers a test may freeze or kill (not the session's): ``broker_factory()`` -> a started one."""
    started: list[LocalBroker] = []

    def make() -> LocalBroker:
        broker = LocalBroker(log_path=tmp_path / f"tansu-{len(started)}.log").start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        if broker.process is not None and broker.process.poll() is None:
            os.kill(broker.process.pid, signal.SIGCONT)  # a frozen broker cannot stop
        broker.stop()


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every message of a topic, partition by partition, in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[Message] = []
    ended: set[int] = set()
    while len(ended) < len(partitions):
        for message in consumer.consume(10_000, 1.0):
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            messages.append(Message(message.partition(), message.offset(), message.key(), message.value(),
                                    dict(message.headers() or [])))
    consumer.close()
    return sorted(messages, key=lambda m: (m.partition, m.offset))
