"""Decoding survives any record, and a record decodes the same in any batch as it does alone.

Arbitrary bytes and JSON values of any type in any field (huge, nested,
unicode, NaN-like, duplicated keys, truncated, byte-order marks, CR/LF,
empty) are mixed with good events, as JSON Lines chunks, REES46 CSV chunks
and Kafka message lists. Decoding never raises; events plus dead letters are
the records; each record gives the same event, or the same dead letter, as it
does alone; and every event is within the bounds.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows.engine.bounds import DEFAULT_BOUNDS, Bounds
from flows.engine.decode import DecodeResult, decode_batch
from flows.engine.schema import EVENT_SCHEMA, RawBatch
from tests import strategies

FUZZ = strategies.fuzzing(30)
DUPLICATES = st.sampled_from(["first", "reject"])
_BLANK = b" \t\r"


def chunk_batch(lines: list[bytes], fmt: str = "jsonl") -> RawBatch:
    header = strategies.REES46_HEADER if fmt == "csv" else None
    return RawBatch("p", b"".join(line + b"\n" for line in lines), format=fmt, origin="f", first_line=2,  # type: ignore[arg-type]
                    csv_header=header)


def message_batch(messages: list[bytes]) -> RawBatch:
    return RawBatch("t", list(messages), origin="t/0", offsets=list(range(100, 100 + len(messages))),
                    keys=[b"k%d" % i for i in range(len(messages))])


def within_bounds(events: pl.DataFrame, bounds: Bounds = DEFAULT_BOUNDS) -> None:
    assert events.schema == EVENT_SCHEMA
    assert events["ts"].is_between(bounds.min_ts, bounds.max_ts).all()
    assert events["quantity"].is_between(1, bounds.max_quantity).all()
    priced = events.filter(pl.col("price").is_not_null())
    assert (priced["price"].is_finite() & priced["price"].is_between(0, bounds.max_price)).all()
    assert ((priced["price"] * priced["quantity"]) <= bounds.max_line_value).all()


def expect_as_alone(result: DecodeResult, alone: list[DecodeResult], positions: list[str], raws: list[bytes]) -> None:
    """``result`` is the concatenation of the records decoded one by one (sources aside)."""
    assert result.records == sum(one.records for one in alone)
    expected = pl.concat([one.events for one in alone]) if alone else pl.DataFrame(schema=EVENT_SCHEMA)
    assert_frame_equal(result.events, expected, check_exact=True)
    letters = [(one.dead_letters["reason"][0], raw, position)
               for one, raw, position in zip(alone, raws, positions) if one.dead_letters.height]
    assert result.dead_letters.select("reason", "raw", "source").rows() == letters
    within_bounds(result.events)


@FUZZ
@given(strategies.jsonl_records(), DUPLICATES)
def test_any_json_lines_decode_in_a_chunk_as_they_do_alone(lines, duplicates):
    records = [line for line in lines if line.strip(_BLANK)]
    result = decode_batch(chunk_batch(lines), duplicates=duplicates)
    alone = [decode_batch(chunk_batch([line]), duplicates=duplicates) for line in records]
    assert all(one.records == 1 for one in alone)
    positions = [f"f:{number}" for number, line in enumerate(lines, start=2) if line.strip(_BLANK)]
    expect_as_alone(result, alone, positions, [line.removesuffix(b"\r") for line in records])


@FUZZ
@given(strategies.csv_records())
def test_any_csv_lines_decode_in_a_chunk_as_they_do_alone(lines):
    records = [line for line in lines if line.strip(_BLANK)]
    result = decode_batch(chunk_batch(lines, "csv"))
    alone = [decode_batch(chunk_batch([line], "csv")) for line in records]
    assert all(one.records == 1 for one in alone)
    positions = [f"f:{number}" for number, line in enumerate(lines, start=2) if line.strip(_BLANK)]
    expect_as_alone(result, alone, positions, [line.removesuffix(b"\r") for line in records])


@FUZZ
@given(strategies.messages(), DUPLICATES)
def test_any_messages_decode_in_a_list_as_they_do_alone(messages, duplicates):
    result = decode_batch(message_batch(messages), duplicates=duplicates)
    alone = [decode_batch(message_batch([message]), duplicates=duplicates) for message in messages]
    assert all(one.records == 1 for one in alone)
    expect_as_alone(result, alone, [f"t/0@{100 + i}" for i in range(len(messages))], messages)
    assert result.dead_letters["key"].to_list() == [b"k%d" % i for i, one in enumerate(alone) if one.dead_letters.height]
