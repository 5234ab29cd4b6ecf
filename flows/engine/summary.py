"""The run summary: counts that reconcile, and the run's top products.

In: :class:`Tally` items from the decoder (records, events, dead letters),
the windowing (late events) and the closed trend windows (per-product
sales). Out: once, at the end of a bounded run, a summary dict: records in
= decoded events + dead letters, and decoded = on time + late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.present import MICROS

_PRODUCT_SCHEMA = pl.Schema(
    {"product_id": pl.String, "revenue_micros": pl.Int64, "units": pl.Int64, "purchases": pl.Int64}
)
_PRODUCT_COLUMNS = _PRODUCT_SCHEMA.names()


@dataclass(frozen=True)
class Tally:
    """Counts from one batch of one step (zero where the step has nothing to say)."""

    records: int = 0
    events: int = 0
    dead_letters: int = 0
    late: int = 0
    products: pl.DataFrame | None = None  # product_id, revenue_micros, units, purchases


def product_sales(rows: pl.DataFrame) -> pl.DataFrame:
    """Per-product sales in closed trend rows (products with purchases only)."""
    return (
        rows.filter(pl.col("purchases") > 0)
        .group_by("product_id")
        .agg(pl.col("revenue_micros", "units", "purchases").sum())
    )


@dataclass
class SummaryState:
    records: int = 0
    events: int = 0
    dead_letters: int = 0
    late: int = 0
    products: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_PRODUCT_SCHEMA))


class RunSummary(StatefulBatchLogic[Tally, dict, SummaryState]):
    """Adds up tallies; emits the summary when the input ends."""

    def __init__(self, top: int, resume: SummaryState | None) -> None:
        self.top = top
        self.state = resume if resume is not None else SummaryState()

    def on_batch(self, values: list[Tally]) -> tuple[list[dict], bool]:
        state = self.state
        frames = [state.products]
        for tally in values:
            state.records += tally.records
            state.events += tally.events
            state.dead_letters += tally.dead_letters
            state.late += tally.late
            if tally.products is not None and tally.products.height:
                frames.append(tally.products.select(_PRODUCT_COLUMNS))
        if len(frames) > 1:
            state.products = pl.concat(frames, how="vertical").group_by("product_id").agg(
                pl.col("revenue_micros", "units", "purchases").sum()
            )
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[dict], bool]:
        return [self.summary()], StatefulBatchLogic.DISCARD

    def summary(self) -> dict[str, Any]:
        state = self.state
        top = state.products.sort(
            ["revenue_micros", "units", "product_id"], descending=[True, True, False]
        ).head(self.top)
        return {
            "records": state.records,
            "events": state.events,
            "dead_letters": state.dead_letters,
            "late": state.late,
            "on_time": state.events - state.late,
            "reconciled": state.records == state.events + state.dead_letters,
            "revenue": state.products["revenue_micros"].sum() / MICROS,
            "top_products": [
                {
                    "product_id": row["product_id"],
                    "revenue": row["revenue_micros"] / MICROS,
                    "units": row["units"],
                    "purchases": row["purchases"],
                }
                for row in top.iter_rows(named=True)
            ],
        }

    def snapshot(self) -> SummaryState:
        s = self.state
        return SummaryState(s.records, s.events, s.dead_letters, s.late, s.products)


def format_summary(summary: dict[str, Any], out_dir: str | None = None) -> str:
    """A short human summary for stdout."""
    lines = [
        "dmp run summary",
        f"  records read     {summary['records']:>12,}",
        f"  decoded events   {summary['events']:>12,}   on time {summary['on_time']:,}, late {summary['late']:,}",
        f"  dead letters     {summary['dead_letters']:>12,}",
        "  reconciled       "
        + ("yes: records = decoded + dead letters" if summary["reconciled"] else "NO: records != decoded + dead letters"),
        f"  revenue          {summary['revenue']:>15,.2f}",
    ]
    if summary["top_products"]:
        lines.append("  top products by revenue:")
        for rank, product in enumerate(summary["top_products"], start=1):
            lines.append(
                f"    {rank:>2}. {product['product_id']:<16} {product['revenue']:>13,.2f}"
                f"  units {product['units']:,}"
            )
    if out_dir is not None:
        lines.append(f"  outputs in {out_dir}/ (trends, leaderboard, late, dead_letters, summary.json)")
    return "\n".join(lines)
