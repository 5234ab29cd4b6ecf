"""The run summary: counts that reconcile, the run's top products, and what each output stream found.

In: :class:`Tally` items from the decoder (records as the sources counted
them, events, dead letters), from the stamped events (duplicates; late
events, late for at least one window of whichever windowed analytics run;
per-product sales of the on-time purchases, :func:`event_tally`) and from
every output stream that declares a finding (a partial of each output
batch, :mod:`flows.engine.findings`). Out: once, at the end of a bounded
run, a summary dict: records in = decoded events + dead letters
(``reconciled``, which fails if a record was lost), and decoded events =
duplicates + on time + late; each input (source partition: a file, a Kafka
partition) whose share of dead letters is above ``max_dead_letter_share``
(``dead_letter_inputs``: a wrong input format, a file of something else);
and ``findings``, per stream, what its rows said (the funnel's rates, the
sessions' conversion, the triggers that fired, the anomalies, ...). A run
stopped by Ctrl-C or SIGTERM gets the summary of what it processed so far,
marked ``interrupted`` (:meth:`RunSummary.summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from bytewax.operators import StatefulBatchLogic

from flows.engine.analytics import registry
from flows.engine.counts import Counts
from flows.engine.findings import Finding
from flows.engine.money import MICROS, line_micros
from flows.engine.schema import StampedBatch
from flows.engine.streams import OutputStream

_PRODUCT_SCHEMA = pl.Schema(
    {"product_id": pl.String, "revenue_micros": pl.Int128, "units": pl.Int64, "purchases": pl.Int64}
)
_PRODUCT_COLUMNS = _PRODUCT_SCHEMA.names()


@dataclass(frozen=True)
class Tally:
    """What one step counted in one batch, and (from the event tally) the batch's on-time sales."""

    counts: Counts = field(default_factory=Counts)
    sales: pl.DataFrame | None = None
    """Per-product sales (``product_id``, ``revenue_micros``, ``units``, ``purchases``) of on-time purchases."""
    input: str | None = None
    """The source partition the counts came from (the decoder's tallies), for the dead-letter share per input."""
    findings: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    """Per output stream, the finding's partial of one output batch (:mod:`flows.engine.findings`)."""


def event_tally(batch: StampedBatch, late_for_any: pl.Expr | None) -> Tally:
    """Duplicates, late events and on-time sales of one stamped batch.

    ``late_for_any`` is true for an event late for at least one window of
    the analytics that run (:meth:`flows.engine.wiring.Wiring.late_for_any`);
    ``None`` when no windowed analytic runs.
    """
    duplicates = batch.duplicates.height if batch.duplicates is not None else 0
    quarantined = batch.quarantined.height if batch.quarantined is not None else 0
    events = batch.events
    if not events.height:
        return Tally(Counts(duplicates=duplicates, quarantined=quarantined))
    late_mask = late_for_any if late_for_any is not None else pl.lit(False)
    flagged = events.select("product_id", "event_type", "quantity", line_micros().alias("_line"),
                            late_mask.alias("_late"))
    late = int(flagged["_late"].sum())
    purchases = flagged.filter((pl.col("event_type") == "purchase") & ~pl.col("_late"))
    sales = purchases.group_by("product_id").agg(
        pl.col("_line").sum().alias("revenue_micros"), pl.col("quantity").sum().alias("units"),
        pl.len().cast(pl.Int64).alias("purchases"),
    ) if purchases.height else None
    return Tally(Counts(duplicates=duplicates, late=late, quarantined=quarantined), sales)


