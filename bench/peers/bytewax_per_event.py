"""The peer query the idiomatic per-event Bytewax 0.21 way: ``fold_window`` per product, then a window for the board.

    .venv/bin/python bench/peers/bytewax_per_event.py EVENTS.jsonl OUT_DIR

In: the simulator's events as JSON Lines (``FileSource``, one line per
item). Out: ``OUT_DIR/trends/rows.jsonl`` and
``OUT_DIR/leaderboard/rows.jsonl`` (``window_start`` ISO-8601 UTC,
``revenue`` in integer cents). One worker.

What Bytewax's documentation teaches, as in ``bench/file_throughput.py``:
``json.loads`` per line -> ``key_on`` product -> ``fold_window`` with an
``EventClock`` (30 s ``wait_for_system_duration``) and an epoch-aligned
``TumblingWindower``, with the accumulator of ``bench/per_event.py``; then
the sold products ``key_on`` one key and a second ``fold_window`` over the
rows' window starts collects each window's rows, ranked when it closes.

Bytewax's ``EventClock`` keeps a watermark per key (and advances it with
the wall clock too), not per stream: a product's window closes when that
product's own events (or enough wall-clock time) pass it, and an event is
late only against its own product's newest event. So it drops fewer
stragglers than the query's rule, and a window's rows reach the board step
as their products' windows close, not all at once.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.peers.query import LATENESS_S, TOP_N, WINDOW_S
from bench.per_event import TREND_SLOTS, add_to_trend, merge, parse

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WINDOW = timedelta(seconds=WINDOW_S)


def trend_row(keyed: tuple[str, tuple[int, list]]) -> dict:
    """``(product, (window id, accumulator))`` -> a trends row (revenue in cents)."""
    product, (window_id, acc) = keyed
    start = EPOCH + window_id * WINDOW
    return {"window_start": start.isoformat(), "window_end": (start + WINDOW).isoformat(), "product_id": product,
            "views": acc[1], "carts": acc[2], "removes": acc[3], "purchases": acc[4], "units": acc[5],
            "revenue": acc[6] // 10_000}


def ranked(keyed: tuple[str, tuple[int, list[dict]]]) -> list[dict]:
    """One window's sold rows -> its top N, ranked."""
    rows = sorted(keyed[1][1], key=lambda r: (-r["revenue"], -r["units"], r["product_id"]))[:TOP_N]
    return [{"window_start": r["window_start"], "window_end": r["window_end"], "rank": rank,
             "product_id": r["product_id"], "revenue": r["revenue"], "units": r["units"],
             "purchases": r["purchases"]} for rank, r in enumerate(rows, 1)]


def keyed_json(row: dict) -> tuple[str, str]:
    """A row as the ``(key, line)`` a ``FileSink`` takes."""
    return row["product_id"], json.dumps(row)


def build(events: Path, out: Path):
    import bytewax.operators as op
    from bytewax.connectors.files import FileSink, FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window

    windower = TumblingWindower(length=WINDOW, align_to=EPOCH)
    flow = Dataflow("peers_per_event")
    lines = op.input("read", flow, FileSource(events))
    parsed = op.filter_map("parse", lines, parse)  # event dicts, ts aware
    keyed = op.key_on("by_product", parsed, lambda e: str(e["product_id"]))
    clock = EventClock(lambda e: e["ts"], wait_for_system_duration=timedelta(seconds=LATENESS_S))
    totals = fold_window("trends", keyed, clock, windower, lambda: [0] * TREND_SLOTS, add_to_trend, merge)
    rows = op.map("trend_row", totals.down, trend_row)
    op.output("write_trends", op.map("trend_json", rows, keyed_json), FileSink(out / "trends" / "rows.jsonl"))

    sold = op.filter("sold", rows, lambda r: r["purchases"] > 0)
    board = op.key_on("one_board", sold, lambda _: "board")
    board_clock = EventClock(lambda r: datetime.fromisoformat(r["window_start"]), wait_for_system_duration=WINDOW)
    boards = fold_window("leaderboard", board, board_clock, windower, list, lambda acc, r: [*acc, r],
                         lambda a, b: a + b)
    top = op.flat_map("rank", boards.down, ranked)
    op.output("write_leaderboard", op.map("board_json", top, keyed_json), FileSink(out / "leaderboard" / "rows.jsonl"))
    return flow


def main() -> None:
    from bytewax.run import cli_main

    events, out = Path(sys.argv[1]), Path(sys.argv[2])
    (out / "trends").mkdir(parents=True, exist_ok=True)
    (out / "leaderboard").mkdir(parents=True, exist_ok=True)
    cli_main(build(events, out), workers_per_process=1)


if __name__ == "__main__":
    main()
