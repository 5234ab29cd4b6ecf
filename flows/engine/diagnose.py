"""Diagnosing single records in Python, on the careful path only.

In: the bytes of one record (a line of a chunk, or a message). Out: a yes or
no for the cheap pre-checks that name suspects among many lines
(:func:`plausible`, :func:`csv_fields`) and, for a record Polars refused,
why (:func:`unparseable_reason`).

None of these decides whether a record parses: Polars does (see
:mod:`flows.engine.parse`), so a record decodes the same whichever path it took.
"""

from __future__ import annotations

import csv
import json

from flows.engine.schema import RecordFormat


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN / Infinity: Polars rejects them too


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


def unparseable_reason(line: bytes, fmt: RecordFormat, error: Exception) -> str:
    """Why Polars refused a record (``error`` is what Polars raised)."""
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
