"""Sources: files stream in chunks and resume; the simulator is deterministic and realistic."""

from __future__ import annotations

import codecs
import gzip
import json
import pickle
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.config import SimSettings
from flows.engine.decode import decode_batch
from flows.engine.errors import ConfigError
from flows.engine.sources import (
    FileSource,
    InterruptibleSource,
    ReadAheadSource,
    SimSource,
    open_source,
    source_partitions,
)
from flows.engine.sources.files import expand_inputs
from flows.engine.sources.simulator import daily_cycle, generate_slices, make_catalog
from flows.engine.testing import drain

DATA = Path(__file__).resolve().parent / "data" / "rees46-2019-oct-sample.csv"


def read_all(source, name: str, resume=None):
    return drain(source.build_part("read", name, resume))


def decoded(batches) -> tuple[pl.DataFrame, pl.DataFrame]:
    results = [decode_batch(b) for b in batches]
    return pl.concat([r.events for r in results]), pl.concat([r.dead_letters for r in results])


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"event_type": "view", "ts": 1_709_287_200_000 + i, "user_id": i % 7, "product_id": i % 5})
        for i in range(500)
    ]
    lines[123] = "garbage"
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines))  # no newline after the last line
    return path


@pytest.mark.parametrize("batch_bytes", [64, 1000, 4096, 1 << 20])
def test_a_file_reads_the_same_whatever_the_chunk_size(jsonl_file: Path, batch_bytes: int):
    source = FileSource([jsonl_file], batch_bytes=batch_bytes)
    batches = read_all(source, str(jsonl_file))
    events, dead = decoded(batches)
    assert events.height == 499 and events["ts"].is_sorted()
    assert dead["source"].to_list() == [f"{jsonl_file}:124"]
    assert [b.last for b in batches] == [False] * (len(batches) - 1) + [True]


def test_a_gzipped_file_is_read_like_the_plain_one(jsonl_file: Path, tmp_path: Path):
    zipped = tmp_path / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress(jsonl_file.read_bytes()))
    plain = decoded(read_all(FileSource([jsonl_file]), str(jsonl_file)))[0]
    assert_frame_equal(decoded(read_all(FileSource([zipped]), str(zipped)))[0], plain)


@pytest.mark.parametrize("path", ["plain", "gz"])
def test_a_file_partition_resumes_after_its_snapshot(jsonl_file: Path, tmp_path: Path, path: str):
    if path == "gz":
        target = tmp_path / "events.jsonl.gz"
        target.write_bytes(gzip.compress(jsonl_file.read_bytes()))
    else:
        target = jsonl_file
    source = FileSource([target], batch_bytes=700)
    first = source.build_part("read", str(target), None)
    head = drain(first, limit=3)
    snapshot = pickle.loads(pickle.dumps(first.snapshot()))
    tail = read_all(source, str(target), resume=snapshot)
    whole = read_all(source, str(target))
    assert b"".join(b.payload for b in head + tail) == b"".join(b.payload for b in whole)
    assert tail[0].first_line == head[-1].first_line + head[-1].payload.count(b"\n")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv"])
def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_its_first_record(jsonl_file: Path, tmp_path: Path,
                                                                                 suffix: str):
    body = b"".join(DATA.read_bytes().splitlines(keepends=True)[:80]) if suffix == ".csv" else jsonl_file.read_bytes()
    target = tmp_path / f"bom{suffix}"
    marked = codecs.BOM_UTF8 + body
    target.write_bytes(gzip.compress(marked) if suffix.endswith(".gz") else marked)
    plain = tmp_path / f"plain{suffix.removesuffix('.gz')}"
    plain.write_bytes(body)
    for batch_bytes in (4096, 1 << 20):
        events, dead = decoded(read_all(FileSource([target], batch_bytes=batch_bytes), str(target)))
        expected, expected_dead = decoded(read_all(FileSource([plain], batch_bytes=batch_bytes), str(plain)))
        assert_frame_equal(events, expected)
        assert dead["reason"].to_list() == expected_dead["reason"].to_list()
    first = FileSource([target], batch_bytes=4096).build_part("r", str(target), None)
    drain(first, limit=1)
    tail = read_all(FileSource([target], batch_bytes=4096), str(target), resume=first.snapshot())
    assert tail and not tail[0].payload.startswith(codecs.BOM_UTF8)  # a resumed file starts past the mark


def test_the_rees46_sample_streams_with_its_header_on_every_batch(tmp_path: Path):
    source = FileSource([DATA], batch_bytes=4096)
    batches = read_all(source, str(DATA))
    assert len(batches) > 10 and all(b.format == "csv" and b.csv_header[0] == "event_time" for b in batches)
    events, dead = decoded(batches)
    assert (events.height, dead.height) == (1000, 0)
    resumed = read_all(source, str(DATA), resume=source.build_part("r", str(DATA), None).snapshot())
    assert decoded(resumed)[0].height == 1000  # a fresh snapshot skips the header, not a record


