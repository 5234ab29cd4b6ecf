"""Progress on stderr: nothing for short runs, a line every 10 s to a file, one line refreshed on a terminal."""

from __future__ import annotations

import io

import polars as pl

from flows.engine.progress import Progress, Step, step
from flows.engine.schema import EventBatch

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_batch_is_one_step_of_a_few_numbers():
    events = pl.DataFrame({"ts": [T0 + 5_000, T0 + 9_000, T0]})
    batch = EventBatch("a.jsonl", events, records=4, read_to=1_000)
    assert step(batch) == Step("a.jsonl", records=4, events=3, newest_ms=T0 + 9_000, read_to=1_000, last=False)


def test_a_run_shorter_than_the_delay_shows_nothing():
    clock, out = Clock(), io.StringIO()
    logic = Progress({"a.jsonl": 4_000}, "auto", out, clock)
    logic.on_batch([Step("a.jsonl", 10, 10, T0, 4_000, last=True)])
    clock.now += 4
    logic.on_notify()
    logic.on_eof()
    assert out.getvalue() == ""


def test_a_file_run_prints_a_line_every_10_s_with_percent_done_and_time_left():
    clock, out = Clock(), io.StringIO()
    logic = Progress({"a.jsonl": 3_000_000, "b.jsonl": 1_000_000}, "auto", out, clock)
    logic.on_batch([Step("a.jsonl", 1_000, 1_000, T0, 500_000, last=False)])  # the rate counts what comes after
    clock.now += 10
    logic.on_batch([Step("a.jsonl", 50_000, 49_000, T0 + 60_000, 1_500_000, last=False),
                    Step("b.jsonl", 1_000, 1_000, T0 + 30_000, 500_000, last=False)])
    clock.now += 5
    logic.on_notify()  # not due yet
    clock.now += 5
    logic.on_notify()
    assert out.getvalue().splitlines() == [
        # 2,000,000 of 4,000,000 bytes read; 1,000,000 after each file's first batch, in 10 s: 20 s left
        "dmp: 51,000 events (5,100/s), event time 2024-01-01T00:00:30Z; 50% of 4.0 MB read, about 20s left",
        "dmp: 51,000 events (2,550/s), event time 2024-01-01T00:00:30Z; 50% of 4.0 MB read, about 40s left",
    ]


def test_the_event_time_is_that_of_the_slowest_partition_still_going():
    logic = Progress(None, "lines", io.StringIO(), Clock())
    logic.on_batch([Step("p0", 5, 5, T0 + 1_000, None, last=False), Step("p1", 5, 5, T0 + 9_000, None, last=False)])
    assert logic.event_time() == T0 + 1_000
    logic.on_batch([Step("p0", 0, 0, None, None, last=True)])
    assert logic.event_time() == T0 + 9_000
    assert logic.line(10.0) == "dmp: 10 events (1/s), event time 2024-01-01T00:00:09Z"  # no percent: no sizes


def test_on_a_terminal_one_line_is_refreshed_in_place_and_ended_at_the_end():
    clock, out = Clock(), Terminal()
    logic = Progress(None, "auto", out, clock)
    for _ in range(7):
        logic.on_batch([Step("sim-0", 100, 100, T0, None, last=False)])
        clock.now += 1
    logic.on_eof()
    text = out.getvalue()
    assert text.count("\r\033[K") == 3 and text.endswith("\n") and text.count("\n") == 1  # at 5, 6 and 7 s
    assert text.rsplit("\r\033[K", 1)[1] == "dmp: 700 events (100/s), event time 2024-01-01T00:00:00Z\n"


def test_lines_mode_prints_lines_even_on_a_terminal():
    clock, out = Clock(), Terminal()
    logic = Progress(None, "lines", out, clock)
    logic.on_batch([Step("sim-0", 100, 100, T0, None, last=False)])
    clock.now += 10
    logic.on_notify()
    assert out.getvalue() == "dmp: 100 events (10/s), event time 2024-01-01T00:00:00Z\n"
