"""File sinks: JSON Lines / Parquet, replaced on a fresh run, cut back on resume."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from flows.engine.sinks import FileSink
from flows.engine.sinks.files import read_stream
from flows.engine.streams import INT, Column, OutputStream


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


def lines_of(directory: Path) -> dict[str, list[int]]:
    return {path.name: [json.loads(line)["n"] for line in path.read_text().splitlines()]
            for path in sorted(directory.glob("*.jsonl"))}


def test_a_part_rotates_to_a_new_file_once_its_file_reaches_the_size(tmp_path: Path):
    part = FileSink(tmp_path, rotate_bytes=16).build_part("write", "part-0000", None)
    for n in range(1, 6):
        part.write_batch([frame(n, n)])  # 16 bytes a write: each write fills a file
    part.close()
    assert lines_of(tmp_path) == {"part-0000.jsonl": [1, 1], **{f"part-0000-{s:06d}.jsonl": [s + 1, s + 1]
                                                               for s in range(1, 5)}}
    # Read back in the order written: the first file, then the rotated ones.
    numbers = OutputStream(tmp_path.name, "number", "n", key=("n",), columns=(Column("n", INT, nullable=False),))
    assert read_stream(tmp_path.parent, numbers)["n"].to_list() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_a_rotated_part_resumes_in_the_file_of_its_snapshot_and_drops_the_later_ones(tmp_path: Path):
    sink = FileSink(tmp_path, rotate_bytes=16)
    part = sink.build_part("write", "part-0000", None)
    part.write_batch([frame(1, 1)])
    part.write_batch([frame(2)])
    snapshot = part.snapshot()
    assert snapshot == (1, 8)
    part.write_batch([frame(3)])  # fills file 1: the part moves on to file 2
    part.write_batch([frame(4)])  # after the snapshot; then the process dies
    part.close()
    assert sorted(lines_of(tmp_path)) == ["part-0000-000001.jsonl", "part-0000-000002.jsonl", "part-0000.jsonl"]
    resumed = sink.build_part("write", "part-0000", snapshot)
    resumed.write_batch([frame(3)])
    resumed.write_batch([frame(4)])
    resumed.close()
    assert lines_of(tmp_path) == {"part-0000.jsonl": [1, 1], "part-0000-000001.jsonl": [2, 3],
                                  "part-0000-000002.jsonl": [4]}


def test_a_fresh_run_removes_every_rotated_file_of_the_previous_one(tmp_path: Path):
    for name in ("part-0000.jsonl", "part-0000-000001.jsonl", "part-0001.jsonl"):
        (tmp_path / name).write_text('{"n":0}\n')
    part = FileSink(tmp_path, rotate_bytes=1000).build_part("write", "part-0000", None)
    part.write_batch([frame(9)])
    part.close()
    assert lines_of(tmp_path) == {"part-0000.jsonl": [9], "part-0001.jsonl": [0]}  # another part's file stays


def test_a_snapshot_of_the_single_file_version_resumes(tmp_path: Path):
    (tmp_path / "part-0000.jsonl").write_text('{"n":1}\n{"n":2}\n')
    part = FileSink(tmp_path, rotate_bytes=1000).build_part("write", "part-0000", 8)  # its size then: one line
    part.write_batch([frame(2)])
    part.close()
    assert lines_of(tmp_path) == {"part-0000.jsonl": [1, 2]}
