"""Open window state: filed per window, merged lazily, taken out exactly when it closes."""

from __future__ import annotations

import polars as pl

from flows.engine.aggregate import Sum, WindowedAggregate
from flows.engine.schema import END_OF_TIME
from flows.engine.sessions import session_partials
from flows.engine.state import COMPACT_ROWS, FixedWindows, Sessions
from flows.engine.windows import SessionWindow, TumblingWindow

MINUTE = 60_000
COUNT = WindowedAggregate("count", ("product_id",), TumblingWindow(MINUTE), {"n": Sum(pl.col("quantity"))})
GAP = 10_000
SESSIONS = WindowedAggregate("sessions", ("user_id",), SessionWindow(GAP), {"n": Sum(pl.col("quantity"))})


def partials(starts: list[int], products: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"window_start": starts, "product_id": products, "n": [1] * len(starts), "events": [1] * len(starts)}
    )


def test_closing_takes_out_exactly_the_ended_windows_merged():
    state = FixedWindows(COUNT)
    state.add(partials([0, 0, MINUTE], ["a", "b", "a"]))
    state.add(partials([0, MINUTE, 2 * MINUTE], ["a", "a", "c"]))
    done = state.close(MINUTE)
    assert sorted(done.select("window_start", "product_id", "n").rows()) == [(0, "a", 2), (0, "b", 1)]
    assert state.close(MINUTE) is None  # nothing more ends there
    assert state.rows == 3  # [1m, 2m) and [2m, 3m) are still open
    done = state.close(END_OF_TIME)
    assert sorted(done.select("window_start", "product_id", "n").rows()) == [(MINUTE, "a", 2), (2 * MINUTE, "c", 1)]
    assert state.rows == 0 and state.held() == []


def test_many_batches_for_one_window_are_merged_as_they_pile_up_not_kept_forever():
    state = FixedWindows(COUNT)
    batch = partials([0] * 1000, [f"p{i}" for i in range(1000)])
    for _ in range(3 * COMPACT_ROWS // 1000):
        state.add(batch)
    assert len(state.windows[0]) <= 5  # chunks are merged when they grow many
    assert state.rows <= 3 * 1000 + COMPACT_ROWS  # never every batch's rows
    done = state.close(MINUTE)
    assert done.height == 1000 and done["n"].unique().to_list() == [3 * COMPACT_ROWS // 1000]


def test_a_snapshot_of_fixed_windows_resumes_to_the_same_results():
    state = FixedWindows(COUNT)
    state.add(partials([0, MINUTE], ["a", "a"]))
    state.compact()
    state.add(partials([0], ["a"]))
    resumed = FixedWindows(COUNT, state.held())
    assert sorted(resumed.close(END_OF_TIME).rows()) == sorted(state.close(END_OF_TIME).rows())


def session_rows(rows: list[tuple[str, int]]) -> pl.DataFrame:
    events = pl.DataFrame({"user_id": [u for u, _ in rows], "ts": [t for _, t in rows], "quantity": [1] * len(rows)})
    return session_partials(events, SESSIONS)


def test_sessions_do_no_work_until_one_can_close():
    state = Sessions(SESSIONS)
    state.add(session_rows([("u", 100_000), ("v", 105_000)]))
    assert state.next_close == 100_000 + 2 * GAP
    assert state.close(119_999) is None
    assert state.pending_rows == 2 and state.open is None  # not even merged yet
    done = state.close(120_000)
    assert done.select("user_id", "window_start", "last_ts").rows() == [("u", 100_000, 100_000)]
    assert state.next_close == 105_000 + 2 * GAP


def test_new_rows_merge_only_with_the_sessions_of_their_keys():
    state = Sessions(SESSIONS)
    state.add(session_rows([("u", 0), ("v", 0), ("w", 0)]))
    state.compact()
    untouched = state.open.filter(pl.col("user_id") != "u").sort("user_id")
    state.add(session_rows([("u", 5_000)]))
    state.compact()
    assert state.open.filter(pl.col("user_id") != "u").sort("user_id").equals(untouched)
    assert state.open.filter(pl.col("user_id") == "u").select("window_start", "last_ts", "n").rows() == [(0, 5_000, 2)]
