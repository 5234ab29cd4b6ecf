"""The peer query in Pathway, static mode: ``windowby`` tumbling windows, then a top 10 per window.

    bench/data/peers/pathway/bin/python bench/peers/pathway_query.py EVENTS.jsonl OUT_DIR

In: the simulator's events as JSON Lines (``pw.io.jsonlines.read``,
``mode="static"``: the file is read once, as a table, and the run ends).
Out: ``OUT_DIR/trends/rows.jsonl`` and ``OUT_DIR/leaderboard/rows.jsonl``
(``pw.io.jsonlines.write``: each row plus Pathway's ``time`` and ``diff``;
``window_start`` a naive UTC datetime, ``revenue`` in integer cents).

Lateness: in static mode the whole file is one batch of one processing
time, so no event is behind the data already processed and none is late;
a ``cutoff`` behaviour would change nothing. Pathway therefore counts the
stragglers that the other systems drop as late: its rows differ from
flows.dmp's in exactly the windows those stragglers belong to.

Money: revenue is summed in integer cents (the simulator's prices have two
decimals), so totals are exact. One Pathway worker thread
(``PATHWAY_THREADS`` unset), monitoring off.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

from query import TOP_N, WINDOW_S


def run(events: Path, out: Path) -> None:
    import pathway as pw

    class Event(pw.Schema):
        event_type: str
        ts: str
        product_id: int
        price: float | None
        quantity: int | None

    def is_(kind: str) -> pw.ColumnExpression:
        return pw.if_else(pw.this.event_type == kind, 1, 0)

    raw = pw.io.jsonlines.read(str(events), schema=Event, mode="static")
    parsed = raw.select(
        ts=pw.this.ts.dt.strptime("%Y-%m-%dT%H:%M:%S%.fZ"),
        product_id=pw.cast(str, pw.this.product_id),
        view=is_("view"),
        cart=is_("add_to_cart"),
        remove=is_("remove_from_cart"),
        purchase=is_("purchase"),
        units=is_("purchase") * pw.coalesce(pw.this.quantity, 1),
        cents=is_("purchase") * pw.coalesce(pw.this.quantity, 1)
        * pw.cast(int, (pw.coalesce(pw.this.price, 0.0) * 100).num.round()),
    )
    trends = parsed.windowby(
        pw.this.ts,
        window=pw.temporal.tumbling(duration=timedelta(seconds=WINDOW_S), origin=datetime(1970, 1, 1)),
        instance=pw.this.product_id,
    ).reduce(
        window_start=pw.this._pw_window_start,
        window_end=pw.this._pw_window_end,
        product_id=pw.this._pw_instance,
        views=pw.reducers.sum(pw.this.view),
        carts=pw.reducers.sum(pw.this.cart),
        removes=pw.reducers.sum(pw.this.remove),
        purchases=pw.reducers.sum(pw.this.purchase),
        units=pw.reducers.sum(pw.this.units),
        revenue=pw.reducers.sum(pw.this.cents),
    )

    # Top N per window: sort each window's sold products by the ranking key, keep the first N.
    sold = trends.filter(pw.this.purchases > 0)
    boards = sold.groupby(pw.this.window_start, pw.this.window_end).reduce(
        pw.this.window_start,
        pw.this.window_end,
        ranked=pw.reducers.sorted_tuple(
            pw.make_tuple(-pw.this.revenue, -pw.this.units, pw.this.product_id, pw.this.purchases)),
    )
    top = boards.select(
        pw.this.window_start,
        pw.this.window_end,
        entry=pw.apply_with_type(
            lambda ranked: tuple((rank, pid, -cents, -units, bought)
                                 for rank, (cents, units, pid, bought) in enumerate(ranked[:TOP_N], 1)),
            tuple[tuple[int, str, int, int, int], ...], pw.this.ranked),
    ).flatten(pw.this.entry)
    leaderboard = top.select(
        pw.this.window_start,
        pw.this.window_end,
        **{name: pw.this.entry.get(i) for i, name in enumerate(("rank", "product_id", "revenue", "units",
                                                                 "purchases"))},
    )

    (out / "trends").mkdir(parents=True, exist_ok=True)
    (out / "leaderboard").mkdir(parents=True, exist_ok=True)
    pw.io.jsonlines.write(trends, str(out / "trends" / "rows.jsonl"))
    pw.io.jsonlines.write(leaderboard, str(out / "leaderboard" / "rows.jsonl"))
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    run(args.events, args.out)


if __name__ == "__main__":
    main()
