"""File sinks: each output stream as JSON Lines (or Parquet) under one directory.

In: ``(key, frame)`` items of one stream: typed rows, as its declaration
(:class:`~flows.engine.streams.OutputStream`) says. JSON Lines render them
(times as ISO-8601 with ``Z``, bytes as text); Parquet keeps the types
(times as UTC timestamps). :func:`read_stream` reads either back as a typed
frame. Out: ``<dir>/part-0000.jsonl`` (rows appended in arrival order;
once a file reaches ``rotate_bytes``, at the end of a write, the part goes
on in ``part-0000-000001.jsonl``, ``part-0000-000002.jsonl``, ...) or
``<dir>/part-0000-<seq>.parquet`` (one file per write). Exactly once with
Bytewax recovery: a part's snapshot is its current file and size (or next
file number), and a resumed run first cuts the part back to it, so the
replayed epoch is written again instead of twice. A fresh run (no resume
state) replaces what a previous run left in that part, every file of it,
and :meth:`FileSink.clear` removes every part at the start of a fresh run
(Bytewax builds a part only when rows come, so a stream that gets none
would keep an older run's files). :func:`writable_directory` checks the
outputs' directory at start-up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

import polars as pl
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.engine.config import OutputFormat
from flows.engine.errors import ConfigError
from flows.engine.streams import OutputStream


class FileSink(FixedPartitionedSink[pl.DataFrame, int]):
    """Writes the frames of one stream into ``parts`` files in ``directory``.

    Items are routed to a part by key, so a key's rows stay in order in one
    file. Every worker lists every part (a shared directory); Bytewax gives
    each part to one worker.
    """

    def __init__(self, directory: Path | str, fmt: OutputFormat = "jsonl", parts: int = 1,
                 stream: OutputStream | None = None, rotate_bytes: int = 0):
        self.stream = stream  # None: frames are written as they come (engine-form frames, in tests)
        self.directory = Path(directory)
        self.format = fmt
        self.parts = parts
        self.rotate_bytes = rotate_bytes  # 0: one file per part

    def list_parts(self) -> list[str]:
        return [f"part-{index:04d}" for index in range(self.parts)]

    def clear(self) -> None:
        """Remove every part this sink writes (a fresh run's start: a stream without rows is then empty)."""
        for part in self.list_parts():
            for stale in _part_files(self.directory, part):
                stale.unlink()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> StatefulSinkPartition:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            return _ParquetPart(self.stream, self.directory, for_part, resume_state)
        return _JsonLinesPart(self.stream, self.directory, for_part, resume_state, self.rotate_bytes)


def writable_directory(directory: Path, setting: str = "DMP_OUT_DIR") -> None:
    """Make ``directory`` (and its parents) and check a file can be written there, or raise naming ``setting``."""
    probe = directory / f".dmp-write-test-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as ex:
        msg = f"{setting}={str(directory)!r}: cannot write the outputs there ({ex})"
        raise ConfigError(msg) from None


def _frames(values: list, stream: OutputStream | None) -> pl.DataFrame | None:
    """The non-empty frames of a write (values may be frames or ``(key, frame)``), as one typed frame."""
    frames = [value[1] if isinstance(value, tuple) else value for value in values]
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return None
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
    return stream.conform(frame) if stream is not None else frame


_SEGMENT = re.compile(r"(?P<part>part-\d+)(?:-(?P<segment>\d+))?\.(?:jsonl|parquet)")


def _part_files(directory: Path, part: str, suffix: str = "") -> list[Path]:
    """The files one part wrote (JSON Lines segments and Parquet files; only ``suffix``'s if given)."""
    return [path for path in directory.glob(f"{part}*{suffix}")
            if (match := _SEGMENT.fullmatch(path.name)) and match["part"] == part]


def _order(path: Path) -> tuple[str, int, str]:
    """A part's files in the order they were written: ``part-0000.jsonl`` is its segment 0."""
    match = _SEGMENT.fullmatch(path.name)
    return (match["part"], int(match["segment"] or 0), path.name) if match else (path.name, 0, path.name)


class _JsonLinesPart(StatefulSinkPartition[pl.DataFrame, "tuple[int, int] | int"]):
    """One part's rows in files of about ``rotate_bytes``; its state is (segment, size of that segment)."""

    def __init__(self, stream: OutputStream | None, directory: Path, part: str,
                 resume: tuple[int, int] | int | None, rotate_bytes: int = 0):
        self.stream = stream
        self.directory = directory
        self.part = part
        self.rotate_bytes = rotate_bytes
        # A snapshot of an earlier version is the size of the one file it wrote.
        segment, length = (0, resume) if isinstance(resume, int) else (resume or (None, None))
        self.segment = segment or 0
        for stale in _part_files(directory, part, ".jsonl"):
            if resume is None or _order(stale)[1] > self.segment:
                stale.unlink()
        path = self._path(self.segment)
        if length is None or not path.exists():
            self.handle: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.handle = open(path, "r+b")  # noqa: SIM115
            self.handle.truncate(length)
            self.handle.seek(length)

    def _path(self, segment: int) -> Path:
        return self.directory / (f"{self.part}.jsonl" if segment == 0 else f"{self.part}-{segment:06d}.jsonl")

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        frame = _frames(values, self.stream)
        if frame is None:
            return
        if self.handle is None:  # the previous file is full: the next one begins with this write
            self.handle = open(self._path(self.segment), "wb")  # noqa: SIM115
        (self.stream.to_json(frame) if self.stream is not None else frame).write_ndjson(self.handle)
        if self.rotate_bytes and self.handle.tell() >= self.rotate_bytes:
            self._sync()
            self.handle.close()
            self.handle, self.segment = None, self.segment + 1

    def _sync(self) -> None:
        assert self.handle is not None
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def snapshot(self) -> tuple[int, int]:
        if self.handle is None:
            return self.segment, 0
        self._sync()
        return self.segment, self.handle.tell()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class _ParquetPart(StatefulSinkPartition[pl.DataFrame, int]):
    def __init__(self, stream: OutputStream | None, directory: Path, part: str, resume: int | None):
        self.stream = stream
        self.directory = directory
        self.part = part
        self.next_file = resume or 0
        for stale in _part_files(directory, part, ".parquet"):
            if _order(stale)[1] >= self.next_file:
                stale.unlink()

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        frame = _frames(values, self.stream)
        if frame is None:
            return
        frame.write_parquet(self.directory / f"{self.part}-{self.next_file:06d}.parquet")
        self.next_file += 1

    def snapshot(self) -> int:
        return self.next_file


def read_stream(out_dir: Path | str, stream: OutputStream | str) -> pl.DataFrame:
    """Every row a stream's files hold (JSON Lines or Parquet), as one typed frame (its declared schema).

    >>> from flows.engine.analytics.registry import stream
    >>> read_stream("/nonexistent", "trends").schema == stream("trends").schema
    True
    """
    if isinstance(stream, str):
        from flows.engine.analytics.registry import stream as declared

        stream = declared(stream)
    directory = Path(out_dir) / stream.name
    frames = [pl.read_ndjson(path, schema=stream.json_schema)
              for path in sorted(directory.glob("*.jsonl"), key=_order) if path.stat().st_size]
    frames += [pl.read_parquet(path) for path in sorted(directory.glob("*.parquet"), key=_order)]
    if not frames:
        return pl.DataFrame(schema=stream.schema)
    return stream.conform(pl.concat(frames, how="vertical_relaxed"))
