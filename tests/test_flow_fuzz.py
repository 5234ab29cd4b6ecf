"""The whole flow survives any record, and bad records change nothing but the dead letters.

Good events mixed with records of any shape (see :mod:`tests.strategies`),
over a partition of Kafka-like messages and one of JSON Lines chunks, run
through ``flows.dmp``: nothing raises, the summary counts every record as an
event or a dead letter, and trends and the leaderboard are exactly those of
a run over only the records that decode (each decoded alone).
"""

from __future__ import annotations

from bytewax.testing import TestingSource
from hypothesis import example, given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from flows import dmp
from flows.engine.analytics import registry
from flows.engine.config import Settings
from flows.engine.decode import decode_batch
from flows.engine.schema import RawBatch
from flows.engine.testing import CapturedOutputs, batches, interleave, run
from tests import strategies

# The attacker-minded findings this suite started from, always among the examples.
_EVENT = b'"event_type": "purchase", "ts": "2024-03-01T10:00:05Z", "user_id": 1, "product_id": "p1"'
FINDINGS = [
    b"{" + _EVENT + b', "price": 1e300}',  # once crashed the windows (price micro-units beyond an Int64)
    b"{" + _EVENT + b', "price": 1, "quantity": 9223372036854775807}',  # wrapped around
    b"{" + _EVENT + b', "price": 999999, "quantity": 10000000000000}',
    b"{" + _EVENT + b', "price": "12.5"}',  # a string price next to a bad line crashed the careful path
    b"not json",
    b"\xef\xbb\xbf{" + _EVENT + b', "price": 2}',  # a byte-order mark at the start of a message
    b"{" + _EVENT + b', "price": 1, "price": -5}',
    b"{" + _EVENT,  # cut off
    # The last instant allowed: its window ends in the year 10000, which crashed the run summary's trends finding.
    b'{"event_type": "view", "user_id": 1, "product_id": "p1", "price": 0, "ts": 253402300799999}',
]

SETTINGS = Settings(window_ms=60_000, allowed_lateness_ms=30_000, top_n=3, shards=2, analytics=("trends",))
_BLANK = b" \t\r"


def decodes(record: bytes, as_line: bool) -> bool:
    """Whether a record, alone, decodes to an event."""
    raw = RawBatch("p", record + b"\n" if as_line else [record])
    return decode_batch(raw, registry.event_fields(SETTINGS)).events.height == 1


def run_flow(messages: list[bytes], lines: list[bytes], sizes: list[int], order: list[str]) -> CapturedOutputs:
    per_partition = {
        "a": batches(messages, partition="a", sizes=sizes),
        "b": batches(lines, partition="b", sizes=sizes, as_lines=True),
    }
    captured = CapturedOutputs()
    flow = dmp.build(SETTINGS, source=TestingSource(interleave(per_partition, order)), partitions=["a", "b"],
                     outputs=captured.outputs())
    run(flow)
    return captured


@strategies.fuzzing(4)
@example(messages=FINDINGS, lines=FINDINGS, sizes=[3], order=["a", "b"])
@given(strategies.messages(), strategies.jsonl_records(), st.lists(st.integers(1, 8), max_size=6),
       st.lists(st.sampled_from(["a", "b"]), max_size=12))
def test_bad_records_change_nothing_but_the_dead_letters(messages, lines, sizes, order):
    lines = [line for line in lines if line.strip(_BLANK)]  # a blank line is no record
    mixed = run_flow(messages, lines, sizes, order)
    good = run_flow([m for m in messages if decodes(m, False)], [line for line in lines if decodes(line, True)],
                    sizes, order)
    summary = mixed.summary
    assert summary is not None and summary["reconciled"]
    assert summary["records"] == len(messages) + len(lines) == summary["events"] + summary["dead_letters"]
    assert summary["events"] == good.summary["events"]
    assert mixed.frame("dead_letters").height == summary["dead_letters"]
    for stream in ("trends", "leaderboard"):
        assert_frame_equal(mixed.sorted_frame(stream), good.sorted_frame(stream))
