"""File source: JSON Lines and REES46-style CSV files, streamed in chunks.

In: one or more paths (``.jsonl``/``.ndjson``/``.json``/``.csv``, optionally
``.gz``). Out: :class:`RawBatch` items of whole lines, about ``batch_bytes``
each, so a 5 GB file never sits in memory. Each file is one source
partition (its name is the path); its position (byte offset and line
number) is the partition's snapshot, so a resumed run re-reads nothing that
was already snapshotted. A file's final batch has ``last=True``. A UTF-8
byte-order mark at the start of a file is dropped (a CSV's is read with
its header).
"""

from __future__ import annotations

import codecs
import dataclasses
import glob
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.engine.config import InputFormat
from flows.engine.errors import ConfigError, SourceError
from flows.engine.readers import missing_csv_columns
from flows.engine.schema import RawBatch, RecordFormat

_JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def expand_inputs(spec: str) -> list[Path]:
    """Paths matched by a comma-separated list of paths or globs, sorted, deduplicated.

    Raises :class:`ConfigError` naming ``DMP_INPUT`` when a pattern matches nothing.
    """
    paths: list[Path] = []
    for pattern in (part.strip() for part in spec.split(",")):
        if not pattern:
            continue
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            msg = f"DMP_INPUT={spec!r}: {pattern!r} matches no file"
            raise ConfigError(msg)
        paths.extend(Path(m) for m in matches)
    unique = list(dict.fromkeys(paths))
    if not unique:
        msg = f"DMP_INPUT={spec!r}: no input files"
        raise ConfigError(msg)
    return unique


def detect_format(path: Path, declared: InputFormat = "auto") -> RecordFormat:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in _JSON_SUFFIXES:
        return "jsonl"
    msg = f"DMP_INPUT: cannot tell the format of {str(path)!r} from its name; set DMP_INPUT_FORMAT=jsonl or csv"
    raise ConfigError(msg)


def _open(path: Path) -> io.BufferedReader:
    if path.suffix.lower() == ".gz":
        return io.BufferedReader(gzip.open(path, "rb"))
    return open(path, "rb")


def read_csv_header(path: Path) -> tuple[tuple[str, ...], int]:
    """The header's column names and its length in bytes (with the newline)."""
    with _open(path) as handle:
        line = handle.readline()
    names = tuple(name.strip().strip('"') for name in line.decode("utf-8-sig").rstrip("\r\n").split(","))
    missing = missing_csv_columns(names)
    if missing:
        msg = f"DMP_INPUT: CSV file {str(path)!r} has no column {', '.join(missing)} (header: {', '.join(names)})"
        raise ConfigError(msg)
    return names, len(line)


@dataclass(frozen=True)
class FilePosition:
    """Where a file partition resumes: the next byte and the next line's number."""

    offset: int
    line: int
    done: bool = False


@dataclass(frozen=True)
class _FileSpec:
    path: Path
    format: RecordFormat
    header: tuple[str, ...] | None
    header_bytes: int


class FileSource(FixedPartitionedSource[RawBatch, FilePosition]):
    """One partition per file; see the module docstring.

    Every worker lists every file (they share a filesystem) and Bytewax
    gives each file to one of them.
    """

    def __init__(self, paths: Sequence[Path | str], fmt: InputFormat = "auto", batch_bytes: int = 8 << 20):
        self.batch_bytes = batch_bytes
        self.specs: dict[str, _FileSpec] = {}
        for path in map(Path, paths):
            if not path.is_file():
                msg = f"DMP_INPUT: {str(path)!r} is not a file"
                raise ConfigError(msg)
            record_format = detect_format(path, fmt)
            header, header_bytes = read_csv_header(path) if record_format == "csv" else (None, 0)
            self.specs[str(path)] = _FileSpec(path, record_format, header, header_bytes)

    def partitions(self) -> list[str]:
        """Every partition of this source, on every worker (the watermark needs them all)."""
        return list(self.specs)

    def list_parts(self) -> list[str]:
        return self.partitions()

    def sizes(self) -> dict[str, int]:
        """Bytes of each file (compressed, for ``.gz``): batches say how far they have read, ``RawBatch.read_to``."""
        return {name: spec.path.stat().st_size for name, spec in self.specs.items()}

    def build_part(self, step_id: str, for_part: str, resume_state: FilePosition | None) -> FilePartition:
        return FilePartition(for_part, self.specs[for_part], self.batch_bytes, resume_state)


class FilePartition(StatefulSourcePartition[RawBatch, FilePosition]):
    def __init__(self, name: str, spec: _FileSpec, batch_bytes: int, resume: FilePosition | None):
        self.name = name
        self.spec = spec
        self.batch_bytes = batch_bytes
        start = FilePosition(spec.header_bytes, 2 if spec.header else 1)
        self.position = resume if resume is not None else start
        self.handle: io.BufferedReader | None = None
        self.scratch = np.empty(0, dtype=bool)
        if not self.position.done:
            try:
                self.handle = _open(spec.path)
                self.handle.seek(self.position.offset)
            except OSError as ex:
                msg = f"cannot read input file {str(spec.path)!r}: {ex}"
                raise SourceError(msg) from ex

    def next_batch(self) -> list[RawBatch]:
        if self.position.done or self.handle is None:
            raise StopIteration
        chunk = self.handle.read(self.batch_bytes)
        if chunk and not chunk.endswith(b"\n"):
            chunk += self.handle.readline()  # finish the last line: batches hold whole lines
        at_end = not self.handle.peek(1)
        # The file's final batch (possibly empty) tells the flow this partition ended.
        lines = self._count_lines(chunk)
        batch = self._batch(chunk, lines + (bool(chunk) and not chunk.endswith(b"\n")), last=at_end)
        self.position = FilePosition(self.position.offset + len(chunk), self.position.line + lines, done=at_end)
        batch = dataclasses.replace(batch, read_to=self._read_to())
        if at_end:
            self.handle.close()
        return [batch]

    def _count_lines(self, chunk: bytes) -> int:
        """Newlines in ``chunk``: NumPy into a reused scratch buffer.

        Twice as fast as ``bytes.count``; reusing the buffer matters, since a
        fresh 16 MB array per batch costs more in page faults than the count.
        """
        if self.scratch.size < len(chunk):
            self.scratch = np.empty(len(chunk) * 2, dtype=bool)
        mask = self.scratch[: len(chunk)]
        np.equal(np.frombuffer(chunk, dtype=np.uint8), 10, out=mask)
        return int(np.count_nonzero(mask))

    def _batch(self, chunk: bytes, lines: int, *, last: bool) -> RawBatch:
        if self.position.offset == 0 and chunk.startswith(codecs.BOM_UTF8):
            chunk = chunk[len(codecs.BOM_UTF8) :]  # not part of the first record
        return RawBatch(
            partition=self.name,
            payload=chunk,
            format=self.spec.format,
            origin=str(self.spec.path),
            first_line=self.position.line,
            csv_header=self.spec.header,
            lines=lines,
            last=last,
        )

    def _read_to(self) -> int:
        """Bytes of the file read so far: of the compressed file for ``.gz`` (what :meth:`FileSource.sizes` counts)."""
        raw = self.handle.raw if self.handle is not None else None
        compressed = getattr(raw, "fileobj", None)
        return compressed.tell() if compressed is not None else self.position.offset

    def snapshot(self) -> FilePosition:
        return self.position

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
