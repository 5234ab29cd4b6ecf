"""Decoding: the event contract, dead letters with reasons, batch independence."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows.engine.bounds import Bounds
from flows.engine.decode import DecodeResult, decode_batch
from flows.engine.readers import missing_csv_columns
from flows.engine.schema import DEAD_LETTER_SCHEMA, EVENT_SCHEMA, RawBatch
from flows.engine.timeparse import parse_event_time

DATA = Path(__file__).resolve().parent / "data" / "rees46-2019-oct-sample.csv"
REES46_HEADER = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                 "user_id", "user_session")
T0 = 1_709_287_200_000  # 2024-03-01T10:00:00Z


def jsonl(*records: dict | str | bytes) -> bytes:
    lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() for r in records]
    return b"\n".join(lines) + b"\n"


def decode_lines(*records: dict | str | bytes):
    return decode_batch(RawBatch("p", jsonl(*records), origin="events.jsonl"))


VALID = {"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": 2}


# -- the contract ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00.000Z",
        "2024-03-01T18:00:00+08:00",
        "2024-03-01T05:30:00-04:30",
        "2024-03-01T10:00:00",
        "2024-03-01 10:00:00",
        "2024-03-01 10:00:00 UTC",
        "2024-03-01T10:00:00.000000+00:00",
        T0,
        str(T0),
    ],
)
def test_every_accepted_time_form_means_the_same_instant(ts):
    assert decode_lines({**VALID, "ts": ts}).events["ts"].to_list() == [T0]


def test_fractions_of_seconds_are_kept_to_the_millisecond():
    values = pl.Series(["2024-03-01T10:00:00.5Z", "2024-03-01T10:00:00.123456Z", "2024-03-01 10:00:00.250 UTC"])
    assert parse_event_time(values).to_list() == [T0 + 500, T0 + 123, T0 + 250]


def test_ids_arrive_as_numbers_or_strings_and_stay_strings():
    events = decode_lines({**VALID, "user_id": 42, "product_id": "sku-9"}, {**VALID, "user_id": "42"}).events
    assert events["user_id"].to_list() == ["42", "42"]
    assert events["product_id"].to_list() == ["sku-9", "2"]
    assert events.schema == EVENT_SCHEMA


def test_a_decoded_event_has_every_field_of_the_contract():
    record = {"event_id": "e1", "event_type": "purchase", "ts": T0, "user_id": 7, "session_id": "s",
              "product_id": 9, "category": "kids.toys", "category_id": "2053013552326770008",
              "brand": "lego", "price": 19.99, "quantity": 2}
    expected = pl.DataFrame([{**record, "user_id": "7", "product_id": "9"}], schema=EVENT_SCHEMA)
    assert_frame_equal(decode_lines(record).events, expected)


def test_the_minimal_purchase_message_is_a_priceless_purchase():
    events = decode_lines({"user_id": 1, "product_id": 1001, "purchase_time": "2021-03-01 10:00:00"}).events
    row = events.row(0, named=True)
    assert (row["event_type"], row["ts"], row["price"], row["quantity"]) == ("purchase", 1_614_592_800_000, None, 1)


def test_cart_is_an_alias_of_add_to_cart_and_quantity_defaults_to_one():
    events = decode_lines({**VALID, "event_type": "cart"}).events
    assert events.select("event_type", "quantity").row(0) == ("add_to_cart", 1)


def test_empty_optional_strings_are_null():
    events = decode_lines({**VALID, "brand": "", "category": "", "session_id": ""}).events
    assert events.select("brand", "category", "session_id").row(0) == (None, None, None)


# -- dead letters --------------------------------------------------------------------


TRUNCATED = b'{"ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": 2, "event_type": "view"'


def placements(record: dict | str | bytes, **options) -> dict[str, DecodeResult]:
    """The record among good ones: in a chunk (fast path), next to a bad line (careful path), as messages."""
    line = jsonl(record).rstrip(b"\n")
    good = json.dumps(VALID).encode()
    return {
        "chunk": decode_batch(RawBatch("p", jsonl(VALID, record, VALID), origin="events.jsonl"), **options),
        "careful chunk": decode_batch(RawBatch("p", jsonl(VALID, record, b"oops"), origin="events.jsonl"), **options),
        "messages": decode_batch(RawBatch("t", [good, line, good], origin="events/0"), **options),
        "careful messages": decode_batch(RawBatch("t", [good, line, b"oops"], origin="events/0"), **options),
    }


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"hello", "not JSON"),
        (b"[1, 2]", "not a JSON object (a JSON array)"),
        (b'"hello"', "not a JSON object (a JSON string)"),
        (b"12", "not a JSON object (a JSON number)"),
        (b"true", "not a JSON object (a JSON boolean)"),
        (b"null", "not a JSON object (JSON null)"),
        (TRUNCATED, "truncated record (the JSON object is not closed)"),
        (b'{"ts": "2024-03-01T10:00', "truncated record (the JSON object is not closed)"),
        (b"{", "truncated record (the JSON object is not closed)"),
        (b'{"ts": "\xff\xfe"}', "not valid UTF-8 (byte 0xff at 8)"),
        (b'{"price": NaN}', "invalid JSON (NaN is not a JSON number)"),
        (b'{"price": 1} x', "invalid JSON (more after the end of the object, at character 13)"),
        (b'{"price": 1e400}', "invalid JSON (a number out of range or malformed at character 10)"),
        (b'{"ts": 1, ts: 2}', "invalid JSON (expecting property name enclosed in double quotes at character 10)"),
        (b'{"ts": 1, "user_id": "a\tb"}', "invalid JSON (a control character inside a string, at character 23)"),
        (b"123abc", "not JSON"),
        ({**VALID, "ts": None}, "missing field ts"),
        ({k: v for k, v in VALID.items() if k != "ts"}, "missing field ts"),
        ({**VALID, "ts": "next tuesday"},
         "bad value for ts: 'next tuesday' is not an ISO-8601 time or epoch milliseconds"),
        ({**VALID, "ts": "2024-02-30T10:00:00Z"},
         "bad value for ts: '2024-02-30T10:00:00Z' is not an ISO-8601 time or epoch milliseconds"),
        ({**VALID, "ts": {"at": 1}}, "bad value for ts: '{\"at\": 1}' is not an ISO-8601 time or epoch milliseconds"),
        ({**VALID, "ts": "1969-12-31T23:59:59Z"},
         "ts '1969-12-31T23:59:59Z' is before the minimum 1970-01-01T00:00:00Z"),
        ({**VALID, "ts": -5}, "ts '-5' is before the minimum 1970-01-01T00:00:00Z"),
        ({**VALID, "ts": 2**63 - 1}, "ts '9223372036854775807' is after the maximum 9999-12-31T23:59:59.999Z"),
        ({**VALID, "ts": "+10000-01-01T00:00:00Z"},
         "ts '+10000-01-01T00:00:00Z' is after the maximum 9999-12-31T23:59:59.999Z"),
        ({k: v for k, v in VALID.items() if k != "user_id"}, "missing field user_id"),
        ({**VALID, "product_id": ""}, "missing field product_id"),
        ({k: v for k, v in VALID.items() if k != "event_type"}, "missing field event_type"),
        ({**VALID, "event_type": "click"},
         "bad value for event_type: 'click' is not one of view, add_to_cart, remove_from_cart, purchase (or cart)"),
        ({**VALID, "price": -0.01}, "price -0.01 is below the minimum 0"),
        ({**VALID, "price": "cheap"}, "bad value for price: 'cheap' is not a number"),
        ({**VALID, "price": "abc"}, "bad value for price: 'abc' is not a number"),
        ({**VALID, "price": True}, "bad value for price: 'true' is not a number"),
        ({**VALID, "price": [1]}, "bad value for price: '[1]' is not a number"),
        ({**VALID, "price": {"amount": 1}}, "bad value for price: '{\"amount\": 1}' is not a number"),
        ({**VALID, "price": "NaN"}, "bad value for price: 'NaN' is not a finite number"),
        ({**VALID, "price": "inf"}, "bad value for price: 'inf' is not a finite number"),
        ({**VALID, "price": 1e300}, "price 1e+300 is above the maximum 1000000000"),
        ({**VALID, "price": 1e9 + 1}, "price 1000000001.0 is above the maximum 1000000000"),
        ({**VALID, "quantity": 0}, "quantity 0 is below the minimum 1"),
        ({**VALID, "quantity": -2}, "quantity -2 is below the minimum 1"),
        ({**VALID, "quantity": 1.5}, "bad value for quantity: '1.5' is not an integer"),
        ({**VALID, "quantity": "2.0"}, "bad value for quantity: '2.0' is not an integer"),
        ({**VALID, "quantity": 2**63 - 1}, "quantity 9223372036854775807 is above the maximum 1000000"),
        ({**VALID, "quantity": 2**64}, "quantity 1.8446744073709552e+19 is above the maximum 1000000"),
        ({**VALID, "quantity": -(2**64)}, "quantity -1.8446744073709552e+19 is below the minimum 1"),
        ({**VALID, "price": 999_999, "quantity": 10**13}, "quantity 10000000000000 is above the maximum 1000000"),
        ({**VALID, "price": 999_999, "quantity": 1001},
         "price x quantity 1000998999.0 is above the maximum line value 1000000000"),
        (b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": "\\ud800", "product_id": 2}',
         "bad value for user_id: a lone surrogate escape (\\ud800-\\udfff) is not a character"),
        ({**VALID, "product_id": "a\udbffb"},
         "bad value for product_id: a lone surrogate escape (\\ud800-\\udfff) is not a character"),
        ({**VALID, "brand": ["x\ud800"]},
         "bad value for brand: a lone surrogate escape (\\ud800-\\udfff) is not a character"),
    ],
)
def test_a_record_that_cannot_be_decoded_becomes_the_same_dead_letter_wherever_it_is(record, reason):
    expected_raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    for placement, result in placements(record).items():
        letter = result.dead_letters.row(0, named=True)
        good = 1 if placement.startswith("careful") else 2
        assert (placement, result.events.height, letter["reason"], letter["raw"]) == (placement, good, reason, expected_raw)
        assert letter["source"] == ("events.jsonl:2" if "chunk" in placement else "events/0@1")


@pytest.mark.parametrize(
    "record",
    [
        {**VALID, "price": "3.5"},
        {**VALID, "price": 3.5},
        {**VALID, "price": None, "quantity": None},
        {**VALID, "price": 1e9, "quantity": 1},
        {**VALID, "price": 1000, "quantity": 1_000_000},
        {**VALID, "quantity": "7"},
        {**VALID, "quantity": 2.0},
        {**VALID, "ts": "9999-12-31T23:59:59.999Z"},
        {**VALID, "ts": 0},
        {**VALID, "user_id": "\u0000"},
        {**VALID, "brand": "\ud83d\ude00 \"price\": 1, \"price\": 2"},
        {**VALID, "session_id": {"price": 1, "user": {"price": 2}}},
    ],
    ids=repr,
)
def test_a_good_record_decodes_the_same_wherever_it_is(record):
    alone = decode_lines(record).events
    for placement, result in placements(record).items():
        assert result.events.height == 3 - placement.startswith("careful"), placement
        assert_frame_equal(result.events[1:2], alone, check_exact=True)


def test_a_string_price_next_to_a_bad_line_decodes_record_by_record():
    # The careful path parses a big batch in groups: it once concatenated a
    # group read as numbers with one read as text, and Polars' SchemaError
    # crashed the decoder, on every replay of the batch.
    records = [{**VALID, "price": "3.5"}, *[{**VALID, "price": 2, "quantity": 2}] * 40, b"oops"]
    for raw in (RawBatch("p", jsonl(*records), origin="f"),
                RawBatch("t", [jsonl(r).rstrip(b"\n") for r in records], origin="t")):
        result = decode_batch(raw)
        assert result.events.select("price", "quantity").rows() == [(3.5, 1)] + [(2.0, 2)] * 40
        assert result.dead_letters.select("raw", "reason").rows() == [(b"oops", "not JSON")]


def test_bounds_are_the_callers_to_choose():
    bounds = Bounds(max_price=100, max_quantity=10, max_line_value=500, min_ts=T0, max_ts=T0 + 1000)
    result = decode_batch(RawBatch("p", jsonl({**VALID, "price": 100, "quantity": 5}, {**VALID, "price": 101},
                                              {**VALID, "quantity": 11}, {**VALID, "price": 100, "quantity": 6},
                                              {**VALID, "ts": T0 + 1001}), origin="f"), bounds=bounds)
    assert result.events.height == 1
    assert result.dead_letters["reason"].to_list() == [
        "price 101.0 is above the maximum 100",
        "quantity 11 is above the maximum 10",
        "price x quantity 600.0 is above the maximum line value 500",
        f"ts '{T0 + 1001}' is after the maximum 2024-03-01T10:00:01Z",
    ]


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"max_price": 0}, "Bounds.max_price must be between 0 and 9007199255"),
        ({"max_price": 1e12}, "Bounds.max_price must be between 0 and 9007199255"),
        ({"max_quantity": 1.5}, "Bounds.max_quantity must be an integer of at least 1"),
        ({"max_line_value": 1e13}, "Bounds.max_line_value must be between 0 and 9223372"),
        ({"min_ts": -1}, "Bounds.min_ts must be an integer between 0 and max_ts"),
        ({"max_ts": 2**62}, "Bounds.max_ts must be an integer of at most 253402300799999"),
    ],
)
def test_bounds_that_would_let_money_or_time_overflow_are_refused(bounds, message):
    with pytest.raises(ValueError, match=message):
        Bounds(**bounds)


def test_the_default_bounds_keep_money_exact_in_an_int64():
    bounds = Bounds()
    largest_line_micros = bounds.max_line_value * 1_000_000
    assert bounds.max_price * 1_000_000 < 2**53  # price * 1e6 rounds to the exact integer
    assert largest_line_micros * 9_000 < 2**63  # thousands of maximal lines sum without wrapping


TWICE = [  # (record, the field it gives twice, the record as its first occurrences read)
    (b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": 2, "price": 1, "price": -5}',
     "price", {**VALID, "price": 1}),
    (b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "user_id": 3, "product_id": 2}',
     "user_id", VALID),
    ((b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": 2, "price": 1, '
      b'"pr\\u0069ce": 2}'), "price", {**VALID, "price": 1}),
    (b'{"event_type": "view", "event_time": "2024-03-01T10:00:00Z", "event_time": 2, "user_id": 1, "product_id": 2}',
     "event_time", VALID),
    ((b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": 1, "product_id": 2, "quantity": 2, '
      b'"quantity": null}'), "quantity", {**VALID, "quantity": 2}),
]


@pytest.mark.parametrize(("record", "field", "first"), TWICE)
def test_a_field_given_twice_is_a_dead_letter_when_duplicates_are_rejected(record, field, first):
    for placement, result in placements(record, duplicates="reject").items():
        assert result.dead_letters.row(0, named=True)["reason"] == f"duplicate field {field}", placement


@pytest.mark.parametrize(("record", "field", "first"), TWICE)
def test_a_field_given_twice_counts_its_first_occurrence_by_default(record, field, first):
    expected = decode_lines(first).events
    for result in placements(record).values():
        assert_frame_equal(result.events[1:2], expected, check_exact=True)


def test_keys_of_nested_objects_are_no_duplicates():
    record = {**VALID, "session_id": {"price": 1, "inner": {"price": 2}}, "price": 3}
    for placement, result in placements(record, duplicates="reject").items():
        assert result.events["price"].to_list()[1] == 3.0, placement


def test_a_message_may_start_with_a_byte_order_mark():
    bom = b"\xef\xbb\xbf"
    good = json.dumps(VALID).encode()
    for messages in ([bom + good, good], [good, bom + good, b"oops"], [bom + good] * 3):
        result = decode_batch(RawBatch("t", messages, origin="t/0"))
        assert result.events.height == sum(m.endswith(b"}") for m in messages)
        assert result.dead_letters.height == len(messages) - result.events.height
    letters = decode_batch(RawBatch("t", [bom, bom + bom + good], origin="t/0")).dead_letters
    assert letters["reason"].to_list() == [
        "empty record", "not JSON (it starts with a byte-order mark, which only a file or message may start with)"]


def test_a_byte_order_mark_inside_a_chunk_is_just_bytes():
    letters = decode_lines(VALID, b"\xef\xbb\xbf" + json.dumps(VALID).encode()).dead_letters
    assert letters["reason"].to_list() == [
        "not JSON (it starts with a byte-order mark, which only a file or message may start with)"]


def test_a_csv_line_reads_the_same_at_the_start_of_a_batch_as_in_its_middle():
    # Polars drops a byte-order mark that starts its CSV input.
    line = b"\xef\xbb\xbf2019-10-01 00:00:00 UTC,view,1,2,,b,1.00,3,s"
    good = b"2019-10-01 00:00:00 UTC,view,1,2,,b,1.00,3,s"
    first, middle = (decode_batch(rees46_batch(body)).dead_letters["reason"].to_list()
                     for body in (line + b"\n", good + b"\n" + line + b"\n"))
    assert first == middle == ["bad value for ts: '\ufeff2019-10-01 00:00:00 UTC' is not an ISO-8601 time or epoch milliseconds"]


def test_a_line_break_inside_a_string_of_a_message_is_not_flattened_away():
    # Flattening a raw newline in a string into a space would turn invalid JSON
    # into a valid record with another value.
    broken = b'{"event_type": "view", "ts": "2024-03-01T10:00:00Z", "user_id": "a\nb", "product_id": 2}'
    pretty = json.dumps(VALID, indent=2).encode()
    result = decode_batch(RawBatch("t", [broken, pretty], origin="t/0"))
    assert result.events.height == 1
    assert result.dead_letters["reason"].to_list() == ["invalid JSON (a raw line break inside a string, at character 66)"]


def test_dead_letters_name_file_lines_counting_blank_lines():
    chunk = b"\n" + jsonl(VALID) + b"\n  \n" + b"oops\n"
    result = decode_batch(RawBatch("p", chunk, origin="in.jsonl", first_line=100))
    assert result.dead_letters["source"].to_list() == ["in.jsonl:104"]
    assert result.records == 2  # blank lines are not records


def test_dead_letters_of_messages_name_their_offsets_and_empty_messages_count():
    raw = RawBatch("t", [json.dumps(VALID).encode(), b"", b"nope"], origin="events/3", offsets=[40, 41, 42])
    result = decode_batch(raw)
    letters = result.dead_letters
    assert letters["source"].to_list() == ["events/3@41", "events/3@42"]
    assert letters["reason"].to_list() == ["empty record", "not JSON"]
    assert result.records == 3


def test_a_message_with_newlines_inside_is_one_record():
    pretty = json.dumps(VALID, indent=2).encode()
    result = decode_batch(RawBatch("t", [pretty, pretty], origin="t/0"))
    assert (result.events.height, result.dead_letters.height) == (2, 0)


def test_nothing_is_lost_in_a_batch_full_of_bad_records():
    records = [b"x" * n for n in range(1, 50)] + [json.dumps(VALID).encode()] * 5
    result = decode_batch(RawBatch("t", records, origin="t/0"))
    assert (result.events.height, result.dead_letters.height) == (5, 49)
    assert result.dead_letters.schema == DEAD_LETTER_SCHEMA


# -- batch independence ----------------------------------------------------------------

RECORDS = [
    VALID,
    {**VALID, "ts": 1_709_287_201_000, "price": 3.5},
    {**VALID, "event_type": "purchase", "quantity": 2, "price": 10},
    {**VALID, "event_type": "bogus"},
    b"{broken",
    b"\xff",
    {**VALID, "price": -1},
    {"user_id": 1, "product_id": 1001, "purchase_time": "2021-03-01 10:00:00"},
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(RECORDS), max_size=30), st.lists(st.integers(1, 8), max_size=10))
def test_a_record_decodes_the_same_whatever_batch_it_is_in(records, cuts):
    whole = decode_batch(RawBatch("p", jsonl(*records) if records else b"", origin="f"))
    pieces, start = [], 0
    for size in [*cuts, len(records)]:
        part = records[start : start + size]
        if part:
            pieces.append(decode_batch(RawBatch("p", jsonl(*part), origin="f", first_line=start + 1)))
        start += size
        if start >= len(records):
            break
    assert sum(p.records for p in pieces) == len(records) == whole.records
    if pieces:
        assert_frame_equal(pl.concat([p.events for p in pieces]), whole.events)
        # A dead letter's place is counted in its own batch's events: shifted by the events of earlier pieces.
        before = [sum(p.events.height for p in pieces[:i]) for i in range(len(pieces))]
        placed = [p.dead_letters.with_columns(pl.col("events_before") + b) for p, b in zip(pieces, before)]
        assert_frame_equal(pl.concat(placed), whole.dead_letters)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(RECORDS[:3]), min_size=200, max_size=800), st.lists(st.integers(0, 799), max_size=6))
def test_a_few_bad_lines_in_a_big_chunk_are_found_and_the_rest_decodes_as_without_them(good, bad_at):
    records = list(good)
    for position in bad_at:
        records.insert(min(position, len(records)), b"{broken")
    whole = decode_batch(RawBatch("p", jsonl(*records), origin="f"))
    assert whole.dead_letters["source"].to_list() == [f"f:{i + 1}" for i, r in enumerate(records) if r == b"{broken"]
    clean = decode_batch(RawBatch("p", jsonl(*good), origin="f"))  # the fast path, in one piece
    assert_frame_equal(clean.events, whole.events)


# -- REES46 CSV ------------------------------------------------------------------------


def rees46_batch(body: bytes, first_line: int = 2) -> RawBatch:
    return RawBatch("rees", body, format="csv", csv_header=REES46_HEADER, origin="rees.csv", first_line=first_line)


def test_the_rees46_sample_ingests_with_zero_dead_letters():
    header, _, body = DATA.read_bytes().partition(b"\n")
    assert tuple(header.decode().split(",")) == REES46_HEADER
    result = decode_batch(rees46_batch(body))
    assert (result.events.height, result.dead_letters.height) == (1000, 0)
    counts = dict(result.events["event_type"].cast(pl.String).value_counts().iter_rows())
    assert counts == {"view": 987, "add_to_cart": 3, "purchase": 10}
    first = result.events.row(0, named=True)
    assert first["ts"] == 1_569_888_000_000  # 2019-10-01 00:00:00 UTC
    assert first["category_id"] == "2103807459595387724"  # beyond 2**53, kept exact
    assert first["category"] is None and first["brand"] == "shiseido"
    assert first["session_id"] == "72d76fde-8bb3-4e00-8c23-a032dfed738c"


def test_csv_lines_with_the_wrong_number_of_fields_are_dead_letters_wherever_they_are():
    good = b"2019-10-01 00:00:00 UTC,view,1,2,,b,1.00,3,s\n"
    short = b"2019-10-01 00:00:00 UTC,view,1,2,,b,1.00,3\n"
    for body in (short + good, good + short, good + short + good):
        result = decode_batch(rees46_batch(body))
        assert result.dead_letters["reason"].to_list() == ["malformed CSV (8 fields, the header has 9)"]


def test_a_csv_line_python_cannot_count_reads_the_same_after_another_line_as_alone():
    # A carriage return stops Python's csv module from counting the fields;
    # Polars then padded the short line with nulls when it was not the first
    # of its group (found by tests/test_decode_fuzz.py).
    good = b"2019-10-01 00:00:00 UTC,view,1,2,,b,1.00,3,s"
    odd = b'\r{"a": "x", "b": 1}'
    alone, after = (decode_batch(rees46_batch(body)).dead_letters["reason"].to_list()
                    for body in (odd + b"\n", good + b"\n" + odd + b"\n"))
    assert alone == after == ["malformed CSV (unbalanced quote or bad field)"]


def test_a_csv_header_must_name_the_required_columns():
    assert missing_csv_columns(REES46_HEADER) == []
    assert sorted(missing_csv_columns(("event_time", "event_type", "price"))) == ["product_id", "user_id"]