def product_sales(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per-product sales totals over trend rows (products with purchases only)."""
    return (
        pl.concat([frame.lazy().select(_PRODUCT_COLUMNS) for frame in frames], how="vertical")
        .filter(pl.col("purchases") > 0)
        .group_by("product_id")
        .agg(pl.col("revenue_micros", "units", "purchases").sum())
        .collect()
    )


# Fold pending sales rows into totals once this many have piled up.
_FOLD_ROWS = 500_000
# Fold a stream's pending partials into one once this many have piled up (a live run's output batches never end).
_FOLD_PARTIALS = 256


@dataclass
class SummaryState:
    counts: Counts = field(default_factory=Counts)
    products: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_PRODUCT_SCHEMA))
    pending: list[pl.DataFrame] = field(default_factory=list)  # sales rows not folded into products yet
    inputs: dict[str, Counts] = field(default_factory=dict)  # records and dead letters per source partition
    findings: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # partials per stream, not merged yet

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A snapshot taken by an older version lacks the fields added since: they start empty.
        self.__init__()  # type: ignore[misc]
        self.__dict__.update(state)


class RunSummary(StatefulBatchLogic[Tally, dict, SummaryState]):
    """Adds up tallies; emits the summary when the input ends.

    Sales rows are kept by reference and folded into per-product totals
    only when many have piled up (and at the end), so a run pays for one
    aggregation per half a million rows, not one per batch. Likewise the
    findings' partials of each of ``streams`` (those whose findings the
    flow taps, in the order the summary shows them) are merged only every
    few hundred output batches, and at the end.
    """

    def __init__(self, top: int, resume: SummaryState | None, max_dead_letter_share: float = 1.0,
                 streams: Sequence[OutputStream] = ()) -> None:
        self.top = top
        self.max_dead_letter_share = max_dead_letter_share
        self.findings: dict[str, tuple[Finding, pl.Schema]] = {
            s.name: (s.finding, s.schema) for s in streams if s.finding is not None}
        self.state = resume if resume is not None else SummaryState()
        self.pending: list[pl.DataFrame] = list(self.state.pending)
        self.pending_rows = sum(frame.height for frame in self.pending)
        self.ended = False  # the summary went out: an interrupt after it has nothing to add

    def on_batch(self, values: list[Tally]) -> tuple[list[dict], bool]:
        state = self.state
        for tally in values:
            state.counts += tally.counts
            if tally.input is not None:
                state.inputs[tally.input] = state.inputs.get(tally.input, Counts()) + tally.counts
            if tally.sales is not None and tally.sales.height:
                self.pending.append(tally.sales)
                self.pending_rows += tally.sales.height
            for name, partial in tally.findings.items():
                if name not in self.findings:
                    msg = f"run summary: a finding of stream {name!r}, not one of its streams {list(self.findings)}"
                    raise KeyError(msg)
                held = state.findings.setdefault(name, [])
                held.append(partial)
                if len(held) > _FOLD_PARTIALS:
                    self._merge(name)
        if self.pending_rows > _FOLD_ROWS:
            self._fold()
        return [], StatefulBatchLogic.RETAIN

    def _fold(self) -> None:
        if self.pending:
            self.state.products = product_sales([self.state.products, *self.pending])
            self.pending, self.pending_rows = [], 0

    def _merge(self, name: str) -> pl.DataFrame:
        """Stream ``name``'s partials merged into one (the partial of no rows if none came)."""
        finding, schema = self.findings[name]
        held = self.state.findings.get(name) or [finding.partial(pl.DataFrame(schema=schema))]
        merged = finding.fold(held)
        self.state.findings[name] = [merged]
        return merged

    def on_eof(self) -> tuple[list[dict], bool]:
        self.ended = True
        return [self.summary()], StatefulBatchLogic.DISCARD

    def summary(self, *, interrupted: bool = False) -> dict[str, Any]:
        """The summary so far (``interrupted``: of a run that stopped before the end of its input)."""
        self._fold()
        state, counts = self.state, self.state.counts
        top = state.products.sort(
            ["revenue_micros", "units", "product_id"], descending=[True, True, False]
        ).head(self.top)
        return {
            **({"interrupted": True} if interrupted else {}),
            "records": counts.records,
            "events": counts.events,
            "dead_letters": counts.dead_letters,
            "duplicates": counts.duplicates,
            "late": counts.late,
            "quarantined": counts.quarantined,
            "on_time": counts.on_time,
            "reconciled": counts.reconciled,
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
            "dead_letter_inputs": self._mostly_dead_letters(),
            "findings": {name: finding.result(self._merge(name)) for name, (finding, _) in self.findings.items()},
        }

    def _mostly_dead_letters(self) -> list[dict[str, Any]]:
        """The inputs whose dead letters are more than ``max_dead_letter_share`` of their records."""
        return [
            {"input": name, "records": c.records, "dead_letters": c.dead_letters, "share": c.dead_letters / c.records,
             "max_share": self.max_dead_letter_share}
            for name, c in sorted(self.state.inputs.items())
            if c.records and c.dead_letters / c.records > self.max_dead_letter_share
        ]

    def snapshot(self) -> SummaryState:
        state = self.state  # nothing folded: cheap
        return SummaryState(state.counts, state.products, list(self.pending), dict(state.inputs),
                            {name: list(held) for name, held in state.findings.items()})


