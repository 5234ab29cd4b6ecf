"""Shared hypothesis strategies: events, records of any shape, and batches of them.

- :func:`events`: event dicts a real shop sends (every accepted form, within
  the default :class:`~flows.engine.bounds.Bounds`).
- :data:`json_values`: any JSON value (nested, unicode, huge numbers).
- :func:`events_at_bounds`, :func:`odd_events`: events with numbers at or
  past their bounds; with fields of any type, missing, doubled or out of
  bounds, as JSON Lines records.
- :func:`junk`: bytes a decoder must survive (not UTF-8, truncated, byte-order
  marks, carriage returns, NaN, deep nesting, lone surrogates...).
- :func:`jsonl_records`, :func:`csv_records`, :func:`messages`: a mix of good
  and bad records, as lines of a chunk (no newline) or as Kafka messages.

:func:`fuzzing` gives fuzz tests a few seconds each by default; to search
longer, ``DMP_FUZZ_SCALE=50 pytest tests/test_decode_fuzz.py``.
"""

from __future__ import annotations

import codecs
import json
import os
from datetime import datetime, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T0 = 1_709_287_200_000  # 2024-03-01T10:00:00Z
PRODUCTS = ["p1", "p2", "p3", "p4", 1001, 1002]
EVENT_TYPES = ["view", "view", "add_to_cart", "cart", "remove_from_cart", "purchase", "purchase"]
FIELDS = ["event_id", "event_type", "ts", "user_id", "session_id", "product_id", "category", "category_id",
          "brand", "price", "quantity", "event_time", "purchase_time", "user_session", "category_code"]
REES46_HEADER = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                 "user_id", "user_session")


def fuzzing(examples: int) -> settings:
    """Settings for a fuzz test: ``examples`` by default, times ``DMP_FUZZ_SCALE``."""
    scale = float(os.environ.get("DMP_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, round(examples * scale)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def iso(ms: int, layout: str = "%Y-%m-%dT%H:%M:%S.{ms}Z") -> str:
    """Epoch milliseconds in a layout; ``{ms}`` stands for the three digits of milliseconds."""
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime(layout.replace("{ms}", f"{ms % 1000:03d}"))


def _time(ms: int) -> st.SearchStrategy:
    """Every accepted spelling of one instant."""
    return st.sampled_from([ms, str(ms), iso(ms), iso(ms, "%Y-%m-%dT%H:%M:%SZ"), iso(ms, "%Y-%m-%d %H:%M:%S UTC"),
                            iso(ms, "%Y-%m-%dT%H:%M:%S.{ms}+00:00"), iso(ms, "%Y-%m-%dT%H:%M:%S.{ms}")])


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def events(draw, start_ms: int = T0, span_ms: int = 600_000) -> dict:
    """A valid event: every accepted spelling of times, ids and numbers, optional fields or not."""
    at = draw(st.integers(start_ms, start_ms + span_ms))
    event: dict = {
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "ts": draw(_time(at)),
        "user_id": draw(st.integers(1, 6) | st.sampled_from(["u1", "u-2"])),
        "product_id": draw(st.sampled_from(PRODUCTS)),
    }
    if draw(st.booleans()):
        price = draw(st.none() | st.integers(0, 2000).map(lambda cents: cents / 100) | st.sampled_from([0, 5, 1e5]))
        event["price"] = str(price) if price is not None and draw(st.integers(0, 4)) == 0 else price
    if draw(st.booleans()):
        event["quantity"] = draw(st.none() | st.integers(1, 5) | st.just("3"))
    for name in draw(st.sets(st.sampled_from(["event_id", "session_id", "category", "brand", "category_id"]))):
        event[name] = draw(_text | st.none())
    if draw(st.integers(0, 5)) == 0:  # the alias spelling
        event["event_time"] = event.pop("ts")
    return event


def encode(event: dict, *, ascii_only: bool = True) -> bytes:
    return json.dumps(event, ensure_ascii=ascii_only).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
"""Any JSON value (floats include +-1e308; infinities are left to :func:`junk`)."""

_EXTREMES = st.sampled_from([1e300, -1e300, 2**63 - 1, 2**63, -(2**63), 2**64, 10**13, 999_999, 1e9, 1e9 + 1,
                             5e-324, -0.0, 0, -1, "1e300", "-0", "+5", " 5", "0x10", "inf", "NaN"])
_ODD_TIMES = st.sampled_from(["+10000-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z",
                              "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59", "2024-02-30T10:00:00Z",
                              "2024-03-01T10:00:00.1234567Z"]) | st.integers(-(10**13), 10**17)


_PRICES_AT_BOUNDS = st.sampled_from([0, -0.0, 5e-324, -1e-9, 999_999, 1e9, 1e9 + 1, 9.3e12, 1e300, "1e9", "1e300"]) | (
    st.floats(0, 2e9, allow_nan=False))
_QUANTITIES_AT_BOUNDS = st.sampled_from([1, 0, -1, 2, 1000, 1_000_000, 1_000_001, 2**63 - 1, 2**64, "1000000"]) | (
    st.integers(1, 2_000_000))
_TIMES_AT_BOUNDS = st.sampled_from([0, -1, 253_402_300_799_999, 253_402_300_800_000, "1970-01-01T00:00:00Z",
                                    "9999-12-31T23:59:59.999Z"])


@st.composite
def events_at_bounds(draw) -> bytes:
    """An event whose price, quantity or time sits at (or just past) a bound (often a purchase: money)."""
    event = draw(events())
    if draw(st.booleans()):
        event["event_type"] = "purchase"
    event["price"] = draw(_PRICES_AT_BOUNDS)
    if draw(st.booleans()):
        event["quantity"] = draw(_QUANTITIES_AT_BOUNDS)
    if draw(st.integers(0, 3)) == 0:
        event.pop("event_time", None)
        event["ts"] = draw(_TIMES_AT_BOUNDS)
    return encode(event)


@st.composite
def odd_events(draw) -> bytes:
    """An event with some fields replaced by any JSON value, removed, out of bounds or given twice."""
    event = draw(events())
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=3)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            event.pop(name, None)
        elif choice == 1:
            event[name] = draw(json_values)
        else:
            event[name] = draw(_EXTREMES | _ODD_TIMES)
    line = encode(event, ascii_only=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:  # a key twice, perhaps spelt with an escape
        name = draw(st.sampled_from(FIELDS))
        key = draw(st.sampled_from([name, name.replace("e", "\\u0065", 1)]))
        extra = f', "{key}": {json.dumps(draw(json_values))}'.encode()
        line = line[:-1] + extra + b"}" if line != b"{}" else b"{" + extra[2:] + b"}"
    return line


@st.composite
def junk(draw) -> bytes:
    """A record a decoder must survive without a newline in it (it may decode, or not)."""
    good = encode(draw(events()))
    return draw(st.one_of(
        st.binary(max_size=30),
        _text.map(str.encode),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.integers(0, len(good) - 1).map(lambda cut: good[:cut]),  # truncated
        st.just(codecs.BOM_UTF8 + good),
        st.just(good + b"\r"),
        st.just(b"\r" + good),
        st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0b", b"\x00", b"{}", b"[]", b"null", b'"x"']),
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400"]).map(
            lambda constant: good[:-1] + b', "price": ' + constant + b"}"),
        st.sampled_from([10, 600, 1100]).map(lambda depth: b'{"a": ' + b"[" * depth + b"]" * depth + b"}"),
        st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud800\\udc00", b"\\u0000", b"\\ud800\\u0041"]).map(
            lambda escape: good[:-1] + b', "brand": "x' + escape + b'"}'),
        st.sampled_from([b"\t", b"\x01", b"\x7f", b"\xc3\xa9"]).map(
            lambda raw: good[:-1] + b', "session_id": "a' + raw + b'b"}'),
    ).map(lambda record: record.replace(b"\n", b"")))


