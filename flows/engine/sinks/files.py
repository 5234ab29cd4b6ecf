"""File sinks: each output stream as JSON Lines (or Parquet) under one directory.

In: ``(key, frame)`` items of one stream: typed rows, as its declaration
(:class:`~flows.engine.streams.OutputStream`) says. JSON Lines render them
(times as ISO-8601 with ``Z``, bytes as text); Parquet keeps the types
(times as UTC timestamps). :func:`read_stream` reads either back as a typed
frame. Out: ``<dir>/part-0000.jsonl``
(rows appended in arrival order) or ``<dir>/part-0000-<seq>.parquet`` (one
file per write). Exactly once with Bytewax recovery: a part's snapshot is
its size (or next file number), and a resumed run first cuts the part back
to it, so the replayed epoch is written again instead of twice. A fresh run
(no resume state) replaces what a previous run left in that part, and
:meth:`FileSink.clear` removes every part at the start of a fresh run
(Bytewax builds a part only when rows come, so a stream that gets none
would keep an older run's files). :func:`writable_directory` checks the
outputs' directory at start-up.
"""

from __future__ import annotations

import os
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
                 stream: OutputStream | None = None):
        self.stream = stream  # None: frames are written as they come (engine-form frames, in tests)
        self.directory = Path(directory)
        self.format = fmt
        self.parts = parts

    def list_parts(self) -> list[str]:
        return [f"part-{index:04d}" for index in range(self.parts)]

    def clear(self) -> None:
        """Remove every part this sink writes (a fresh run's start: a stream without rows is then empty)."""
        for part in self.list_parts():
            for stale in (*self.directory.glob(f"{part}.jsonl"), *self.directory.glob(f"{part}-*.parquet")):
                stale.unlink()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> StatefulSinkPartition:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            return _ParquetPart(self.stream, self.directory, for_part, resume_state)
        return _JsonLinesPart(self.stream, self.directory / f"{for_part}.jsonl", resume_state)


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


class _JsonLinesPart(StatefulSinkPartition[pl.DataFrame, int]):
    def __init__(self, stream: OutputStream | None, path: Path, resume: int | None):
        self.stream = stream
        self.path = path
        if resume is None or not path.exists():
            self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.handle = open(path, "r+b")  # noqa: SIM115
            self.handle.truncate(resume)
            self.handle.seek(resume)

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        frame = _frames(values, self.stream)
        if frame is not None:
            (self.stream.to_json(frame) if self.stream is not None else frame).write_ndjson(self.handle)

    def snapshot(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()


class _ParquetPart(StatefulSinkPartition[pl.DataFrame, int]):
    def __init__(self, stream: OutputStream | None, directory: Path, part: str, resume: int | None):
        self.stream = stream
        self.directory = directory
        self.part = part
        self.next_file = resume or 0
        for stale in directory.glob(f"{part}-*.parquet"):
            if int(stale.stem.rsplit("-", 1)[1]) >= self.next_file:
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
    frames = [pl.read_ndjson(path, schema=stream.json_schema) for path in sorted(directory.glob("*.jsonl"))
              if path.stat().st_size]
    frames += [pl.read_parquet(path) for path in sorted(directory.glob("*.parquet"))]
    if not frames:
        return pl.DataFrame(schema=stream.schema)
    return stream.conform(pl.concat(frames, how="vertical_relaxed"))
