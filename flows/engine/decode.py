"""Decoding: raw records -> events in ``EVENT_SCHEMA`` plus dead letters.

In: a :class:`~flows.engine.schema.RawBatch` (JSON Lines or CSV, as one
chunk of lines or as a list of messages). Out: a :class:`DecodeResult`
whose ``events`` keep the records' order and whose ``dead_letters`` say,
for every record that could not be decoded, why and where it came from.
``len(events) + len(dead_letters)`` always equals the number of records.

Fast path: Polars parses the whole chunk at once (ids and times read as
strings, since they may arrive as numbers or strings; price and quantity as
numbers when the whole chunk allows) and the checks run as column
expressions. Only when a chunk fails to parse are its lines split out:
Polars parses it in groups (and the failing groups in sub-groups), a cheap
Python check names suspects among the lines of groups that still fail, each
suspect is parsed by Polars alone and the rest together (bisecting if
Python and Polars ever disagree).
Polars is the only judge, so a line decodes to the same values, or the same
dead letter, whichever path it took and whatever batch it was in.

Field rules (JSON names; REES46 CSV columns are mapped onto them):

- ``ts`` (also ``event_time``, or ``purchase_time`` for the minimal purchase
  message): see :mod:`flows.engine.timeparse`. Required.
- ``event_type``: view, add_to_cart (``cart`` too), remove_from_cart,
  purchase. Missing means purchase when ``purchase_time`` is given.
- ``user_id``, ``product_id``: required; strings or integers, kept as strings
  (any other JSON value is kept as its JSON text).
- ``price``: a finite number >= 0, optional. ``quantity``: an integer >= 1,
  default 1.
- ``session_id`` (``user_session``), ``category`` (``category_code``),
  ``category_id``, ``brand``, ``event_id``: optional strings; empty is null.
  A flow may ask for only some of them; the others are not even parsed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from flows.engine.schema import (
    DEAD_LETTER_SCHEMA,
    OPTIONAL_FIELDS,
    EventType,
    RawBatch,
    RecordFormat,
    event_schema,
)
from flows.engine.timeparse import parse_event_time

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
_NUMBERS = {"price": pl.Float64, "quantity": pl.Int64}
_REQUIRED_CSV = ({"ts", "event_time"}, {"event_type"}, {"user_id"}, {"product_id"})
_BLANK = b" \t\r"
_BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r]*(?:\n|$)")
_FANOUT = 16
# Polars' messages for lines that are not JSON objects at all (as opposed to a
# value of another type, which a second read as text fixes).
_NOT_JSON_LINES = re.compile(r"error parsing line|expected to contain JSON object|InvalidUtf8")
_NARROWING_LEVELS = 2  # 16 groups, then 16 sub-groups of each that fails
_REASON_VALUE_CHARS = 60


@dataclass(frozen=True)
class DecodeResult:
    """Decoded events (``EVENT_SCHEMA``) and dead letters (``DEAD_LETTER_SCHEMA``)."""

    events: pl.DataFrame
    dead_letters: pl.DataFrame

    @property
    def records(self) -> int:
        return self.events.height + self.dead_letters.height


def missing_csv_columns(header: Sequence[str]) -> list[str]:
    """Required columns a CSV header lacks (names as a user would write them)."""
    present = set(header)
    return ["/".join(sorted(group)) for group in _REQUIRED_CSV if not group & present]


def decode_batch(raw: RawBatch, optional: Sequence[str] | None = None) -> DecodeResult:
    """Decode every record of ``raw``; never raises on bad data.

    ``optional`` names the optional event fields to decode (all by default);
    the events frame has :func:`~flows.engine.schema.event_schema` (optional).
    """
    schema = event_schema(optional)
    records = _Records(raw, _parser(raw.format, raw.csv_header, tuple(schema.names())))
    fields, rows = records.parse()
    events, invalid_rows, reasons = _normalize(fields, schema)
    if invalid_rows and rows is None:
        rows = records.fast_path_rows(fields.height)
        if rows is None:  # the parser skipped a line we count: take the careful path
            fields, rows = records.parse_listed(known_bad=False)
            events, invalid_rows, reasons = _normalize(fields, schema)
    assert rows is not None or not invalid_rows
    invalid = [(rows[row], reason) for row, reason in zip(invalid_rows, reasons)] if rows else []
    return DecodeResult(events, records.dead_letters(invalid))


# -- parsing -------------------------------------------------------------------

_ParseFn = Callable[[bytes], pl.DataFrame]


@functools.lru_cache(maxsize=64)
def _parser(fmt: RecordFormat, header: tuple[str, ...] | None, wanted: tuple[str, ...]) -> _ParseFn:
    """A parser of chunks into string columns: the ``wanted`` fields and what they derive from."""
    fields = {*wanted, "purchase_time"}  # purchase_time stands in for ts and event_type
    if fmt == "jsonl":
        names = [n for n in FIELDS if n in fields] + [a for a, c in ALIASES.items() if c in fields]
        text = pl.Schema({name: pl.String for name in names})
        typed = pl.Schema({**text, **_NUMBERS})
        aliases = {a: c for a, c in ALIASES.items() if c in fields}
        return lambda chunk: _parse_json(chunk, typed, text, aliases)
    if fmt == "csv":
        if not header:
            msg = "a CSV batch needs its header (RawBatch.csv_header)"
            raise ValueError(msg)
        columns = _csv_columns(header)
        keep = [name for name in columns if name in fields]
        return lambda chunk: _parse_csv(chunk, columns, keep)
    msg = f"unknown record format {fmt!r}; expected 'jsonl' or 'csv'"
    raise ValueError(msg)


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN / Infinity: Polars rejects them too


def _json_object(line: bytes) -> bool:
    """Cheap pre-check: does Python see one JSON object on this line?"""
    try:
        return isinstance(json.loads(line, parse_constant=_reject_constant), dict)
    except (ValueError, RecursionError):
        return False


def _csv_plausible(line: bytes) -> bool:
    """Cheap pre-check for a CSV line: UTF-8 with balanced quotes."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return line.count(b'"') % 2 == 0


