"""Broker trouble as users meet it: frozen, killed, unreachable at start-up, a topic recreated, a huge record.

What a user sees is checked on ``python -m bytewax.run`` itself (one ``dmp:``
line and an exit code, never a panic or a traceback); what the source and
sink decide is checked in-process, where the error is raised instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource

from flows import dmp
from flows.engine.analytics import registry
from flows.engine.config import KafkaSettings, Settings
from flows.engine.errors import ConfigError
from flows.engine.kafka_client import MissingOffsetError
from flows.engine.sinks import build_outputs
from flows.engine.sinks.kafka import KafkaSink, ensure_topics
from flows.engine.sources import KafkaSource
from flows.engine.sources.kafka import KafkaPosition
from flows.engine.testing import batches, run
from flows.tools.broker import free_port
from tests.conftest import read_topic
from tests.test_kafka import AbortAfter, kafka_run_settings, publish_simulated

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 4  # DMP_KAFKA_UNAVAILABLE_TIMEOUT of the runs below
MARGIN_S = 4  # librdkafka's statistics interval, a poll, a loaded test machine


def bytewax_run(settings: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    return subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, env={**env, **settings},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_output(job: subprocess.Popen, path: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size):
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, f"no {path} within {seconds}s"
        time.sleep(0.2)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dmp: ")]


@pytest.mark.slow
@pytest.mark.parametrize("trouble", ["frozen", "killed"])
def test_a_broker_gone_for_longer_than_the_timeout_stops_the_run_in_one_line(broker_factory, tmp_path, trouble):
    broker = broker_factory()
    topic = broker.create_topic("events", 2)
    publish_simulated(broker.bootstrap, topic, events=3_000)
    job = bytewax_run({
        "DMP_SOURCE": "kafka", "DMP_KAFKA_BROKERS": broker.bootstrap, "DMP_KAFKA_TOPIC": topic,
        "DMP_SINK": "files,kafka", "DMP_KAFKA_OUTPUT_PREFIX": "out.", "DMP_OUT_DIR": str(tmp_path),
        "DMP_KAFKA_UNAVAILABLE_TIMEOUT": f"{TIMEOUT_S}s", "DMP_MONITOR_INTERVAL": "0",
    })
    wait_for_output(job, tmp_path / "trends" / "part-0000.jsonl")  # it runs, reading and writing
    gone = time.monotonic()
    if trouble == "frozen":
        os.kill(broker.process.pid, signal.SIGSTOP)  # broker_factory sends SIGCONT at the end
    else:
        broker.process.kill()
    _, stderr = job.communicate(timeout=TIMEOUT_S + 60)
    took = time.monotonic() - gone

    assert job.returncode == 1, stderr
    assert took <= TIMEOUT_S + MARGIN_S, (took, stderr)
    error, hint = error_lines(stderr)
    assert error.startswith(f"dmp: Kafka brokers {broker.bootstrap} unreachable: no answer for ")
    assert f"(DMP_KAFKA_UNAVAILABLE_TIMEOUT={TIMEOUT_S}s)" in error
    # Whichever noticed first: the source names the offsets it reached, a sink its topic.
    assert re.search(rf"; reading '{topic}', next offsets 0:\d+, 1:\d+$", error) or "; writing 'out." in error, error
    assert hint.startswith("dmp: hint: ")
    assert "panicked" not in stderr and "Traceback" not in stderr and "%3|" not in stderr
    # While it waited: a line per interval (1 s here), not librdkafka's thousands.
    assert len(stderr.splitlines()) <= 2 + TIMEOUT_S + 3, stderr


def test_an_unreachable_broker_at_start_up_fails_fast_in_one_line(tmp_path):
    brokers = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    job = bytewax_run({"DMP_SOURCE": "kafka", "DMP_KAFKA_BROKERS": brokers, "DMP_KAFKA_CONNECT_TIMEOUT": "1s",
                       "DMP_OUT_DIR": str(tmp_path)})
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 2
    assert stderr.splitlines() == [
        f"dmp: DMP_KAFKA_BROKERS={brokers!r}: no Kafka broker answered within 1s ({brokers}/bootstrap: Connect to "
        f"ipv4#{brokers} failed: Connection refused (after 0ms in state CONNECT)); is the address right and the "
        "broker up? (DMP_KAFKA_CONNECT_TIMEOUT waits longer)"
    ]
    assert time.monotonic() - started < 30  # imports on a loaded machine, then 1 s


def test_the_kafka_sinks_fail_fast_at_start_up_too():
    settings = KafkaSettings(brokers=f"127.0.0.1:{free_port()}", connect_timeout_ms=1_000)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"DMP_KAFKA_BROKERS=.*no Kafka broker answered within 1s"):
        ensure_topics(settings, ["dmp.trends"], 1)
    assert time.monotonic() - started < 5


def cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``error`` or the first exception of its chain that is a ``kind`` (Bytewax wraps what partitions raise)."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error


def test_a_resumed_run_whose_topic_was_recreated_stops_saying_so(kafka_broker, tmp_path):
    topic = kafka_broker.create_topic("recreated", 2)
    publish_simulated(kafka_broker.bootstrap, topic, events=4_000)
    settings = kafka_run_settings(kafka_broker, topic, tmp_path, "recreated.", read_ahead=0, analytics=("trends",))
    settings = settings.replace(kafka=dataclasses.replace(settings.kafka, batch_messages=500))
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    config = RecoveryConfig(str(recovery))
    first = AbortAfter(KafkaSource(settings.kafka), batches=3)
    run(dmp.build(settings, source=first), epoch_interval=timedelta(0), recovery_config=config)
    assert first.fired

    kafka_broker.delete_topic(topic)  # the topic is recreated, with less in it
    kafka_broker.create_topic(topic, 2)
    publish_simulated(kafka_broker.bootstrap, topic, events=300)
    with pytest.raises(Exception) as raised:  # Bytewax wraps it; the cause is checked
        run(dmp.build(settings), epoch_interval=timedelta(0), recovery_config=config)
    missing = cause(raised.value, MissingOffsetError)
    assert missing is not None, raised.value
    assert "the topic was recreated since the snapshot" in str(missing)
    assert "DMP_KAFKA_ON_MISSING_OFFSET" in str(missing) + missing.hint

    # As the hint says: read the new topic from its start.
    settings = settings.replace(kafka=dataclasses.replace(settings.kafka, on_missing_offset="earliest"))
    again = AbortAfter(KafkaSource(settings.kafka), batches=10**6)
    run(dmp.build(settings, source=again), epoch_interval=timedelta(0), recovery_config=config)
    assert not again.fired


def drain(part, seconds: float = 20) -> list:
    """Batches of a partition until it ends; fails if it neither ends nor raises within ``seconds``."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.extend(part.next_batch())
        except StopIteration:
            return out
    raise AssertionError(f"the partition did not end within {seconds}s")


