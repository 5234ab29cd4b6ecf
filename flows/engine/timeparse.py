"""Event-time parsing: a column of strings in any accepted form -> epoch ms.

Accepted forms (anything else parses to null, and the decoder turns the
record into a dead letter):

- ISO-8601 with ``Z`` or an offset: ``2024-03-01T10:00:00.250Z``,
  ``2024-03-01T18:00:00+08:00``
- naive ISO or ``YYYY-MM-DD HH:MM:SS`` (taken as UTC), with optional fraction
- ``YYYY-MM-DD HH:MM:SS UTC`` (the REES46 form)
- an integer of epoch milliseconds

Polars' own parser is fast for fixed layouts (~20 ns a row) but slow for
a literal ``Z`` or a ``%.f`` fraction (~250-350 ns), and JavaScript's
``toISOString()`` produces both. So the common layouts are parsed from
their fixed-width head plus integer milliseconds, and the general
formats are fallbacks. Each parser runs only on the rows the previous
ones left unparsed, starting with the one that fits the batch's first
value, so a homogeneous batch costs one pass.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

_Parser = Callable[[pl.Series], pl.Series]
_UTC_SUFFIXES = ("Z", " UTC")


def _fixed(sep: str) -> _Parser:
    """The common layouts, from cheap string ops only (~40-90 ns a row).

    ``YYYY-MM-DD<sep>HH:MM:SS`` optionally followed by ``.fff`` (exactly three
    digits) and then nothing, ``Z`` or `` UTC``. Polars parses the 19-character
    head on its fast path; the milliseconds are added as an integer.
    """
    head_format = f"%Y-%m-%d{sep}%H:%M:%S"

    def parse(values: pl.Series) -> pl.Series:
        s = pl.col("v")
        head = s.str.slice(0, 19).str.to_datetime(head_format, strict=False, time_unit="ms")
        length = s.str.len_bytes()
        z, utc = s.str.ends_with("Z"), s.str.ends_with(" UTC")
        plain = (length == 19) | ((length == 20) & z) | ((length == 23) & utc)
        fractional = (((length == 23) & ~utc) | ((length == 24) & z) | ((length == 27) & utc)) & (
            s.str.slice(19, 1) == "."
        )
        millis = s.str.slice(20, 3).cast(pl.Int64, strict=False)
        epoch = head.dt.epoch("ms")
        expr = pl.when(plain).then(epoch).when(fractional).then(epoch + millis)
        return values.rename("v").to_frame().select(expr).to_series()

    return parse


def _naive(fmt: str) -> _Parser:
    """Any fraction length, naive or ``Z``/`` UTC`` (slower: Polars' ``%.f``)."""

    def parse(values: pl.Series) -> pl.Series:
        naive = values
        for suffix in _UTC_SUFFIXES:
            naive = naive.str.strip_suffix(suffix)
        parsed = naive.str.to_datetime(fmt, strict=False, time_unit="ms", exact=True)
        return parsed.dt.epoch("ms")

    return parse


def _offset(fmt: str) -> _Parser:
    def parse(values: pl.Series) -> pl.Series:
        parsed = values.str.to_datetime(fmt, strict=False, time_unit="ms", exact=True)
        return parsed.dt.epoch("ms")

    return parse


def _epoch_ms(values: pl.Series) -> pl.Series:
    return values.cast(pl.Int64, strict=False)


_PARSERS: tuple[_Parser, ...] = (
    _fixed("T"),
    _fixed(" "),
    _offset("%Y-%m-%dT%H:%M:%S%.f%z"),
    _offset("%Y-%m-%d %H:%M:%S%.f%z"),
    _naive("%Y-%m-%dT%H:%M:%S%.f"),
    _naive("%Y-%m-%d %H:%M:%S%.f"),
    _epoch_ms,
)


def _likely_first(sample: str) -> int:
    """Index of the parser most likely to fit ``sample`` (a cheap guess)."""
    if sample.lstrip("-").isdigit():
        return 6
    space = len(sample) > 10 and sample[10] == " "
    tail = sample[19:]
    if tail[-6:-5] in ("+", "-") or tail[-5:-4] in ("+", "-"):
        return 3 if space else 2
    return 1 if space else 0


def parse_event_time(values: pl.Series) -> pl.Series:
    """Parse strings in any accepted form into Int64 epoch milliseconds (UTC).

    Unparseable or null values give null.

    >>> parse_event_time(pl.Series(["2024-03-01T10:00:00Z", "1709287200000",
    ...     "2024-03-01 18:00:00+08:00", "2024-03-01 10:00:00 UTC", "soon"])).to_list()
    [1709287200000, 1709287200000, 1709287200000, 1709287200000, None]
    """
    values = values.cast(pl.String)
    result = pl.Series(values.name, [None] * len(values), dtype=pl.Int64)
    pending = values.is_not_null()
    first_value = values.drop_nulls().head(1).to_list()
    order = list(range(len(_PARSERS)))
    if first_value:
        best = _likely_first(first_value[0])
        order.remove(best)
        order.insert(0, best)
    for index in order:
        if not pending.any():
            break
        if pending.all():  # the usual case: no gather/scatter copies
            result = _PARSERS[index](values).rename(values.name)
        else:
            rows = pending.arg_true()
            result = result.scatter(rows, _PARSERS[index](values.gather(rows)))
        pending = pending & result.is_null()
    return result