def test_a_csv_without_the_required_columns_fails_at_start_up(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("when,what\n2024-01-01,view\n")
    with pytest.raises(ConfigError, match=r"DMP_INPUT.*bad.csv.*product_id"):
        FileSource([path])


def test_inputs_are_globs_or_comma_separated_paths(jsonl_file: Path, tmp_path: Path):
    (tmp_path / "more.jsonl").write_text("")
    assert expand_inputs(f"{tmp_path}/*.jsonl") == [tmp_path / "events.jsonl", tmp_path / "more.jsonl"]
    assert expand_inputs(f"{jsonl_file}, {jsonl_file}") == [jsonl_file]
    with pytest.raises(ConfigError, match=r"DMP_INPUT.*matches no file"):
        expand_inputs(f"{tmp_path}/*.csv")


def test_each_file_is_a_partition_every_worker_knows(jsonl_file: Path):
    source = FileSource([jsonl_file, DATA])
    assert source_partitions(source) == [str(jsonl_file), str(DATA)]


# -- simulator ---------------------------------------------------------------------------

SMALL = SimSettings(events=20_000, partitions=3, users=500, products=200, malformed_rate=0.002)


def sim_batches(settings: SimSettings) -> dict[str, list]:
    source = SimSource(settings)
    return {name: read_all(source, name) for name in source.partitions()}


def test_the_simulator_emits_exactly_the_requested_records_over_its_partitions():
    per_partition = sim_batches(SMALL)
    assert list(per_partition) == ["sim-0", "sim-1", "sim-2"]
    counts = [sum(decode_batch(b).records for b in batches) for batches in per_partition.values()]
    assert counts == [6667, 6667, 6666]
    assert all(batches[-1].last for batches in per_partition.values())


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    a, b = sim_batches(SMALL), sim_batches(SMALL)
    c = sim_batches(SimSettings(**{**SMALL.__dict__, "seed": 43}))
    payload = lambda run: [batch.payload for batches in run.values() for batch in batches]  # noqa: E731
    assert payload(a) == payload(b)
    assert payload(a) != payload(c)


def test_a_simulator_partition_resumes_exactly_after_its_snapshot():
    source = SimSource(SimSettings(**{**SMALL.__dict__, "events": 100_000}))
    part = source.build_part("read", "sim-1", None)
    head = drain(part, limit=1)
    snapshot = pickle.loads(pickle.dumps(part.snapshot()))
    tail = read_all(source, "sim-1", resume=snapshot)
    whole = read_all(source, "sim-1")
    assert [b.payload for b in head + tail] == [b.payload for b in whole]


def test_a_slice_is_the_same_whichever_run_of_slices_it_is_generated_in():
    settings = SimSettings(partitions=2, users=300, products=100, events_per_second=20.0, anomalies=True,
                           anomaly_after_ms=0, malformed_rate=0.01, straggler_rate=0.01)
    catalog = make_catalog(settings.products, settings.seed)
    together = generate_slices(settings, catalog, 1, 0, 90)
    apart = pl.concat([generate_slices(settings, catalog, 1, a, b) for a, b in ((0, 1), (1, 31), (31, 90))])
    assert together.height > 0 and together["broken"].max() >= 0
    assert_frame_equal(together, apart)


def test_the_bytes_do_not_depend_on_how_many_slices_a_batch_generates():
    settings = SimSettings(duration_ms=6 * 3_600_000, partitions=2, users=300, products=100, malformed_rate=0.01,
                           straggler_rate=0.01)
    source = SimSource(settings)
    default = source.build_part("read", "sim-1", None)
    small = source.build_part("read", "sim-1", None)
    small.run = 7  # minutes per batch (the default makes ~20,000 events: the whole run here)
    payloads = [b"".join(b.payload for b in drain(part)) for part in (default, small)]
    assert payloads[0] == payloads[1] and payloads[0]
    # Every partition ends at the end of its event time, the undelivered stragglers included.
    events, _ = decoded(drain(source.build_part("read", "sim-0", None)))
    assert events["ts"].max() < settings.start_ms + settings.duration_ms


def test_simulated_shoppers_behave_like_shoppers():
    events, dead = decoded([b for batches in sim_batches(SMALL).values() for b in batches])
    counts = dict(events["event_type"].cast(pl.String).value_counts().iter_rows())
    assert counts["view"] > 5 * counts["add_to_cart"] > 0
    assert counts["add_to_cart"] > counts["purchase"] > 0 and counts["remove_from_cart"] > 0
    assert 0 < dead.height < 0.01 * (events.height + dead.height)  # the corrupted records, as dead letters
    # Zipf popularity: the most viewed product gets far more than the median one.
    views = events.filter(pl.col("event_type") == "view")["product_id"].value_counts()["count"]
    assert views.max() > 10 * views.median()
    # Every purchase has a price and belongs to a session.
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert purchases["price"].null_count() == 0 and purchases["session_id"].null_count() == 0


def test_delivery_is_out_of_order_but_bounded_except_for_stragglers():
    settings = SimSettings(events=30_000, partitions=1, users=300, products=100, disorder_ms=5_000,
                           straggler_rate=0.0, malformed_rate=0.0)
    events, _ = decoded(sim_batches(settings)["sim-0"])
    behind = events.select((pl.col("ts").cum_max() - pl.col("ts")).alias("behind"))["behind"]
    assert behind.max() <= 5_000
    assert (behind > 0).mean() > 0.2  # really out of order


def test_traffic_follows_a_daily_cycle_peaking_in_the_evening():
    evening, morning = 1_704_139_200_000, 1_704_096_000_000  # 20:00 and 08:00 UTC
    assert daily_cycle(evening) == pytest.approx(1.6) and daily_cycle(morning) == pytest.approx(0.4)


def test_the_catalog_has_categories_prices_and_popularity():
    catalog = make_catalog(300, seed=1)
    assert len(set(catalog.category)) > 5
    assert (catalog.price > 0).all()
    assert catalog.popularity.sum() == pytest.approx(1.0)


def test_open_source_follows_the_settings(jsonl_file: Path):
    from flows.engine.config import Settings

    simulated, files = open_source(Settings()), open_source(Settings(source="file", input=str(jsonl_file)))
    assert isinstance(simulated, InterruptibleSource) and isinstance(files, InterruptibleSource)  # Ctrl-C stops them
    assert isinstance(simulated.inner, SimSource) and isinstance(files.inner, FileSource)


# -- read-ahead ---------------------------------------------------------------------------


def drain_ready(part, limit: int | None = None) -> list:
    """Like drain, but waits out the read-ahead's empty polls."""
    import time

    batches = []
    while limit is None or len(batches) < limit:
        try:
            got = part.next_batch()
        except StopIteration:
            break
        if not got:
            time.sleep(0.001)
        batches.extend(got)
    return batches


def test_read_ahead_emits_the_same_batches_in_the_same_order(jsonl_file: Path):
    plain = FileSource([jsonl_file], batch_bytes=700)
    ahead = ReadAheadSource(plain, prepare=lambda raw: ("decoded", raw.payload), depth=2)
    part = ahead.build_part("read", str(jsonl_file), None)
    # Each batch comes decoded ahead, or raw when the worker gets to it first.
    got = [item[1] if isinstance(item, tuple) else item.payload for item in drain_ready(part)]
    assert got == [b.payload for b in read_all(plain, str(jsonl_file))]
    part.close()


def test_read_ahead_snapshots_only_what_it_has_emitted(jsonl_file: Path):
    plain = FileSource([jsonl_file], batch_bytes=700)
    ahead = ReadAheadSource(plain, prepare=lambda raw: raw, depth=3)
    part = ahead.build_part("read", str(jsonl_file), None)
    head = drain_ready(part, limit=2)
    import time

    time.sleep(0.2)  # let it read further ahead
    snapshot = part.snapshot()
    part.close()
    tail = read_all(plain, str(jsonl_file), resume=snapshot)
    assert [b.payload for b in head + tail] == [b.payload for b in read_all(plain, str(jsonl_file))]


def test_a_failure_while_reading_surfaces_in_the_worker(jsonl_file: Path):
    class Broken(FileSource):
        def build_part(self, step_id, for_part, resume_state):
            part = super().build_part(step_id, for_part, resume_state)

            def explode():
                raise OSError("disk on fire")

            part.next_batch = explode
            return part

    part = ReadAheadSource(Broken([jsonl_file]), prepare=lambda raw: raw).build_part("read", str(jsonl_file), None)
    with pytest.raises(OSError, match="disk on fire"):
        drain_ready(part)


def test_a_batch_that_fails_to_decode_ahead_is_handed_over_raw(jsonl_file: Path):
    def explode(raw):
        raise RuntimeError("boom")

    plain = FileSource([jsonl_file], batch_bytes=700)
    part = ReadAheadSource(plain, prepare=explode).build_part("read", str(jsonl_file), None)
    assert [b.payload for b in drain_ready(part)] == [b.payload for b in read_all(plain, str(jsonl_file))]