@pytest.mark.parametrize("offset", [10_000, 12])
def test_a_snapshot_offset_beyond_the_partition_s_end_is_missing(kafka_broker, topic_factory, offset):
    topic = topic_factory()
    publish_simulated(kafka_broker.bootstrap, topic, events=10, malformed=0)
    source = KafkaSource(KafkaSettings(brokers=kafka_broker.bootstrap, topic=topic, bounded=True))
    part = source.build_part("read", source.partitions()[0], KafkaPosition(offset))  # an old snapshot: no topic id
    with pytest.raises(MissingOffsetError, match=f"the next offset {offset} is beyond the partition's end \\(10\\)"):
        drain(part)
    part.close()


def test_a_missing_offset_may_be_read_from_the_partition_s_start_instead(kafka_broker, topic_factory):
    topic = topic_factory()
    publish_simulated(kafka_broker.bootstrap, topic, events=10, malformed=0)
    settings = KafkaSettings(brokers=kafka_broker.bootstrap, topic=topic, bounded=True, on_missing_offset="earliest")
    source = KafkaSource(settings)
    offsets = [o for b in drain(source.build_part("read", source.partitions()[0], KafkaPosition(500))) for o in b.offsets]
    assert offsets == list(range(10))


def test_a_snapshot_of_a_partition_the_topic_lost_is_missing(kafka_broker, topic_factory):
    topic = topic_factory(partitions=1)
    source = KafkaSource(KafkaSettings(brokers=kafka_broker.bootstrap, topic=topic))
    with pytest.raises(MissingOffsetError, match=f"{topic}/3: the next offset 40 is of a partition the topic no longer"):
        source.build_part("read", f"{topic}/3", KafkaPosition(40))
    lenient = KafkaSource(KafkaSettings(brokers=kafka_broker.bootstrap, topic=topic, on_missing_offset="latest"))
    (ended,) = drain(lenient.build_part("read", f"{topic}/3", KafkaPosition(40)))
    assert ended.last and not ended.payload  # it ends at once, holding no window back


