"""The peer query in Quix Streams: ``group_by`` product, a tumbling window, then a collecting window per minute.

    bench/data/peers/quix/bin/python bench/peers/quix_query.py BROKER TOPIC EVENTS OUT_DIR

In: ``EVENTS`` simulator events as JSON messages on ``TOPIC`` (one
partition, keyed by user, produced beforehand by the driver) at ``BROKER``.
Out: ``OUT_DIR/trends/rows.jsonl`` and ``OUT_DIR/leaderboard/rows.jsonl``
(``window_start`` in epoch milliseconds, ``revenue`` in integer cents).
The application stops itself once it has windowed all ``EVENTS`` events
and ranked every row it sent to the leaderboard.

The pipeline is the one Quix's documentation teaches: a ``json`` topic with
a ``timestamp_extractor`` reading the event's ``ts``; ``group_by`` the
product (a repartition topic, since windows are per message key);
``tumbling_window(60 s, grace 30 s).reduce(...)`` with the same accumulator
as the per-event Bytewax pipeline; ``final(closing_strategy="partition")``,
whose watermark is the partition's largest event time (the query's rule; the
default, ``"key"``, keeps one per product); then the sold products
``group_by`` one key and a 60 s ``collect()`` window, ranked when it closes.

What Quix does differently, by design: a window closes only when a later
message moves the watermark past it, and a bounded input has no end that
moves it; so the last windows (their trends and the last leaderboards) are
never emitted. Events late for a window are dropped (Quix logs them); that
is the query's rule too.

Configuration: no changelog topics (``use_changelog_topics=False``: no other
system here persists its state either), a fresh consumer group per run,
``auto_offset_reset="earliest"``, small session timeouts (Tansu's group
joins are slow), state in ``OUT_DIR/state``.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import datetime
from pathlib import Path

from query import LATENESS_S, TOP_N, WINDOW_S

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.per_event import TREND_SLOTS, add_to_trend


def event_ms(value: dict, headers: object, timestamp: int, timestamp_type: object) -> int:
    """The event's own time (``ts``, ISO-8601 UTC), in epoch milliseconds."""
    return int(datetime.fromisoformat(value["ts"]).timestamp() * 1000 + 0.5)


class Progress:
    """Stops the application once every event is windowed and every sold row is ranked.

    Checked after each message is processed (``on_message_processed``), when
    the rows a message's windows emitted have been counted.
    """

    def __init__(self, events: int):
        self.events = events
        self.windowed = self.sold = self.ranked = 0
        self.app = None

    def event(self, value: dict) -> None:
        self.windowed += 1

    def sent(self, row: dict) -> None:
        self.sold += 1

    def received(self, value: dict) -> None:
        self.ranked += 1

    def check(self, topic: str, partition: int, offset: int) -> None:
        if self.windowed >= self.events and self.ranked >= self.sold:
            self.app.stop()


def trend_row(window: dict, key: object, timestamp: int, headers: object) -> dict:
    acc = window["value"]
    return {"window_start": window["start"], "window_end": window["end"], "product_id": str(key),
            "views": acc[1], "carts": acc[2], "removes": acc[3], "purchases": acc[4], "units": acc[5],
            "revenue": acc[6] // 10_000}


def ranked(board: dict) -> list[dict]:
    rows = sorted(board["value"], key=lambda r: (-r["revenue"], -r["units"], r["product_id"]))[:TOP_N]
    return [{"window_start": board["start"], "window_end": board["end"], "rank": rank, "product_id": r["product_id"],
             "revenue": r["revenue"], "units": r["units"], "purchases": r["purchases"]}
            for rank, r in enumerate(rows, 1)]


def run(broker: str, topic_name: str, events: int, out: Path) -> None:
    from quixstreams import Application
    from quixstreams.models import TopicConfig

    (out / "trends").mkdir(parents=True, exist_ok=True)
    (out / "leaderboard").mkdir(parents=True, exist_ok=True)
    progress = Progress(events)
    app = Application(
        broker_address=broker,
        consumer_group=f"peers-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=out / "state",
        use_changelog_topics=False,
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        on_message_processed=progress.check,
    )
    progress.app = app
    trends_file = open(out / "trends" / "rows.jsonl", "w")  # noqa: SIM115 - open for the app's lifetime
    board_file = open(out / "leaderboard" / "rows.jsonl", "w")  # noqa: SIM115

    topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=event_ms)
    # Tansu needs explicit retention configs (Quix copies them into the repartition topics it creates).
    explicit = TopicConfig(num_partitions=1, replication_factor=1,
                           extra_config={"retention.ms": "-1", "retention.bytes": "-1"})
    trends = app.topic(f"{topic_name}-trends-{uuid.uuid4().hex[:8]}", key_serializer="json", value_serializer="json",
                       key_deserializer="json",
                       value_deserializer="json", config=explicit)
    sdf = app.dataframe(topic)
    sdf = sdf.group_by("product_id")  # key: product (a repartition topic)
    sdf = sdf.update(progress.event)
    windows = (
        sdf.tumbling_window(duration_ms=WINDOW_S * 1000, grace_ms=LATENESS_S * 1000)
        .reduce(add_to_trend, lambda event: add_to_trend([0] * TREND_SLOTS, event))
        .final(closing_strategy="partition")
    )  # {start, end, value: accumulator}, key: product
    rows = windows.apply(trend_row, metadata=True)
    rows = rows.update(lambda row: trends_file.write(json.dumps(row) + "\n"))
    rows = rows.update(progress.sent)
    rows.to_topic(trends)

    # A second dataframe, since group_by cannot be nested: the sold products under one key.
    boards = app.dataframe(trends)
    boards = boards.update(progress.received)
    boards = boards[boards["purchases"] > 0]
    boards = boards.group_by(lambda row: "board", name="board")  # key: the one board
    closed = boards.tumbling_window(duration_ms=WINDOW_S * 1000).collect().final(closing_strategy="partition")
    closed.apply(ranked).update(lambda rows: board_file.writelines(json.dumps(r) + "\n" for r in rows))
    try:
        app.run()
    finally:
        trends_file.close()
        board_file.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("broker")
    parser.add_argument("topic")
    parser.add_argument("events", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    run(args.broker, args.topic, args.events, args.out)


if __name__ == "__main__":
    main()
