"""Readers: a chunk of JSON Lines or CSV -> a Polars frame of the event fields, as text.

In: the bytes of whole lines, the batch format (and a CSV header), and the
event fields a flow reads. Out: a :class:`Reader` whose ``read`` gives one
row per line, each field a string column (price and quantity as numbers when
the whole chunk allows), or raises when Polars refuses a line. Which lines to
read, and what to do when one is refused, is :mod:`flows.engine.parse`'s job.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import polars as pl

from flows.engine.schema import RecordFormat

# Canonical field names, and the other names they may arrive under.
FIELDS = (
    "event_id",
    "event_type",
    "ts",
    "purchase_time",
    "user_id",
    "session_id",
    "product_id",
    "category",
    "category_id",
    "brand",
    "price",
    "quantity",
)
ALIASES = {"event_time": "ts", "user_session": "session_id", "category_code": "category"}
NUMBERS: dict[str, pl.DataType | type[pl.DataType]] = {"price": pl.Float64, "quantity": pl.Int64}
_REQUIRED_CSV = ({"ts", "event_time"}, {"event_type"}, {"user_id"}, {"product_id"})
LONE_SURROGATE = r"\\u[dD][89abAB][0-9a-fA-F]{2}(?:[^\\]|\\[^u])"
"""A high surrogate escape not followed by another escape: Polars reads it as NUL (a low one it refuses)."""
_ESCAPED_KEY = r'\\u[0-9A-Fa-f]{4}(?:[A-Za-z0-9_]|\\u[0-9A-Fa-f]{4})*"\s*:'
# Polars' messages for lines that are not JSON objects at all (as opposed to a
# value of another type, which a second read as text fixes).
_NOT_JSON_LINES = re.compile(r"error parsing line|expected to contain JSON object|InvalidUtf8")


def missing_csv_columns(header: Sequence[str]) -> list[str]:
    """Required columns a CSV header lacks (names as a user would write them)."""
    present = set(header)
    return ["/".join(sorted(group)) for group in _REQUIRED_CSV if not group & present]


ReadFn = Callable[[bytes], pl.DataFrame]


@dataclass(frozen=True)
class Reader:
    """How to read one batch format into string columns, and which JSON keys feed them."""

    read: ReadFn
    keys: dict[str, tuple[str, ...]]
    """Each column and the JSON keys it is read from, first key first (JSON only)."""

    @cached_property
    def duplicate_screen(self) -> str:
        """A regex matching every line Polars may read wrongly without a word (a superset, checked exactly).

        The same key of ours twice on one line, any key spelt with a ``\\u``
        escape (it may be one of ours in disguise), and a lone UTF-16
        surrogate escape (:data:`LONE_SURROGATE`).
        """
        names = sorted(key for keys in self.keys.values() for key in keys)
        twice = "|".join(f'"{name}"\\s*:[^\\n]*"{name}"\\s*:' for name in names)
        return f"{twice}|{_ESCAPED_KEY}|{LONE_SURROGATE}"


@functools.lru_cache(maxsize=64)
def reader(fmt: RecordFormat, header: tuple[str, ...] | None, wanted: tuple[str, ...]) -> Reader:
    """A reader of chunks into string columns: the ``wanted`` fields and what they derive from."""
    fields = {*wanted, "purchase_time"}  # purchase_time stands in for ts and event_type
    if fmt == "jsonl":
        names = [n for n in FIELDS if n in fields] + [a for a, c in ALIASES.items() if c in fields]
        text = pl.Schema({name: pl.String for name in names})
        typed = pl.Schema({**text, **NUMBERS})
        aliases = {a: c for a, c in ALIASES.items() if c in fields}
        keys = {n: (n, *(a for a, c in aliases.items() if c == n)) for n in FIELDS if n in fields}
        return Reader(lambda chunk: _parse_json(chunk, typed, text, aliases), keys)
    if fmt == "csv":
        if not header:
            msg = "a CSV batch needs its header (RawBatch.csv_header)"
            raise ValueError(msg)
        columns = _csv_columns(header)
        keep = [name for name in columns if name in fields]
        return Reader(lambda chunk: _parse_csv(chunk, columns, keep), {})
    msg = f"unknown record format {fmt!r}; expected 'jsonl' or 'csv'"
    raise ValueError(msg)


def _parse_json(chunk: bytes, typed: pl.Schema, text: pl.Schema, aliases: dict[str, str]) -> pl.DataFrame:
    """Parse JSON Lines; numbers as numbers when every record allows it.

    Reading price and quantity as numbers is ~15% cheaper than as text, but
    Polars refuses a chunk where one of them is not a plain number (say a
    string price). Then the chunk is read again as text: the values decode
    the same either way (Polars writes a number as text that reads back as
    the same number), only the cost differs.
    """
    try:
        frame = pl.read_ndjson(io.BytesIO(chunk), schema=typed)
    except Exception as ex:  # a non-numeric price/quantity, or a bad line
        if _NOT_JSON_LINES.search(str(ex)):
            raise  # reading it as text would fail the same way
        frame = pl.read_ndjson(io.BytesIO(chunk), schema=text)
    # Fold aliases into canonical names; the canonical one wins. (An alias
    # nobody sent is all null: dropping it is free, coalescing is not.)
    used = {alias: canonical for alias, canonical in aliases.items() if frame[alias].null_count() < frame.height}
    if used:
        frame = frame.with_columns(pl.coalesce(canonical, alias).alias(canonical) for alias, canonical in used.items())
    return frame.drop(list(aliases))


def _csv_columns(header: Sequence[str]) -> list[str]:
    """Canonical names for a header; a repeated name keeps its first column."""
    columns: list[str] = []
    for position, name in enumerate(header):
        canonical = ALIASES.get(name.strip(), name.strip())
        columns.append(canonical if canonical not in columns else f"_ignored_{position}")
    return columns


def _parse_csv(chunk: bytes, columns: list[str], keep: list[str]) -> pl.DataFrame:
    # Polars drops a byte-order mark that starts its input, so a line would
    # read differently at the start of a batch than in its middle: put an
    # empty row first, and take it away again. (A file's own mark is gone by
    # now: it came with the header.)
    lead = chunk.startswith(codecs.BOM_UTF8)
    frame = pl.read_csv(
        io.BytesIO(b"," * (len(columns) - 1) + b"\n" + chunk if lead else chunk),
        has_header=False,
        new_columns=columns,
        schema={name: pl.String for name in columns},
        quote_char='"',
        encoding="utf8",
    )
    return frame.select(keep)[1:] if lead else frame.select(keep)


def concat_fields(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames of groups parsed apart, as one; numbers as text if any group read them as text."""
    if not frames:
        return empty_fields()
    if len({tuple(frame.schema.items()) for frame in frames}) > 1:
        frames = [
            frame.with_columns(pl.col(name).cast(pl.String) for name in NUMBERS if frame.schema.get(name) not in
                               (None, pl.String))
            for frame in frames
        ]
    return pl.concat(frames, how="vertical")


def empty_fields() -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys(FIELDS, pl.String))