def format_summary(summary: dict[str, Any], out_dir: str | None = None) -> str:
    """A short human summary for stdout."""
    lines = [
        "dmp run summary" + (" (INTERRUPTED: of what was processed before the stop)" if summary.get("interrupted")
                             else ""),
        f"  records read     {summary['records']:>12,}",
        f"  decoded events   {summary['events']:>12,}   on time {summary['on_time']:,}, late {summary['late']:,}, "
        f"duplicates {summary['duplicates']:,}, quarantined {summary['quarantined']:,}",
        f"  dead letters     {summary['dead_letters']:>12,}",
        "  reconciled       "
        + ("yes: records = decoded + dead letters" if summary["reconciled"]
           else "NO: records != decoded + dead letters"),
        f"  revenue          {summary['revenue']:>15,.2f}",
    ]
    if summary["top_products"]:
        lines.append("  top products by revenue:")
        for rank, product in enumerate(summary["top_products"], start=1):
            lines.append(
                f"    {rank:>2}. {product['product_id']:<16} {product['revenue']:>13,.2f}"
                f"  units {product['units']:,}"
            )
    lines += finding_lines(summary)
    for line in dead_letter_warnings(summary):
        lines.append(f"  warning: {line}")
    if out_dir is not None:
        lines.append(f"  outputs in {out_dir}/ (one directory per stream, and summary.json)")
    return "\n".join(lines)


def finding_lines(summary: dict[str, Any]) -> list[str]:
    """What each stream found (``summary["findings"]``), in its finding's few lines, under the stream's name.

    Streams the registry does not know, or that say nothing, get no line.
    """
    lines = []
    for name, found in summary.get("findings", {}).items():
        try:
            finding = registry.stream(name).finding
        except KeyError:
            continue
        texts = finding.lines(found) if finding is not None else []
        lines += [f"  {name if not i else '':<16} {text}" for i, text in enumerate(texts)]
    return lines


def dead_letter_warnings(summary: dict[str, Any]) -> list[str]:
    """One line per input whose share of dead letters is above the limit.

    >>> dead_letter_warnings({"dead_letter_inputs": [
    ...     {"input": "a.jsonl", "records": 8, "dead_letters": 8, "share": 1.0, "max_share": 0.5}]})
    ["all 8 records of input 'a.jsonl' were dead letters (above DMP_MAX_DEAD_LETTER_SHARE=0.5; see dead_letters)"]
    """
    lines = []
    for entry in summary.get("dead_letter_inputs", ()):
        share = entry["share"]
        what = (f"all {entry['records']:,} records" if share == 1 else
                f"{share:.0%} of the {entry['records']:,} records ({entry['dead_letters']:,})")
        lines.append(f"{what} of input {entry['input']!r} were dead letters (above DMP_MAX_DEAD_LETTER_SHARE="
                     f"{entry['max_share']:g}; see dead_letters)")
    return lines
