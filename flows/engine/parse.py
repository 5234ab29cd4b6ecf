"""Parsing: records -> string fields, and which records do not parse, and why.

In: a :class:`~flows.engine.schema.RawBatch` (JSON Lines or CSV, one chunk
of lines or a list of messages) and the event fields a flow reads. Out, from
:meth:`Records.parse`: a frame of those fields as strings (price and
quantity as numbers when the whole batch allows), each row's record index,
and for every record that does not parse, why (:meth:`Records.dead_letters`).

Fast path: Polars parses the whole batch at once. Only when that fails are
its lines split out: Polars parses them in groups (and the failing groups in
sub-groups), a cheap Python check names suspects among the lines of groups
that still fail, each suspect is parsed by Polars alone and the rest together
(bisecting if Python and Polars ever disagree). Polars is the only judge, so a
record parses to the same values, or the same reason, whichever path it took
and whatever batch it was in. Two things Polars parses without a word are
screened for on both paths: a lone UTF-16 surrogate escape in a string
(Polars turns it into NUL; only batches with a backslash are searched) and,
with ``duplicates="reject"``, a field given twice (Polars keeps the first;
finding them costs a regex pass over every batch).

A message's leading UTF-8 byte-order mark is dropped (a file's is dropped by
the file source); anywhere else it is just bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, cast

import numpy as np
import polars as pl

from flows.engine.diagnose import BOM, csv_fields, line_break_in_string, misread_reason, plausible, unparseable_reason
from flows.engine.readers import LONE_SURROGATE, concat_fields, empty_fields, reader
from flows.engine.schema import DEAD_LETTER_SCHEMA, RawBatch

_BLANK = b" \t\r"
_BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r]*(?:\n|$)")
_FANOUT = 16
_NARROWING_LEVELS = 2  # 16 groups, then 16 sub-groups of each that fails

Duplicates = Literal["first", "reject"]
"""A field given twice in one JSON object: the first occurrence counts (as Polars reads it), or a dead letter."""


def _text(data: bytes) -> pl.Series:
    """Bytes as a one-value String series; bytes that are not UTF-8 read as U+FFFD (they are no key)."""
    return pl.Series([data.decode("utf-8", "replace")])


# -- the records of a batch ---------------------------------------------------------


@dataclass(frozen=True)
class _Listed:
    """Records as a list: what to parse, the original bytes, and where each came from."""

    parse_lines: Sequence[bytes]
    originals: Sequence[bytes]
    numbers: list[int]
    """Line number (chunks) or offset (messages) of each record."""
    separator: str
    """Between the origin and the number in a position: ``:`` (line) or ``@`` (offset)."""
    keys: list[bytes | None] | None
    broken: dict[int, str] = field(default_factory=dict)
    """Messages that cannot be made one line, and why (see :func:`line_break_in_string`)."""

    def position(self, origin: str, index: int) -> str:
        return f"{origin}{self.separator}{self.numbers[index]}"


class Records:
    """The records of one batch, split into a Python list only when needed.

    A *record* is a non-blank line of a chunk, or one message of a list
    (an empty message is a record too, and a dead letter).
    """

    def __init__(self, raw: RawBatch, wanted: tuple[str, ...], duplicates: Duplicates = "first") -> None:
        self.raw = raw
        self.reader = reader(raw.format, raw.csv_header, wanted)
        self.parse_fn = self.reader.read
        self.screen = raw.format == "jsonl"  # CSV has no keys to repeat and no escapes
        self.reject_duplicates = self.screen and duplicates == "reject"
        self.screen_pattern = self.reader.duplicate_screen if self.reject_duplicates else LONE_SURROGATE
        self.is_chunk = isinstance(raw.payload, (bytes, bytearray, memoryview))
        self.unparseable: list[tuple[int, str]] = []

    @cached_property
    def listed(self) -> _Listed:
        raw = self.raw
        if self.is_chunk:
            view = _ChunkLines.of(bytes(cast(bytes, raw.payload)), raw.first_line)
            if view is not None:
                return _Listed(view, view, view.numbers, ":", None)
            split = bytes(cast(bytes, raw.payload)).split(b"\n")
            numbered = [(number, line) for number, line in enumerate(split, start=raw.first_line) if line.strip(_BLANK)]
            lines = [line[:-1] if line.endswith(b"\r") else line for _, line in numbered]
            return _Listed(lines, lines, [number for number, _ in numbered], ":", None)
        originals = [bytes(message) if message is not None else b"" for message in raw.payload]
        offsets = list(raw.offsets) if raw.offsets is not None else list(range(len(originals)))
        keys = list(raw.keys) if raw.keys is not None else None
        lines = [o.removeprefix(BOM) for o in originals]
        # A raw line break in valid JSON can only be whitespace: flatten it so
        # one message stays one line (unless it sits inside a string).
        broken = {}
        if raw.format == "jsonl":
            broken = {i: r for i, o in enumerate(lines)
                      if (b"\n" in o or b"\r" in o) and (r := line_break_in_string(o))}
        lines = [o.replace(b"\n", b" ").replace(b"\r", b" ") if b"\n" in o or b"\r" in o else o for o in lines]
        return _Listed(lines, originals, offsets, "@", keys, broken)

    def parse(self) -> tuple[pl.DataFrame, list[int] | None]:
        """Parse every record: the string fields, and each row's record index.

        The index list is ``None`` after the fast path, where row ``i`` is
        record ``i`` (see :meth:`fast_path_rows`).
        """
        if self.is_chunk:
            chunk = bytes(cast(bytes, self.raw.payload))  # is_chunk: bytes, bytearray or memoryview
            if chunk[:1] in (b"", b" ", b"\t", b"\r", b"\n") and not chunk.strip(_BLANK + b"\n"):
                return empty_fields(), []
            if self.raw.format == "csv" and _BLANK_LINE.search(chunk.rstrip(_BLANK + b"\n")):
                return self.parse_listed(known_bad=False)  # CSV blank lines would become rows
        else:
            # Messages: join them into one chunk when each is one non-empty line
            # (the usual case); anything else takes the careful path.
            messages = self.raw.payload
            if not messages or not all(messages):
                return self.parse_listed(known_bad=False)
            chunk = b"\n".join(messages)  # type: ignore[arg-type]
            if chunk.count(b"\n") != len(messages) - 1:
                return self.parse_listed(known_bad=False)
        try:
            frame = self._parse_chunk(chunk)
        except Exception:
            return self.parse_listed(known_bad=True)
        if self.raw.format == "csv" and not self._csv_rows_exact(chunk, frame.height):
            return self.parse_listed(known_bad=False)
        if not self.is_chunk and frame.height != len(self.raw.payload):
            return self.parse_listed(known_bad=False)  # e.g. a message of only spaces
        if self._suspect(chunk):
            return self.parse_listed(known_bad=False)  # a field twice, or a lone surrogate: look closer
        return frame, None

    def _parse_chunk(self, chunk: bytes) -> pl.DataFrame:
        try:
            return self.parse_fn(chunk)
        except Exception:
            if self.is_chunk or BOM not in chunk:
                raise
        # Messages that start with a byte-order mark (some producers write one): drop it.
        chunk = chunk.replace(b"\n" + BOM, b"\n")
        return self.parse_fn(chunk.removeprefix(BOM))

    def _suspect(self, chunk: bytes) -> bool:
        """Whether a record of a chunk Polars parsed may give a field twice or hold a lone surrogate.

        Without duplicate fields to look for, only a chunk with a backslash
        (an escape) is searched: finding none is a memchr, ~1 ms a 16 MB chunk.
        """
        if not self.screen or not (self.reject_duplicates or b"\\" in chunk):
            return False
        return bool(_text(chunk).str.contains(self.screen_pattern).item())

    def _csv_rows_exact(self, chunk: bytes, height: int) -> bool:
        """Whether every line was one row of exactly the header's width.

        Polars pads a short line with nulls (unless it is the first), so a
        short line must be caught here or its fate would depend on where the
        batch boundary fell. Without quotes, the comma count settles it: no
        line can be longer (that is a parse error) and the total is exact.
        """
        lines = chunk.rstrip(b"\n").count(b"\n") + 1
        width = len(self.raw.csv_header or ())
        return height == lines and b'"' not in chunk and chunk.count(b",") == (width - 1) * lines

    def fast_path_rows(self, height: int) -> list[int] | None:
        """Row -> record index after the fast path, if the parser saw the same records."""
        count = len(self.listed.parse_lines)
        return list(range(count)) if count == height else None

    def parse_listed(self, *, known_bad: bool) -> tuple[pl.DataFrame, list[int]]:
        """Parse record by record (well, nearly): the careful path.

        Polars is the only judge of a record, so a record decodes the same on
        either path. To keep the number of Polars calls small, a cheap Python
        check names *suspects*; each suspect is parsed alone, and the rest are
        parsed together (falling back to bisection in the rare case Python and
        Polars disagree).
        """
        lines = self.listed.parse_lines
        counts: dict[int, int] = {}
        if isinstance(lines, _ChunkLines):  # no blank lines by construction
            nonblank, self.unparseable = list(range(len(lines))), []
        else:
            broken = self.listed.broken
            nonblank = [i for i, line in enumerate(lines) if line.strip(_BLANK) and i not in broken]
            self.unparseable = [(i, "empty record") for i, line in enumerate(lines) if not line.strip(_BLANK)]
            self.unparseable += broken.items()
        if self.raw.format == "csv":
            width = len(self.raw.csv_header or ())
            counts = {i: csv_fields(lines[i]) for i in nonblank}
            self.unparseable += [
                (i, f"malformed CSV ({n} fields, the header has {width})")
                for i, n in counts.items()
                if n not in (width, -1)
            ]
            nonblank = [i for i in nonblank if counts[i] in (width, -1)]
        if self.screen:
            nonblank = self._screened(lines, nonblank)
        frames: list[pl.DataFrame] = []
        rows: list[int] = []
        if self.raw.format == "csv" and -1 in counts.values():
            # Python cannot count its fields: Polars judges it alone, where it
            # cannot pad it as a short line in the middle of a group.
            for index in (i for i in nonblank if counts[i] == -1):
                self._bisect(lines, [index], frames, rows)
            nonblank = [i for i in nonblank if counts[i] != -1]
        if known_bad:
            # Narrow the search with Polars first (a bad line or two in a big
            # batch costs a few dozen small parses instead of a Python check of
            # every line), then check only the lines of the groups that failed.
            nonblank = self._failing(lines, nonblank, frames, rows, _NARROWING_LEVELS)
            suspects = [i for i in nonblank if not plausible(lines[i], self.raw.format)]
            for index in suspects:
                self._bisect(lines, [index], frames, rows)
            if suspects:
                suspect_set = set(suspects)
                nonblank = [i for i in nonblank if i not in suspect_set]
        self._bisect(lines, nonblank, frames, rows)
        order = sorted(range(len(rows)), key=rows.__getitem__)
        fields = concat_fields(frames)
        if order != list(range(len(rows))):
            fields = fields[order]
            rows = [rows[i] for i in order]
        return fields, rows

    def _screened(self, lines: Sequence[bytes], indices: list[int]) -> list[int]:
        """``indices`` less the records Polars would read wrongly without a word (now unparseable).

        A regex over all the lines names candidates (see :meth:`_suspect`);
        Python decides each candidate exactly.
        """
        if not indices or not (self.reject_duplicates or self._escapes):
            return indices
        # One line per index (a run of _ChunkLines may hold blanks).
        text = _text(b"\n".join([lines[i] for i in indices]))
        if not text.str.contains(self.screen_pattern).item():
            return indices
        candidates = text.str.split("\n").explode().str.contains(self.screen_pattern).arg_true().to_list()
        found = {}
        for index in (indices[position] for position in candidates):
            reason = misread_reason(lines[index], self.reader.keys, duplicates=self.reject_duplicates)
            if reason is not None:
                found[index] = reason
        self.unparseable += found.items()
        return [i for i in indices if i not in found] if found else indices

    @cached_property
    def _escapes(self) -> bool:
        """Whether any record has a backslash (a memchr for a chunk)."""
        if self.is_chunk:
            return b"\\" in bytes(cast(bytes, self.raw.payload))
        return any(b"\\" in line for line in self.listed.parse_lines)

    def _failing(self, lines: Sequence[bytes], indices: list[int], frames: list, rows: list[int],
                 levels: int) -> list[int]:
        """Parse ``indices`` in groups, ``levels`` deep; keep what parses, return the lines of groups that failed."""
        if levels == 0 or len(indices) <= _FANOUT:
            return indices
        failed: list[int] = []
        step = -(-len(indices) // _FANOUT)
        for start in range(0, len(indices), step):
            group = indices[start : start + step]
            try:
                frame = self.parse_fn(_join(lines, group))
            except Exception:
                frame = None
            if frame is not None and frame.height == len(group):
                frames.append(frame)
                rows.extend(group)
            else:
                failed.extend(self._failing(lines, group, frames, rows, levels - 1))
        return failed

    def _bisect(self, lines: Sequence[bytes], indices: list[int], frames: list, rows: list[int]) -> None:
        """Parse ``indices`` in order; split any group Polars rejects, down to single lines."""
        if not indices:
            return
        try:
            frame = self.parse_fn(_join(lines, indices))
            if frame.height == len(indices):
                frames.append(frame)
                rows.extend(indices)
                return
            error: Exception = ValueError("one record became several rows")
        except Exception as ex:
            error = ex
        if len(indices) == 1:
            index = indices[0]
            self.unparseable.append((index, unparseable_reason(lines[index], self.raw.format, error)))
            return
        step = -(-len(indices) // _FANOUT)
        for start in range(0, len(indices), step):
            self._bisect(lines, indices[start : start + step], frames, rows)

    def dead_letters(self, invalid: list[tuple[int, str]]) -> pl.DataFrame:
        """Dead letters for invalid and unparseable records, in record order."""
        entries = sorted(invalid + self.unparseable)
        if not entries:
            return pl.DataFrame(schema=DEAD_LETTER_SCHEMA)
        listed = self.listed
        return pl.DataFrame(
            {
                "reason": [reason for _, reason in entries],
                "raw": [listed.originals[i] for i, _ in entries],
                "source": [listed.position(self.raw.origin, i) for i, _ in entries],
                "key": [listed.keys[i] if listed.keys is not None else None for i, _ in entries],
                # Records are events or dead letters, in order: the k-th dead letter follows i - k events.
                "events_before": [i - k for k, (i, _) in enumerate(entries)],
            },
            schema=DEAD_LETTER_SCHEMA,
        )


class _ChunkLines(Sequence[bytes]):
    """The lines of a chunk as offsets into it: no Python object per line until one is asked for.

    Only for chunks without blank lines or carriage returns (the usual
    case); a contiguous run of lines is one slice of the chunk.
    """

    def __init__(self, chunk: bytes, starts: list[int], ends: list[int], numbers: list[int]) -> None:
        self.chunk, self.starts, self.ends, self.numbers = chunk, starts, ends, numbers

    @classmethod
    def of(cls, chunk: bytes, first_line: int) -> _ChunkLines | None:
        if b"\r" in chunk:
            return None
        data = np.frombuffer(chunk, dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(chunk)]))
        keep = ends > starts  # empty lines are not records
        starts, ends = starts[keep], ends[keep]
        indented = np.flatnonzero((data[starts] == 32) | (data[starts] == 9))
        if any(not chunk[starts[i] : ends[i]].strip(_BLANK) for i in indented.tolist()):
            return None  # a line of only spaces: leave it to the careful listing
        numbers = np.arange(first_line, first_line + len(keep))[keep]
        return cls(chunk, starts.tolist(), ends.tolist(), numbers.tolist())

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.chunk[self.starts[index] : self.ends[index]]

    def join(self, indices: list[int]) -> bytes:
        if indices[-1] - indices[0] + 1 == len(indices):  # a run: one slice
            return self.chunk[self.starts[indices[0]] : self.ends[indices[-1]]]
        return b"\n".join(self[i] for i in indices)


def _join(lines: Sequence[bytes], indices: list[int]) -> bytes:
    if isinstance(lines, _ChunkLines):
        return lines.join(indices)
    return b"\n".join(lines[i] for i in indices)
