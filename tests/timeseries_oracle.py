"""The time series and anomaly scores, recomputed from whole series in plain Python.

Written from the definitions in :mod:`flows.engine.analytics.seasonal` and
:mod:`flows.engine.analytics.timeseries`, bucket by bucket, with exact
fractions where the definitions are exact; no code shared with the engine:

- series: revenue (micro-units) and orders per category with a category
  and overall (``*``), views overall; a category's series begin at its
  first on-time event's bucket, the overall ones at the first bucket with an
  event; all end at the last bucket with an on-time event; quiet buckets are 0;
  a series quiet for ``history`` buckets ends there (its last row is
  ``history - 1`` buckets after its last event) and starts again, afresh, at
  its next event.
- statistics per bucket: moving average, first and seasonal differences,
  sample autocorrelations at lag 1 and the period, trailing trend (mean of
  the last period), seasonal (median of the previous seasons' detrended
  values), residual, expected, and the robust score (none for a series
  with fewer than ``min_events`` events per bucket over the last period).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from fractions import Fraction

from tests.window_oracle import Stamped

MICROS = 1_000_000
MAD_SCALE = 1.4826


def series(stamped: list[Stamped], bucket_ms: int, history: int
           ) -> dict[tuple[str, str, int], list[tuple[int, int, int, int]]]:
    """(metric, category, life) -> [(bucket, value, units, squares)] over each of a series' lives.

    ``squares``: the events' sizes squared, summed (revenue: whole cents, squared, in micro-units²).
    """
    sums: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # revenue, orders, views, cents²
    active: dict[str, set[int]] = defaultdict(set)
    buckets = []
    for item in stamped:
        event = item.event
        bucket = event["ts"] // bucket_ms
        if item.duplicate or (item.watermark is not None and (bucket + 1) * bucket_ms <= item.watermark):
            continue  # a duplicate, or late for its bucket
        buckets.append(bucket)
        scopes = ["*"] + ([event["category"]] if event.get("category") is not None else [])
        for scope in scopes:
            active[scope].add(bucket)
            total = sums[(bucket, scope)]
            if event["event_type"] == "purchase":
                line = round(event["price"] * MICROS) * event["quantity"]
                total[0] += line
                total[1] += 1
                total[3] += (line // 10_000) ** 2 * 10_000**2
            elif event["event_type"] == "view":
                total[2] += 1
    if not buckets:
        return {}
    end = max(buckets)
    out = {}
    for scope, when in active.items():
        lives, start, last = [], None, None
        for bucket in sorted(when):
            if last is not None and bucket - last >= history:  # dormant in between: a new life
                lives.append((start, last + history - 1))
                start = None
            start = bucket if start is None else start
            last = bucket
        lives.append((start, min(end, last + history - 1)))
        metrics = [("revenue", 0, 1, 3), ("orders", 1, 1, 1)] + ([("views", 2, 2, 2)] if scope == "*" else [])
        for life, (first, final) in enumerate(lives):
            for metric, *at in metrics:
                out[(metric, scope, life)] = [
                    (b, *(sums[(b, scope)][i] if (b, scope) in sums else 0 for i in at))
                    for b in range(first, final + 1)
                ]
    return out


def autocorrelation(window: list[int], lag: int) -> float | None:
    n = len(window)
    mean = Fraction(sum(window), n)
    denominator = sum((v - mean) ** 2 for v in window)
    if denominator == 0:
        return None
    numerator = sum((window[j] - mean) * (window[j - lag] - mean) for j in range(lag, n))
    return float(numerator / denominator)


def statistics_of(values: list[tuple[int, int, int, int]], ma: int, period: int, seasons: int, acf_window: int,
                  anomaly_window: int, min_events: int) -> list[dict]:
    """One series' statistics per bucket, in its own unit (micro-units for revenue)."""
    x = [v for _, v, _, _ in values]
    units = [u for _, _, u, _ in values]
    squares = [q for _, _, _, q in values]
    detrended: list[float | None] = []
    residuals: list[float | None] = []
    rows = []
    for i, value in enumerate(x):
        n = i + 1
        row: dict = {"value": value}
        row["moving_avg"] = sum(x[i - ma + 1 : i + 1]) / ma if n >= ma else None
        row["diff"] = value - x[i - 1] if n >= 2 else None
        row["seasonal_diff"] = value - x[i - period] if n > period else None
        window = x[i - acf_window + 1 : i + 1] if n >= acf_window else None
        row["acf_1"] = autocorrelation(window, 1) if window else None
        row["acf_period"] = autocorrelation(window, period) if window else None
        last_period = sum(x[i - period + 1 : i + 1])
        row["trend"] = last_period / period if n >= period else None
        detrended.append(float(value - Fraction(last_period, period)) if n >= period else None)
        seasonal = residual = expected = score = None
        if n >= (seasons + 1) * period:
            seasonal = statistics.median([detrended[i - k * period] for k in range(1, seasons + 1)])
            residual = detrended[i] - seasonal
            expected = row["trend"] + seasonal
        residuals.append(residual)
        dense = sum(units[max(0, i - period + 1) : i + 1]) >= min_events * period
        if n >= (seasons + 1) * period + anomaly_window and dense:
            recent = residuals[i - anomaly_window : i]
            median = statistics.median(recent)
            mad = statistics.median([abs(r - median) for r in recent])
            unit_total = sum(units[i - period + 1 : i + 1])
            square_total = sum(squares[i - period + 1 : i + 1])
            noise = math.sqrt(max(unit_total / period, 1.0) * (square_total / unit_total)) if unit_total > 0 else 1.0
            scale = max(MAD_SCALE * mad, noise)
            score = (residual - median) / scale
        row.update(seasonal=seasonal, residual=residual, expected=expected, score=score)
        rows.append(row)
    return rows


def output(stamped: list[Stamped], bucket_ms: int, ma: int, period: int, seasons: int, acf_window: int,
           anomaly_window: int, min_events: int) -> list[dict]:
    """Every series' rows, sorted by (bucket, metric, category), revenue in currency units.

    Keys: ``bucket`` (number), ``metric``, ``category``, the statistics, ``expected`` and ``score``.
    """
    rows = []
    history = max(seasons * period, acf_window, period, ma, anomaly_window) + 1
    for (metric, category, _life), values in series(stamped, bucket_ms, history).items():
        stats = statistics_of(values, ma, period, seasons, acf_window, anomaly_window, min_events)
        for (bucket, *_), row in zip(values, stats):
            if metric == "revenue":
                for name in ("value", "moving_avg", "diff", "seasonal_diff", "trend", "seasonal", "residual",
                             "expected"):
                    row[name] = None if row[name] is None else row[name] / MICROS
            rows.append({"bucket": bucket, "metric": metric, "category": category, **row})
    return sorted(rows, key=lambda r: (r["bucket"], r["metric"], r["category"]))
