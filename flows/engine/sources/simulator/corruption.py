"""Records broken on purpose, the ways real feeds break: truncated, not JSON, a field missing or wrong, not UTF-8.

In: rendered records (a frame) and, per record, which way to break it
(0 .. ``KINDS - 1``). Out: the broken records as bytes, which the decoder
turns into dead letters.
"""

from __future__ import annotations

import json

import polars as pl

_CORRUPTIONS = (
    lambda record: json.dumps(record)[: len(json.dumps(record)) // 2].encode(),  # truncated
    lambda record: b"<html><body>502 Bad Gateway</body></html>",  # not JSON
    lambda record: json.dumps({k: v for k, v in record.items() if k != "user_id"}).encode(),
    lambda record: json.dumps({**record, "ts": "yesterday"}).encode(),
    lambda record: json.dumps({**record, "price": -abs(record.get("price") or 1.0)}).encode(),
    lambda record: json.dumps({**record, "event_type": "click"}).encode(),
    lambda record: json.dumps(record).encode().replace(b'"', b'\xff"', 1),  # not UTF-8
)
KINDS = len(_CORRUPTIONS)


def corrupt(records: pl.DataFrame, kinds: list[int]) -> list[bytes]:
    """Malformed versions of the records, each broken the way ``kinds`` says."""
    return [_CORRUPTIONS[kind](record) for kind, record in zip(kinds, records.iter_rows(named=True))]
