"""File sinks: JSON Lines / Parquet, replaced on a fresh run, cut back on resume."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from flows.engine.sinks import FileSink


def frame(*values: int) -> pl.DataFrame:
    return pl.DataFrame({"n": list(values)})


def test_rows_are_written_as_json_lines(tmp_path: Path):
    part = FileSink(tmp_path / "trends").build_part("write", "part-0000", None)
    part.write_batch([frame(1, 2), frame(), frame(3)])
    part.close()
    lines = (tmp_path / "trends" / "part-0000.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_resumed_part_is_cut_back_to_its_snapshot_so_a_replay_is_not_written_twice(tmp_path: Path):
    sink = FileSink(tmp_path)
    part = sink.build_part("write", "part-0000", None)
    part.write_batch([frame(1)])
    snapshot = part.snapshot()
    part.write_batch([frame(2)])  # written after the snapshot, then the process dies
    part.close()
    resumed = sink.build_part("write", "part-0000", snapshot)
    resumed.write_batch([frame(2), frame(3)])  # the replayed epoch, then new data
    resumed.close()
    assert (tmp_path / "part-0000.jsonl").read_text().splitlines() == ['{"n":1}', '{"n":2}', '{"n":3}']


def test_a_fresh_run_replaces_the_previous_output(tmp_path: Path):
    (tmp_path / "part-0000.jsonl").write_text('{"old":true}\n')
    part = FileSink(tmp_path).build_part("write", "part-0000", None)
    part.write_batch([frame(9)])
    part.close()
    assert (tmp_path / "part-0000.jsonl").read_text() == '{"n":9}\n'


def test_parquet_parts_are_exactly_once_too(tmp_path: Path):
    sink = FileSink(tmp_path, fmt="parquet")
    part = sink.build_part("write", "part-0000", None)
    part.write_batch([frame(1), frame(2)])
    snapshot = part.snapshot()
    part.write_batch([frame(3)])
    resumed = sink.build_part("write", "part-0000", snapshot)
    resumed.write_batch([frame(3), frame(4)])
    # One file per write: the one written after the snapshot was replaced.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-0000-000000.parquet", "part-0000-000001.parquet"]
    assert_frame_equal(pl.read_parquet(tmp_path / "*.parquet"), frame(1, 2, 3, 4))