def _csv_fields(line: bytes) -> int:
    """Number of fields of one CSV line (quote-aware only when it has quotes)."""
    if b'"' not in line:
        return line.count(b",") + 1
    try:
        return len(next(csv.reader([line.decode("utf-8")])))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return -1  # let the parser reject it with its own reason


def _parse_json(chunk: bytes, typed: pl.Schema, text: pl.Schema, aliases: dict[str, str]) -> pl.DataFrame:
    """Parse JSON Lines; numbers as numbers when every record allows it.

    Reading price and quantity as numbers is ~15% cheaper than as text, but
    Polars refuses a chunk where one of them is not a plain number (say a
    string price). Then the chunk is read again as text: the values decode
    the same either way (see :func:`_normalize`), only the cost differs.
    """
    try:
        frame = pl.read_ndjson(io.BytesIO(chunk), schema=typed)
    except Exception as ex:
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
    frame = pl.read_csv(
        io.BytesIO(chunk),
        has_header=False,
        new_columns=columns,
        schema={name: pl.String for name in columns},
        quote_char='"',
        encoding="utf8",
    )
    return frame.select(keep)


def _reason_unparseable(line: bytes, fmt: RecordFormat, error: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    text = str(error).strip()
    message = text.splitlines()[0] if text else type(error).__name__
    if fmt == "jsonl":
        if "expected to contain JSON object" in message:
            return "not a JSON object"
        return f"invalid JSON ({message.removeprefix('error parsing line: ')})"
    if "more fields" in message:
        return "malformed CSV (more fields than the header)"
    return "malformed CSV (unbalanced quote or bad field)"


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

    def position(self, origin: str, index: int) -> str:
        return f"{origin}{self.separator}{self.numbers[index]}"


class _Records:
    """The records of one batch, split into a Python list only when needed.

    A *record* is a non-blank line of a chunk, or one message of a list
    (an empty message is a record too, and a dead letter).
    """

    def __init__(self, raw: RawBatch, parse: _ParseFn) -> None:
        self.raw = raw
        self.parse_fn = parse
        self.is_chunk = isinstance(raw.payload, (bytes, bytearray, memoryview))
        self.unparseable: list[tuple[int, str]] = []

    @cached_property
    def listed(self) -> _Listed:
        raw = self.raw
        if self.is_chunk:
            view = _ChunkLines.of(bytes(raw.payload), raw.first_line)
            if view is not None:
                return _Listed(view, view, view.numbers, ":", None)  # type: ignore[arg-type]
            split = bytes(raw.payload).split(b"\n")
            numbered = [(number, line) for number, line in enumerate(split, start=raw.first_line) if line.strip(_BLANK)]
            lines = [line[:-1] if line.endswith(b"\r") else line for _, line in numbered]
            return _Listed(lines, lines, [number for number, _ in numbered], ":", None)
        originals = [bytes(message) if message is not None else b"" for message in raw.payload]  # type: ignore[union-attr]
        offsets = list(raw.offsets) if raw.offsets is not None else list(range(len(originals)))
        keys = list(raw.keys) if raw.keys is not None else None
        # A raw newline can only be JSON whitespace (or garbage): flatten it so
        # one message stays one line.
        lines = [o.replace(b"\n", b" ").replace(b"\r", b" ") if b"\n" in o or b"\r" in o else o for o in originals]
        return _Listed(lines, originals, offsets, "@", keys)

    def parse(self) -> tuple[pl.DataFrame, list[int] | None]:
        """Parse every record: the string fields, and each row's record index.

        The index list is ``None`` after the fast path, where row ``i`` is
        record ``i`` (see :meth:`fast_path_rows`).
        """
        if self.is_chunk:
            chunk = bytes(self.raw.payload)
            if not chunk.strip(_BLANK + b"\n"):
                return _empty_fields(), []
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
            frame = self.parse_fn(chunk)
        except Exception:
            return self.parse_listed(known_bad=True)
        if self.raw.format == "csv" and not self._csv_rows_exact(chunk, frame.height):
            return self.parse_listed(known_bad=False)
        if not self.is_chunk and frame.height != len(self.raw.payload):
            return self.parse_listed(known_bad=False)  # e.g. a message of only spaces
        return frame, None

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
        if isinstance(lines, _ChunkLines):  # no blank lines by construction
            nonblank, self.unparseable = list(range(len(lines))), []
        else:
            nonblank = [i for i, line in enumerate(lines) if line.strip(_BLANK)]
            self.unparseable = [(i, "empty record") for i, line in enumerate(lines) if not line.strip(_BLANK)]
        if self.raw.format == "csv":
            width = len(self.raw.csv_header or ())
            counts = {i: _csv_fields(lines[i]) for i in nonblank}
            self.unparseable += [
                (i, f"malformed CSV ({n} fields, the header has {width})")
                for i, n in counts.items()
                if n not in (width, -1)
            ]
            nonblank = [i for i in nonblank if counts[i] in (width, -1)]
        frames: list[pl.DataFrame] = []
        rows: list[int] = []
        if known_bad:
            # Narrow the search with Polars first (a bad line or two in a big
            # batch costs a few dozen small parses instead of a Python check of
            # every line), then check only the lines of the groups that failed.
            nonblank = self._failing(lines, nonblank, frames, rows, _NARROWING_LEVELS)
            check = _json_object if self.raw.format == "jsonl" else _csv_plausible
            suspects = [i for i in nonblank if not check(lines[i])]
            for index in suspects:
                self._bisect(lines, [index], frames, rows)
            if suspects:
                suspect_set = set(suspects)
                nonblank = [i for i in nonblank if i not in suspect_set]
        self._bisect(lines, nonblank, frames, rows)
        order = sorted(range(len(rows)), key=rows.__getitem__)
        fields = pl.concat(frames, how="vertical") if frames else _empty_fields()
        if order != list(range(len(rows))):
            fields = fields[order]
            rows = [rows[i] for i in order]
        return fields, rows

    def _failing(self, lines: list[bytes], indices: list[int], frames: list, rows: list[int], levels: int) -> list[int]:
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

    def _bisect(self, lines: list[bytes], indices: list[int], frames: list, rows: list[int]) -> None:
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
            self.unparseable.append((index, _reason_unparseable(lines[index], self.raw.format, error)))
            return
        self._split(lines, indices, frames, rows)

    def _split(self, lines: list[bytes], indices: list[int], frames: list, rows: list[int]) -> None:
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

    def __getitem__(self, index):  # type: ignore[override]
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


def _empty_fields() -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys(FIELDS, pl.String))


