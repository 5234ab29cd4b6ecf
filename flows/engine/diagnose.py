"""Diagnosing single records in Python, on the careful path only.

In: the bytes of one record (a line of a chunk, or a message). Out: a yes or
no for the cheap pre-checks that name suspects among many lines
(:func:`plausible`, :func:`csv_fields`); the exact answer to what Polars
reads wrongly without a word (:func:`misread_reason`); and, for a record
Polars refused, why, in words a person understands (:func:`unparseable_reason`):

>>> unparseable_reason(b'{"ts": "2024-03-01', "jsonl", ValueError("Syntax at character 0"))
'truncated record (the JSON object is not closed)'
>>> unparseable_reason(b"[1, 2]", "jsonl", ValueError())
'not a JSON object (a JSON array)'

None of these decides whether a record parses: Polars does (see
:mod:`flows.engine.parse`), so a record decodes the same whichever path it took.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Collection, Mapping

from flows.engine.schema import RecordFormat

BOM = codecs.BOM_UTF8
_JSON_BLANK = " \t\r\n"
_VALUE_STARTS = '{["-0123456789tfn'
_KINDS = {"{": "a JSON object", "[": "a JSON array", '"': "a JSON string", "t": "a JSON boolean",
          "f": "a JSON boolean", "n": "JSON null"}
_OPENED = {"{": "JSON object", "[": "JSON array", '"': "JSON string"}
# Polars' (simd-json's) words for what Python's json module accepts.
_POLARS_ONLY = (
    (re.compile(r"InvalidNumber at character (\d+)"), "a number out of range or malformed at character {}"),
    (re.compile(r"DepthLimitExceeded"), "nested too deeply"),
    (re.compile(r"InvalidUnicodeCodepoint"), "an escape that is not a character (a lone surrogate)"),
    (re.compile(r"InvalidEscape"), "a bad escape sequence"),
)


class _Pairs(list):
    """An object's (key, value) pairs in order, duplicates included."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")  # NaN / Infinity: Polars rejects them too


def _load(text: str) -> object:
    return json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)


def plausible(line: bytes, fmt: RecordFormat) -> bool:
    """Cheap pre-check: does Python see one JSON object (or a UTF-8 CSV line with balanced quotes)?"""
    if fmt == "csv":
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return line.count(b'"') % 2 == 0
    try:
        return isinstance(json.loads(line, parse_constant=_reject_constant), dict)
    except (ValueError, RecursionError):
        return False


def csv_fields(line: bytes) -> int:
    """Number of fields of one CSV line (quote-aware only when it has quotes); -1 if unreadable."""
    if b'"' not in line:
        return line.count(b",") + 1
    try:
        return len(next(csv.reader([line.decode("utf-8")])))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return -1  # let the parser reject it with its own reason


def line_break_in_string(message: bytes) -> str | None:
    r"""Why a message with a raw line break cannot be flattened to one line, if it cannot.

    A line break between JSON tokens is whitespace, and becomes a space; one
    inside a string is invalid JSON, and flattening it would quietly make it
    valid with a different value.

    >>> line_break_in_string(b'{"user_id": "a b",\n "ts": 1}') is None
    True
    >>> line_break_in_string(b'{"user_id": "a\nb"}')
    'invalid JSON (a raw line break inside a string, at character 14)'
    """
    try:
        json.loads(message.decode("utf-8"))
    except json.JSONDecodeError as ex:
        if ex.msg.startswith("Invalid control character") and ex.doc[ex.pos] in "\r\n":
            return f"invalid JSON (a raw line break inside a string, at character {ex.pos})"
    except (ValueError, RecursionError):
        pass
    return None


def _top_level(line: bytes) -> _Pairs | None:
    try:
        value = _load(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, _Pairs) else None


def misread_reason(line: bytes, keys: Mapping[str, Collection[str]], *, duplicates: bool) -> str | None:
    r"""Why Polars would read this JSON object line wrongly without a word, if it would.

    ``keys`` maps each column read to its JSON keys, first key first (``ts``:
    ``ts``, ``event_time``). With ``duplicates``, a key of ours given twice at
    the top level (compared as JSON decodes them: ``"pr\u0069ce"`` is
    ``price``); then a lone UTF-16 surrogate escape anywhere in a value we
    read (``"\ud800"``: Polars makes it NUL, so it would equal ``"\u0000"``).

    >>> misread_reason(b'{"price": 1, "user": {"price": 2}, "price": -5}', {"price": ("price",)}, duplicates=True)
    'duplicate field price'
    >>> misread_reason(b'{"brand": ["a\\ud800"]}', {"brand": ("brand",)}, duplicates=False)
    'bad value for brand: a lone surrogate escape (\\ud800-\\udfff) is not a character'
    """
    pairs = _top_level(line)
    if pairs is None:
        return None  # Polars decides what it is
    if duplicates:
        names = {key for column_keys in keys.values() for key in column_keys}
        seen: set[str] = set()
        for key, _value in pairs:
            if key in names:
                if key in seen:
                    return f"duplicate field {key}"
                seen.add(key)
    first: dict[str, object] = {}
    for key, value in pairs:
        first.setdefault(key, value)  # Polars reads a key's first occurrence
    for column, column_keys in keys.items():
        value = next((first[key] for key in column_keys if first.get(key) is not None), None)
        if _has_lone_surrogate(value):
            return f"bad value for {column}: a lone surrogate escape (\\ud800-\\udfff) is not a character"
    return None


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, _Pairs):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value)
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _kind(text: str) -> str:
    return _KINDS.get(text[:1], "a JSON number")


def unparseable_reason(line: bytes, fmt: RecordFormat, error: Exception) -> str:
    """Why Polars refused a record, as a sentence (``error`` is what Polars raised)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as ex:
        return f"not valid UTF-8 (byte 0x{line[ex.start]:02x} at {ex.start})"
    if fmt == "csv":
        if "more fields" in str(error):
            return "malformed CSV (more fields than the header)"
        return "malformed CSV (unbalanced quote or bad field)"
    return _json_reason(text, error)


def _json_reason(text: str, error: Exception) -> str:
    body = text.strip(_JSON_BLANK)
    if body.startswith("\ufeff"):
        return "not JSON (it starts with a byte-order mark, which only a file or message may start with)"
    if not body or body[0] not in _VALUE_STARTS:
        return "not JSON"
    try:
        value = _load(body)
    except json.JSONDecodeError as ex:
        if ex.msg.startswith("Unterminated string") or ex.pos >= len(body):  # the input ran out
            opened = _OPENED.get(body[0])
            return f"truncated record (the {opened} is not closed)" if opened else "truncated record"
        if ex.pos == 0 or (ex.msg == "Extra data" and body[0] != "{"):
            return "not JSON"
        if ex.msg == "Extra data":
            return f"invalid JSON (more after the end of the object, at character {ex.pos})"
        if ex.msg.startswith("Invalid control character"):
            return f"invalid JSON (a control character inside a string, at character {ex.pos})"
        return f"invalid JSON ({ex.msg[0].lower()}{ex.msg[1:]} at character {ex.pos})"
    except RecursionError:
        return "invalid JSON (nested too deeply)"
    except ValueError as ex:  # NaN, Infinity
        return f"invalid JSON ({ex})"
    if not isinstance(value, _Pairs):
        return f"not a JSON object ({_kind(body)})"
    message = str(error)
    for pattern, words in _POLARS_ONLY:
        found = pattern.search(message)
        if found:
            return f"invalid JSON ({words.format(*found.groups())})"
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return f"invalid JSON ({first_line.removeprefix('error parsing line: ')})"
