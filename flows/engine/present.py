"""Engine frames as output rows, and the engine's own output streams (late, quality, dead letters).

The engine keeps times as epoch milliseconds and money as integer
micro-units (exact sums); output rows are typed (:mod:`flows.engine.streams`):
times as UTC datetimes (:func:`as_time`), money as decimal amounts
(:func:`flows.engine.money.money`), durations in seconds (:func:`seconds`).
Each sink renders them its own way (JSON Lines show ISO-8601 with ``Z``).
The run summary says what these streams found (:mod:`flows.engine.findings`):
the dead letters' and quarantined events' commonest reasons, which
analytics' windows events were late for, and how many windows each
analytic closed.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from flows.engine.findings import Finding, lasting, listed, sum_by
from flows.engine.schema import AS_OF, COUNT_COLUMNS, SEQ, StampedBatch
from flows.engine.streams import BYTES, INT, MONEY, TEXT, TIME, TIME_MS, TIMES, UTC_MS, Column, OutputStream
from flows.engine.windows import MISSED, WINDOW_END, WINDOW_START


def iso(column: str | pl.Expr, *, millis: bool = False) -> pl.Expr:
    """Epoch milliseconds -> ``2024-03-01T10:00:00Z`` (``.250Z`` with ``millis``), as text.

    >>> pl.select(iso(pl.lit(1709287200250), millis=True)).item()
    '2024-03-01T10:00:00.250Z'
    """
    expr = pl.col(column) if isinstance(column, str) else column
    fmt = "%Y-%m-%dT%H:%M:%S%.3fZ" if millis else "%Y-%m-%dT%H:%M:%SZ"
    return pl.from_epoch(expr, time_unit="ms").dt.strftime(fmt)


def as_time(column: str | pl.Expr) -> pl.Expr:
    """Epoch milliseconds -> a UTC datetime (what typed output rows hold).

    >>> pl.select(as_time(pl.lit(1709287200250)).dt.strftime("%H:%M:%S%.3f")).item()
    '10:00:00.250'
    """
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.cast(UTC_MS)


def seconds(ms: str | pl.Expr) -> pl.Expr:
    """Milliseconds (whole, or halves, as medians give) -> seconds, as ``ms / 1000`` in Python.

    Through a Decimal, like :func:`~flows.engine.money.money`: Polars'
    division by a constant is not correctly rounded.

    >>> pl.select(seconds(pl.lit(90_123)).alias("a"), seconds(pl.lit(4_500.5)).alias("b")).row(0)
    (90.123, 4.5005)
    """
    expr = pl.col(ms) if isinstance(ms, str) else ms
    return (expr.cast(pl.Decimal(38, 6)) / 1000).cast(pl.Float64)


# -- findings: what the run summary says of these streams ----------------------------


def reason_kind(reason: pl.Expr) -> pl.Expr:
    """A reason without its details, so that reasons of one kind are counted together.

    The value before `` is `` goes, then whatever follows ``: `` or `` (``.

    >>> reasons = ["price -359.99 is below the minimum 0", "bad value for ts: 'x' is not an ISO-8601 time",
    ...            "not valid UTF-8 (byte 0xff at 1)", "missing field user_id"]
    >>> pl.Series(reasons).to_frame("reason").select(reason_kind(pl.col("reason")))["reason"].to_list()
    ['price is below the minimum 0', 'bad value for ts', 'not valid UTF-8', 'missing field user_id']
    """
    return reason.str.replace(r" (?:'[^']*'|\S+) is ", " is ").str.replace(r"(?:: | \().*$", "")


def _reasons(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.group_by(reason_kind(pl.col("reason"))).agg(pl.len().cast(pl.Int64).alias("count"))


def _reasons_result(merged: pl.DataFrame) -> dict[str, Any]:
    ordered = merged.sort(["count", "reason"], descending=[True, False])
    return {"reasons": [{"reason": reason, "count": count} for reason, count in ordered.iter_rows()]}


def _reasons_lines(found: dict[str, Any], shown: int = 2) -> list[str]:
    reasons = [(r["count"], r["reason"]) for r in found["reasons"]]
    if not reasons:
        return []
    if len(reasons) <= shown + 1:  # a lone other kind is named, not counted as "others"
        return [", ".join(f"{count:,} {reason}" for count, reason in reasons)]
    rest = reasons[shown:]
    return [", ".join(f"{count:,} {reason}" for count, reason in reasons[:shown])
            + f", {sum(count for count, _ in rest):,} of {len(rest)} other kinds"]


REASONS = Finding(_reasons, sum_by("reason"), _reasons_result, _reasons_lines)
"""The commonest kinds of reason (:func:`reason_kind`), with their counts: of dead letters, of quarantined events."""


def _late(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.group_by("analytic").agg(
        pl.len().cast(pl.Int64).alias("events"),
        (pl.col("watermark") - pl.col("ts")).dt.total_milliseconds().max().cast(pl.Int64).alias("behind_ms"),
    )


def _late_merge(partials: pl.DataFrame) -> pl.DataFrame:
    return partials.group_by("analytic").agg(pl.col("events").sum(), pl.col("behind_ms").max())


def _late_result(merged: pl.DataFrame) -> dict[str, Any]:
    ordered = merged.sort(["events", "analytic"], descending=[True, False])
    events, behind = merged.select(pl.col("events").sum(), pl.col("behind_ms").max()).row(0)
    return {"events": events, "per_analytic": dict(ordered.select("analytic", "events").iter_rows()),
            "most_behind_s": behind / 1000 if behind is not None else None}


def _late_lines(found: dict[str, Any]) -> list[str]:
    if not found["events"]:
        return []
    return [f"{listed(found['per_analytic'].items())}; at most {lasting(found['most_behind_s'] * 1000)} behind "
            "the watermark"]


LATE_EVENTS = Finding(_late, _late_merge, _late_result, _late_lines)
"""Late rows per analytic whose window they missed, and the furthest an event was behind the watermark it met."""


def _quality(rows: pl.DataFrame) -> pl.DataFrame:
    closing = pl.col("report") == "at_close"
    return rows.group_by("analytic").agg(
        closing.sum().cast(pl.Int64).alias("windows"), (~closing).sum().cast(pl.Int64).alias("reports_after_close"),
        *(pl.col(name).sum().cast(pl.Int64) for name in COUNT_COLUMNS),
    )


def _quality_result(merged: pl.DataFrame) -> dict[str, Any]:
    ordered = merged.sort(["windows", "analytic"], descending=[True, False])
    return {"per_analytic": {row.pop("analytic"): row for row in ordered.iter_rows(named=True)}}


def _quality_lines(found: dict[str, Any]) -> list[str]:
    analytics = found["per_analytic"]
    if not analytics:
        return []
    later = sum(a["reports_after_close"] for a in analytics.values())
    dropped = sum(a["dropped_after_idle"] for a in analytics.values())
    windows = [f"{name} {a['windows']:,}" for name, a in analytics.items()]
    windows[0] += " windows"
    dropped_text = f", {dropped:,} events DROPPED after idle" if dropped else ""
    reports = f"{later:,} report{'s' if later != 1 else ''} after close"
    return [f"{', '.join(windows)}; {reports}{dropped_text}"]


WINDOW_QUALITY = Finding(_quality, sum_by("analytic"), _quality_result, _quality_lines)
"""Windows each analytic closed, reports of news after a window closed, events dropped after idle."""


# -- late events ---------------------------------------------------------------------

_EVENT_COLUMNS = (
    Column("event_id", TEXT),
    Column("event_type", TEXT, nullable=False),
    Column("ts", TIME_MS, nullable=False),
    Column("user_id", TEXT, nullable=False),
    Column("session_id", TEXT),
    Column("product_id", TEXT, nullable=False),
    Column("category", TEXT),
    Column("brand", TEXT),
    Column("price", MONEY),
    Column("quantity", INT, nullable=False),
)

_WHERE = (Column("partition", TEXT, nullable=False), Column(SEQ, INT, nullable=False))

LATE = OutputStream(
    "late",
    row="event that missed a window of an analytic",
    fields="`analytic` (whose window it missed: `trends`, `funnel`, `sessions`, `spend`, `timeseries`), the event "
    "(`event_id`, `event_type`, `ts`, `user_id`, `session_id`, `product_id`, `category`, `brand`, `price`, "
    "`quantity`; optional fields the flow did not decode are null), `partition` and `seq` (the event's number in "
    "its partition: they name it), `window_start`, `window_end` (the first window it missed), `missed_windows` "
    "(the start of every window it missed: several with sliding windows), `watermark` (the one it met)",
    key=("analytic", "partition", SEQ),
    columns=(
        Column("analytic", TEXT, nullable=False),
        *_EVENT_COLUMNS,
        *_WHERE,
        Column(WINDOW_START, TIME_MS, nullable=False),
        Column(WINDOW_END, TIME_MS, nullable=False),
        Column("missed_windows", TIMES, nullable=False),
        Column("watermark", TIME_MS, nullable=False),
    ),
    finding=LATE_EVENTS,
)


def late_rows(late: pl.DataFrame, partition: str, analytic: str) -> pl.DataFrame:
    """Late events as typed rows (:data:`LATE`): the event, the windows it missed and the watermark it met.

    ``window_start`` / ``window_end`` name the (first) window missed;
    ``missed_windows`` lists the start of every window missed (the event
    still counts in the others). For sessions they are the span the event
    would have opened, ``[ts, ts + gap)``.
    """
    return LATE.conform(late.with_columns(
        pl.col("event_type").cast(pl.String),
        as_time("ts"),
        as_time(WINDOW_START),
        as_time(WINDOW_END),
        pl.col(MISSED).cast(pl.List(UTC_MS)).alias("missed_windows"),
        as_time("watermark"),
        pl.lit(partition).alias("partition"),
        pl.lit(analytic).alias("analytic"),
    ))


# -- quarantine ----------------------------------------------------------------------

QUARANTINE = OutputStream(
    "quarantine",
    row="event whose time may not move its partition's watermark",
    fields="`reason` (before `DMP_EARLIEST_EVENT_TIME`; too far ahead of the wall clock; a jump ahead of its "
    "partition that the next event did not follow), the event (as in `late`), `partition`, `seq`",
    key=("partition", SEQ),
    columns=(Column("reason", TEXT, nullable=False), *_EVENT_COLUMNS, *_WHERE),
    finding=REASONS,
)


def quarantine_rows(batch: StampedBatch) -> tuple[str, pl.DataFrame] | None:
    """A batch's quarantined events (with their ``reason``) as typed rows (:data:`QUARANTINE`), keyed by partition."""
    if batch.quarantined is None:
        return None
    return batch.partition, QUARANTINE.conform(batch.quarantined.with_columns(
        pl.col("event_type").cast(pl.String), as_time("ts"), pl.lit(batch.partition).alias("partition"),
    ))


# -- quality -------------------------------------------------------------------------

QUALITY = OutputStream(
    "quality",
    row="window of an analytic, and later report about it, a slide after its `as_of`",
    fields="`analytic`, `window_start`, `window_end`, `report` (`at_close`, or `after_close` for news that came "
    "later), `as_of` (the window end its partitions' watermarks had reached when the news came: the window's own "
    "end at close), `events` (on time, in results), `late`, `duplicates`, `dead_letters` (in the window of their "
    "partition's newest event before them), `dropped_after_idle`. A window's rows add up to its totals; the rows "
    "depend only on the input (but `dropped_after_idle`, which only idleness causes)",
    key=("analytic", WINDOW_START, AS_OF),
    columns=(
        Column("analytic", TEXT, nullable=False),
        Column(WINDOW_START, TIME, nullable=False),
        Column(WINDOW_END, TIME, nullable=False),
        Column("report", TEXT, nullable=False),
        Column(AS_OF, TIME, nullable=False),
        *(Column(name, INT, nullable=False) for name in COUNT_COLUMNS),
    ),
    finding=WINDOW_QUALITY,
)


def quality_rows(quality: pl.DataFrame, analytic: str) -> pl.DataFrame:
    """Quality rows (:data:`~flows.engine.schema.QUALITY_SCHEMA`) as typed rows (:data:`QUALITY`)."""
    return QUALITY.conform(quality.with_columns(
        pl.lit(analytic).alias("analytic"), *(as_time(name) for name in (WINDOW_START, WINDOW_END, AS_OF))))


# -- dead letters --------------------------------------------------------------------

DEAD_LETTERS = OutputStream(
    "dead_letters",
    row="record that could not be decoded",
    fields="`reason`, `raw` (the record as text; invalid UTF-8 bytes as `\\xNN`; Kafka gets the original bytes "
    "and key), `source` (`file:line`, or `topic/partition@offset`)",
    key=("source",),
    columns=(Column("reason", TEXT, nullable=False), Column("raw", BYTES, nullable=False),
             Column("source", TEXT, nullable=False)),
    original="raw",
    finding=REASONS,
)