# -- normalising and validating -------------------------------------------------


@dataclass(frozen=True)
class _Fields:
    """Parsed string fields plus a few facts about them, so clean data is not copied.

    Turning empty strings into nulls, or ``cart`` into ``add_to_cart``,
    copies a whole string column; one cheap query per batch says which
    columns need it at all (usually none).
    """

    frame: pl.DataFrame
    with_empties: frozenset[str]
    has_cart: bool

    @classmethod
    def inspect(cls, frame: pl.DataFrame) -> _Fields:
        texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
        if not frame.height or not texts:
            return cls(frame, frozenset(), False)
        facts = frame.select(
            *((pl.col(name).str.len_bytes() == 0).any().alias(name) for name in texts),
            (pl.col("event_type") == "cart").any().alias("_cart") if "event_type" in texts else pl.lit(False).alias("_cart"),
        ).row(0, named=True)
        return cls(frame, frozenset(n for n in texts if facts[n]), bool(facts["_cart"]))

    def has(self, name: str) -> bool:
        return name in self.frame.columns and self.frame[name].null_count() < self.frame.height

    def text(self, name: str) -> pl.Expr:
        """A field as a string column; empty strings and absent columns are null."""
        if name not in self.frame.columns:
            return pl.lit(None, pl.String)
        column = pl.col(name)
        return pl.when(column.str.len_bytes() > 0).then(column) if name in self.with_empties else column

    def number(self, name: str, alias: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
        """A numeric field as (given?, its text if parsed as text, its value).

        The text is only quoted in the reason of a value that is not a
        number at all, which can only happen when it was parsed as text.
        """
        dtype = _NUMBERS[name]
        if name not in self.frame.columns:
            return (pl.lit(False).alias(f"{name}_given"), pl.lit(None, pl.String).alias(f"{name}_text"),
                    pl.lit(None, dtype).alias(alias))
        if self.frame.schema[name] == pl.String:
            text = self.text(name)
            return (text.is_not_null().alias(f"{name}_given"), text.alias(f"{name}_text"),
                    text.cast(dtype, strict=False).alias(alias))
        value = pl.col(name).cast(dtype)
        return value.is_not_null().alias(f"{name}_given"), pl.lit(None, pl.String).alias(f"{name}_text"), value.alias(alias)


def _normalize(frame: pl.DataFrame, schema: pl.Schema) -> tuple[pl.DataFrame, list[int], list[str]]:
    """Typed events (``schema``) for valid rows; row numbers and reasons for the others."""
    fields = _Fields.inspect(frame)
    ts_text, type_text = fields.text("ts"), fields.text("event_type")
    if fields.has("purchase_time"):
        # The minimal purchase message: purchase_time stands for ts and event_type.
        ts_text = pl.coalesce(ts_text, fields.text("purchase_time"))
        type_text = pl.coalesce(type_text, pl.when(fields.text("purchase_time").is_not_null()).then(pl.lit("purchase")))
    if fields.has_cart:
        type_text = type_text.replace("cart", "add_to_cart")
    optional = [name for name in OPTIONAL_FIELDS if name in schema]
    staged = frame.select(
        type_text.alias("type_text"),
        ts_text.alias("ts_text"),
        fields.text("user_id").alias("user_id"),
        fields.text("product_id").alias("product_id"),
        *fields.number("price", "price"),
        *fields.number("quantity", "quantity_number"),
        *(fields.text(name).alias(name) for name in optional),
    )
    staged = staged.with_columns(
        parse_event_time(staged["ts_text"]).alias("ts"),
        pl.col("type_text").cast(EventType, strict=False).alias("event_type"),
    )
    price, quantity = pl.col("price"), pl.col("quantity_number")
    price_ok = ~pl.col("price_given") | (price.is_finite() & (price >= 0))
    quantity_ok = ~pl.col("quantity_given") | (quantity >= 1)
    valid = staged.select(
        (
            pl.col("ts").is_not_null()
            & pl.col("event_type").is_not_null()
            & pl.col("user_id").is_not_null()
            & pl.col("product_id").is_not_null()
            & price_ok
            & quantity_ok
        )
        .fill_null(False)
        .alias("valid")
    ).to_series()
    typed = [quantity.fill_null(1).alias(name) if name == "quantity" else pl.col(name) for name in schema.names()]
    if valid.all():  # the usual case: no filtering copies
        return staged.select(typed), [], []
    events = staged.filter(valid).select(typed)
    invalid = staged.with_row_index("_row").filter(~valid)
    reasons = invalid.select(_reason().alias("reason"))["reason"].to_list()
    return events, invalid["_row"].to_list(), reasons


def _quoted(name: str) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), pl.col(name).str.slice(0, _REASON_VALUE_CHARS), pl.lit("'"))


