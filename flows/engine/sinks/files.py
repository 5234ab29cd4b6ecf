"""File sinks: each output stream as JSON Lines (or Parquet) under one directory.

In: ``(key, frame)`` items of one stream (rendered by ``present`` when the
stream's rows need it, e.g. dead letters' bytes as text). Out: ``<dir>/part-0000.jsonl``
(rows appended in arrival order) or ``<dir>/part-0000-<seq>.parquet`` (one
file per write). Exactly once with Bytewax recovery: a part's snapshot is
its size (or next file number), and a resumed run first cuts the part back
to it, so the replayed epoch is written again instead of twice. A fresh run
(no resume state) replaces what a previous run left in that part.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable

import polars as pl
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.engine.config import OutputFormat


class FileSink(FixedPartitionedSink[pl.DataFrame, int]):
    """Writes the frames of one stream into ``parts`` files in ``directory``.

    Items are routed to a part by key, so a key's rows stay in order in one
    file. Every worker lists every part (a shared directory); Bytewax gives
    each part to one worker.
    """

    def __init__(
        self,
        directory: Path | str,
        fmt: OutputFormat = "jsonl",
        parts: int = 1,
        present: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ):
        self.directory = Path(directory)
        self.format = fmt
        self.parts = parts
        self.present = present

    def list_parts(self) -> list[str]:
        return [f"part-{index:04d}" for index in range(self.parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> StatefulSinkPartition:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            return _ParquetPart(self.directory, for_part, resume_state, self.present)
        return _JsonLinesPart(self.directory / f"{for_part}.jsonl", resume_state, self.present)


def _frames(values: list, present: Callable[[pl.DataFrame], pl.DataFrame] | None) -> pl.DataFrame | None:
    """The non-empty frames of a write (values may be frames or ``(key, frame)``), as one."""
    frames = [value[1] if isinstance(value, tuple) else value for value in values]
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return None
    frame = pl.concat(frames, how="vertical_relaxed")
    return present(frame) if present is not None else frame


class _JsonLinesPart(StatefulSinkPartition[pl.DataFrame, int]):
    def __init__(self, path: Path, resume: int | None, present: Callable[[pl.DataFrame], pl.DataFrame] | None):
        self.path = path
        self.present = present
        if resume is None or not path.exists():
            self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.handle = open(path, "r+b")  # noqa: SIM115
            self.handle.truncate(resume)
            self.handle.seek(resume)

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        frame = _frames(values, self.present)
        if frame is not None:
            frame.write_ndjson(self.handle)

    def snapshot(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()


class _ParquetPart(StatefulSinkPartition[pl.DataFrame, int]):
    def __init__(
        self, directory: Path, part: str, resume: int | None, present: Callable[[pl.DataFrame], pl.DataFrame] | None
    ):
        self.directory = directory
        self.present = present
        self.part = part
        self.next_file = resume or 0
        for stale in directory.glob(f"{part}-*.parquet"):
            if int(stale.stem.rsplit("-", 1)[1]) >= self.next_file:
                stale.unlink()

    def write_batch(self, values: list[pl.DataFrame]) -> None:
        frame = _frames(values, self.present)
        if frame is None:
            return
        frame.write_parquet(self.directory / f"{self.part}-{self.next_file:06d}.parquet")
        self.next_file += 1

    def snapshot(self) -> int:
        return self.next_file
