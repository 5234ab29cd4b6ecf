"""What the run summary says of the ``anomalies`` stream: how many per series, and the strongest few.

In: ``anomalies`` rows (:data:`flows.engine.analytics.timeseries.ANOMALIES`),
one output batch at a time. Out (:func:`anomaly_finding`, a
:class:`~flows.engine.findings.Finding`): ``anomalies``, ``per_series``
(``metric``, ``category``, ``anomalies``, ``up``, ``down``; most first) and
``strongest``: the three with the largest |score| (the earliest of equals),
rather than the first three, which tend to be one incident seen three
buckets running.

The partial is flat: each series keeps its strongest few rows and its
counts ride on the strongest one, so a plain sum adds them up. (A list of
structs per series read better, but Polars 2.1 garbles such lists sorted
inside a ``group_by`` aggregation.)
"""

from __future__ import annotations

from typing import Any

import polars as pl

from flows.engine.findings import Finding, iso, minute

_SHOWN = 3
_SERIES = ["metric", "category"]
_STRENGTH = [pl.col("score").abs(), pl.col("bucket_start")]


def _strongest(rows: pl.DataFrame) -> pl.DataFrame:
    """Per series, its strongest few anomalies (by |score|, then earliest), its counts on the strongest, 0 on the rest.

    Counts ride on one row of each series so that a plain sum adds them up;
    the function merges its own outputs (associative and commutative: the
    strongest few of a union are among the strongest few of its parts).
    """
    totals = rows.group_by(_SERIES).agg(pl.col("anomalies", "up").sum())
    kept = (rows.drop("anomalies", "up").sort([*_SERIES, *_STRENGTH], descending=[False, False, True, False])
            .group_by(_SERIES, maintain_order=True).head(_SHOWN))
    strongest = pl.struct(_SERIES).is_first_distinct()
    return kept.join(totals, on=_SERIES).with_columns(
        pl.when(strongest).then(pl.col(name)).otherwise(0).alias(name) for name in ("anomalies", "up"))


def _anomalies(rows: pl.DataFrame) -> pl.DataFrame:
    """Anomalies rows -> per series: the strongest few (time, actual, expected, score) and how many there were, up."""
    return _strongest(rows.select(
        *_SERIES, "bucket_start", "actual", "expected", "score", pl.lit(1, pl.Int64).alias("anomalies"),
        (pl.col("direction") == "up").cast(pl.Int64).alias("up")))


def _anomalies_result(kept: pl.DataFrame) -> dict[str, Any]:
    counts = kept.group_by(_SERIES).agg(pl.col("anomalies", "up").sum()).sort(
        ["anomalies", *_SERIES], descending=[True, False, False])
    strongest = kept.sort([*_STRENGTH, *_SERIES], descending=[True, False, False, False]).head(_SHOWN)
    return {
        "anomalies": int(kept["anomalies"].sum()),
        "per_series": [{"metric": m, "category": c, "anomalies": n, "up": up, "down": n - up}
                       for m, c, n, up in counts.select(*_SERIES, "anomalies", "up").iter_rows()],
        "strongest": [{**row, "direction": _direction(row["score"])}
                      for row in strongest.select(iso("bucket_start"), *_SERIES, "actual", "expected", "score")
                      .iter_rows(named=True)],
    }


def _direction(score: float) -> str:
    return "up" if score > 0 else "down"


def anomaly_finding(overall: str, money_metrics: tuple[str, ...]) -> Finding:
    """The finding of the anomalies of series whose all-categories value is ``overall`` and money ``money_metrics``."""

    def series(metric: str, category: str) -> str:
        return metric if category == overall else f"{metric} ({category})"

    def lines(found: dict[str, Any]) -> list[str]:
        if not found["anomalies"]:
            return ["none"]
        per_series = [f"{series(s['metric'], s['category'])} {s['anomalies']:,}" for s in found["per_series"]]
        out = [f"{found['anomalies']:,} in {len(per_series):,} series: {', '.join(per_series[:_SHOWN])}"
               + (", ..." if len(per_series) > _SHOWN else "")]
        for i, a in enumerate(found["strongest"]):
            decimals = 2 if a["metric"] in money_metrics else 0
            what = f"{minute(a['bucket_start'])} {series(a['metric'], a['category'])}"
            out.append(f"{'strongest' if not i else '':<10}{what} {a['actual']:,.{decimals}f}, "
                       f"expected {a['expected']:,.{decimals}f} (score {a['score']:+.1f})")
        return out

    return Finding(_anomalies, _strongest, _anomalies_result, lines)