def test_a_dead_letter_of_2_mb_is_cut_to_fit_with_its_size_and_hash(kafka_broker, tmp_path):
    prefix = f"big-{time.monotonic_ns()}."
    huge = b"{not json " + os.urandom(1024 * 1024).hex().encode()  # 2 MB of text that is no event
    good = {"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": "p"}
    kafka = KafkaSettings(brokers=kafka_broker.bootstrap, output_prefix=prefix, output_partitions=1)
    settings = Settings(sinks=("kafka",), out_dir=tmp_path, kafka=kafka, analytics=("trends",))
    source = TestingSource(batches([good, huge, {**good, "user_id": 2}], partition="in"))
    run(dmp.build(settings, source=source, partitions=["in"], outputs=build_outputs(settings)))  # never fatal

    (letter,) = read_topic(kafka_broker.bootstrap, f"{prefix}dead_letters")
    assert len(huge) > 2_000_000 > 1_000_000 > len(letter.value) > 990_000
    assert huge.startswith(letter.value)
    assert letter.headers["dmp.original_size"] == str(len(huge)).encode()
    assert letter.headers["dmp.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert letter.headers["dmp.reason"] and letter.headers["dmp.source"] == b"in@1"
    assert len(read_topic(kafka_broker.bootstrap, f"{prefix}trends")) == 1  # the rest went on


def test_a_result_row_too_large_for_kafka_goes_to_the_dead_letters_cut_to_fit(kafka_broker):
    prefix = f"row-{time.monotonic_ns()}."
    settings = KafkaSettings(brokers=kafka_broker.bootstrap, output_prefix=prefix, message_max_bytes=10_000)
    sink = KafkaSink(settings, registry.stream("trends"))
    ensure_topics(settings, [sink.topic, f"{prefix}dead_letters"], 1)
    frame = pl.DataFrame({
        "window_start": [0, 0], "window_end": [60_000] * 2, "product_id": ["p" * 20_000, "small"],
        **{name: [1, 2] for name in ("views", "carts", "removes", "purchases", "units")},
        "revenue": [1.5] * 2, "revenue_change": [0.0] * 2, "trend": ["new"] * 2,
    }).cast(dict(sink.stream.schema))
    part = sink.build_part("write", sink.list_parts()[0], None)
    part.write_batch([frame])
    part.snapshot()
    part.close()
    (row,) = read_topic(kafka_broker.bootstrap, sink.topic)
    assert json.loads(row.value)["product_id"] == "small"
    (letter,) = read_topic(kafka_broker.bootstrap, f"{prefix}dead_letters")
    assert letter.headers["dmp.reason"].startswith(b"a trends row of 20,")
    assert int(letter.headers["dmp.original_size"]) > 20_000 > 10_000 > len(letter.value) + len(letter.key)
    assert letter.value.startswith(b'{"window_start":"1970-01-01T00:00:00Z"')