def jsonl_records(max_size: int = 24) -> st.SearchStrategy[list[bytes]]:
    """Lines of a JSON Lines chunk: good events mixed with events at their bounds, odd events and junk."""
    good = events().map(encode)
    return st.lists(st.one_of(good, good, events_at_bounds(), odd_events(), junk()), max_size=max_size)


@st.composite
def messages(draw, max_size: int = 24) -> list[bytes]:
    """Kafka messages: like :func:`jsonl_records`, plus pretty-printed ones and raw newlines."""
    records = draw(jsonl_records(max_size))
    for _ in range(draw(st.integers(0, 3))):
        event = draw(events())
        extra = draw(st.sampled_from([
            json.dumps(event, indent=2).encode(),
            json.dumps(event).replace('"ts":', '\r\n"ts":').encode(),
            encode(event)[:-1] + b', "brand": "a\nb"}',
        ]))
        records.insert(draw(st.integers(0, len(records))), extra)
    return records


def _csv_field(value: object) -> str:
    text = "" if value is None else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"') else text


@st.composite
def csv_line(draw) -> bytes:
    """A REES46 line: a good event, or one with a field of any value (maybe too few or many)."""
    at = draw(st.integers(T0, T0 + 600_000)) // 1000 * 1000
    row = [iso(at, "%Y-%m-%d %H:%M:%S UTC"), draw(st.sampled_from(["view", "cart", "purchase", "remove_from_cart"])),
           draw(st.sampled_from(PRODUCTS)), "2053013552326770003", draw(st.sampled_from(["", "kids.toys"])),
           draw(st.sampled_from(["", "lego", "a,b", 'say "hi"'])), draw(st.sampled_from(["1.00", "0", "19.99", ""])),
           draw(st.integers(1, 6)), "s1"]
    if draw(st.integers(0, 2)) == 0:
        row[draw(st.integers(0, len(row) - 1))] = draw(st.sampled_from(
            ["", "abc", "-1", "1e300", "NaN", "9223372036854775808", "2024-13-01 00:00:00 UTC", "\u00e9", '"']))
    if draw(st.integers(0, 6)) == 0:
        row = row[: draw(st.integers(0, len(row)))] if draw(st.booleans()) else [*row, "extra"]
    return ",".join(_csv_field(value) for value in row).encode()


def csv_records(max_size: int = 24) -> st.SearchStrategy[list[bytes]]:
    """Lines of a REES46 CSV chunk (after its header): good, bad and junk."""
    return st.lists(st.one_of(csv_line(), csv_line(), junk()), max_size=max_size)