def _reason() -> pl.Expr:
    """The first rule a row breaks, as a sentence (only evaluated on invalid rows)."""

    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("ts_text").is_null(), pl.lit("missing ts")),
        (pl.col("ts").is_null(), pl.concat_str(pl.lit("unparseable ts "), _quoted("ts_text"))),
        (pl.col("user_id").is_null(), pl.lit("missing user_id")),
        (pl.col("product_id").is_null(), pl.lit("missing product_id")),
        (pl.col("type_text").is_null(), pl.lit("missing event_type")),
        (
            pl.col("event_type").is_null(),
            pl.concat_str(pl.lit("unknown event_type "), _quoted("type_text")),
        ),
        (
            pl.col("price_given") & (pl.col("price").is_null() | ~pl.col("price").is_finite()),
            pl.concat_str(pl.lit("price is not a finite number: "), _quoted("price_text")),
        ),
        (pl.col("price") < 0, pl.concat_str(pl.lit("negative price: "), pl.col("price").cast(pl.String))),
        (
            pl.col("quantity_given") & pl.col("quantity_number").is_null(),
            pl.concat_str(pl.lit("quantity is not an integer: "), _quoted("quantity_text")),
        ),
        (
            pl.col("quantity_number") < 1,
            pl.concat_str(pl.lit("non-positive quantity: "), pl.col("quantity_number").cast(pl.String)),
        ),
    ]
    condition, message = rules[0]
    chain = pl.when(condition.fill_null(False)).then(message)
    for condition, message in rules[1:]:
        chain = chain.when(condition.fill_null(False)).then(message)
    return chain.otherwise(pl.lit("invalid record"))
