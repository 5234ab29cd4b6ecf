"""The peer query in Apache Flink SQL (PyFlink): a TUMBLE window TVF, then a window Top-N.

    bench/data/peers/flink/bin/python bench/peers/flink_query.py EVENTS.jsonl OUT_DIR [--watermarks per-event|periodic]

In: the simulator's events as JSON Lines (the filesystem connector, JSON
format). Out: ``OUT_DIR/trends/`` and ``OUT_DIR/leaderboard/``, JSON Lines
part files written by Flink's filesystem sink (``window_start`` as
``yyyy-MM-dd HH:mm:ss`` in UTC, ``revenue`` a DECIMAL with six places).

Configuration, chosen to compute the shared query (``query.py``) exactly:

- one task slot's worth of work: ``parallelism.default`` 1, as every other
  system here runs one worker;
- ``WATERMARK FOR ts AS ts - 30.001 s``: Flink calls a window late once
  the watermark reaches its last millisecond (``end - 1``), the query once
  it reaches its end, so the 1 ms makes the two rules the same;
- ``--watermarks per-event`` (the default) sets
  ``pipeline.auto-watermark-interval`` to 0, so the watermark assigner
  forwards every advance of the watermark at once and results are the
  same on every run. ``periodic`` keeps Flink's default (200 ms of wall
  clock), so how many stragglers count as late depends on timing;
- prices as ``DECIMAL(18, 6)`` (micro-units, like flows.dmp): revenue is an
  exact decimal sum;
- no checkpointing (no other system here persists state either).

Both INSERTs run as one statement set, so the window aggregate is planned
once and feeds both sinks. Only SQL runs: no Python UDF, so no Python
worker processes; the work happens in PyFlink's gateway JVM (a local
MiniCluster), which PyFlink leaves running at exit; the driver ends it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from query import LATENESS_S, TOP_N, WINDOW_S

SOURCE = """
CREATE TABLE events (
    event_type STRING,
    ts TIMESTAMP_LTZ(3),
    product_id STRING,
    price DECIMAL(18, 6),
    quantity INT,
    WATERMARK FOR ts AS ts - INTERVAL '{lateness}.001' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = {path},
    'format' = 'json',
    'json.timestamp-format.standard' = 'ISO-8601'
)
"""

SINK = """
CREATE TABLE {name} ({columns}) WITH (
    'connector' = 'filesystem',
    'path' = {path},
    'format' = 'json'
)
"""

TRENDS_COLUMNS = """window_start TIMESTAMP(3), window_end TIMESTAMP(3), product_id STRING,
    `views` BIGINT, carts BIGINT, removes BIGINT, purchases BIGINT, units BIGINT, revenue DECIMAL(38, 6)"""
BOARD_COLUMNS = """window_start TIMESTAMP(3), window_end TIMESTAMP(3), `rank` BIGINT, product_id STRING,
    revenue DECIMAL(38, 6), units BIGINT, purchases BIGINT"""

# `views` is a reserved word in Flink SQL, hence the backticks.
TRENDS = """
CREATE TEMPORARY VIEW trends AS
SELECT window_start, window_end, window_time, product_id,
    COUNT(*) FILTER (WHERE event_type = 'view') AS `views`,
    COUNT(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
    COUNT(*) FILTER (WHERE event_type = 'remove_from_cart') AS removes,
    COUNT(*) FILTER (WHERE event_type = 'purchase') AS purchases,
    CAST(COALESCE(SUM(COALESCE(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0) AS BIGINT) AS units,
    COALESCE(SUM(COALESCE(price, 0) * COALESCE(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0)
        AS revenue
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '{window}' SECOND))
GROUP BY window_start, window_end, window_time, product_id
"""

BOARD = """
INSERT INTO leaderboard
SELECT window_start, window_end, rn, product_id, revenue, units, purchases FROM (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY window_start, window_end ORDER BY revenue DESC, units DESC, product_id ASC) AS rn
    FROM trends WHERE purchases > 0
) WHERE rn <= {top_n}
"""


def run(events: Path, out: Path, watermarks: str) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    config.set("table.local-time-zone", "UTC")
    if watermarks == "per-event":
        config.set("pipeline.auto-watermark-interval", "0 ms")

    def quoted(path: Path) -> str:
        return json.dumps(str(path.resolve())).replace('"', "'")

    env.execute_sql(SOURCE.format(lateness=LATENESS_S, path=quoted(events)))
    env.execute_sql(SINK.format(name="trends_out", columns=TRENDS_COLUMNS, path=quoted(out / "trends")))
    env.execute_sql(SINK.format(name="leaderboard", columns=BOARD_COLUMNS, path=quoted(out / "leaderboard")))
    env.execute_sql(TRENDS.format(window=WINDOW_S))
    statements = env.create_statement_set()
    statements.add_insert_sql("INSERT INTO trends_out SELECT window_start, window_end, product_id, `views`, carts, "
                              "removes, purchases, units, revenue FROM trends")
    statements.add_insert_sql(BOARD.format(top_n=TOP_N))
    statements.execute().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--watermarks", choices=["per-event", "periodic"], default="per-event")
    args = parser.parse_args()
    run(args.events, args.out, args.watermarks)


if __name__ == "__main__":
    main()
