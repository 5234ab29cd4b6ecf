"""Time series of business metrics, decomposed as each bucket closes, and anomaly alerts.

In: events, counted per category in tumbling buckets (``DMP_TS_BUCKET``) by
the window engine. The series: ``revenue`` and ``orders`` overall
(``category = "*"``) and per category (events without a category count only
overall), and ``views`` overall. A series begins at the first bucket with an
event of its scope; from then on a bucket without events is a zero, never a
gap, until the series has been quiet for a whole history
(``SeriesConfig.history`` buckets, ~3 days with the defaults): then it is
dormant (no rows), and its next event starts it afresh, so a gap of years
costs one step, not one per bucket. Out, as each bucket closes (in bucket
order, once all shards closed it):

- ``timeseries``: one row per series and bucket with the value, its moving
  average, first and seasonal differences, autocorrelations and a
  trailing decomposition into trend, seasonal and residual
  (:mod:`flows.engine.analytics.seasonal` defines each);
- ``anomalies``: a row when a residual's robust score reaches
  ``DMP_ANOMALY_Z``: the actual and expected value, the score and its
  direction.

Revenue is in currency units, counts are counts. A series' state is bounded
by its longest trailing window (``SeriesConfig.history`` buckets). The run
summary counts the anomalies of each series and shows the strongest few
(:mod:`flows.engine.analytics.anomaly_findings`).

>>> from flows.engine.windows import TumblingWindow
>>> spec = timeseries_aggregate(TumblingWindow(60_000))
>>> rows = pl.DataFrame({"window_start": [0, 0], "category": ["shoes", None],
...     "revenue_micros": [5_000_000, 0], "revenue_squares": [250_000, 0], "orders": [1, 0], "views": [3, 2],
...     "events": [4, 2]})
>>> series_values(rows, 60_000).rows()
[(0, 'orders', '*', 1, 1, 1), (0, 'orders', 'shoes', 1, 1, 1), (0, 'revenue', '*', 5000000, 1, 250000),
 (0, 'revenue', 'shoes', 5000000, 1, 250000), (0, 'views', '*', 5, 5, 5)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bytewax.operators as op
import numpy as np
import polars as pl
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from flows.engine.aggregate import ExactSum, Sum, WindowedAggregate
from flows.engine.analytics.anomaly_findings import anomaly_finding
from flows.engine.analytics.registry import Analytic
from flows.engine.analytics.seasonal import SeriesConfig, SeriesState, as_floats
from flows.engine.errors import ConfigError, DmpError
from flows.engine.money import MICROS, line_micros
from flows.engine.present import as_time
from flows.engine.schema import ClosedWindows
from flows.engine.setting import Group, at_least, duration, integer, number, positive, setting, whole_seconds
from flows.engine.streams import FLOAT, TEXT, TIME, Column, OutputStream
from flows.engine.windows import WINDOW_START, TumblingWindow
from flows.engine.wiring import Wiring

if TYPE_CHECKING:
    from flows.engine.config import Settings

OVERALL = "*"
MONEY_METRICS = ("revenue",)
CENT = MICROS // 100
SERIES = "timeseries"
ALERTS = "anomalies"

# Statistics in the series' own unit (currency for revenue), in output order.
_IN_UNITS = ("value", "moving_avg", "diff", "seasonal_diff", "trend", "seasonal", "residual", "expected")
_STATISTICS = ("value", "moving_avg", "diff", "seasonal_diff", "acf_1", "acf_period", "trend", "seasonal",
               "residual")

_SERIES_KEY = (Column("bucket_start", TIME, nullable=False), Column("bucket_end", TIME, nullable=False),
               Column("metric", TEXT, nullable=False), Column("category", TEXT, nullable=False))
TIMESERIES = OutputStream(
    SERIES,
    row="series and bucket, as it closes",
    fields="`bucket_start`, `bucket_end`, `metric` (`revenue`, `orders`, `views`), `category` (`*` for all), "
    "`value` (revenue in currency), `moving_avg`, `diff`, `seasonal_diff`, `acf_1`, `acf_period`, `trend`, "
    "`seasonal`, `residual` (null until a series has the history a statistic needs)",
    key=("bucket_start", "metric", "category"),
    columns=(*_SERIES_KEY, Column("value", FLOAT, nullable=False), *(Column(name, FLOAT) for name in _STATISTICS[1:])),
)

ANOMALIES = OutputStream(
    ALERTS,
    row="bucket whose residual is far from normal",
    fields="`bucket_start`, `bucket_end`, `metric`, `category`, `actual`, `expected` (trend + seasonal), "
    "`residual`, `score` (robust z), `direction` (`up`, `down`), `threshold`",
    key=("bucket_start", "metric", "category"),
    columns=(
        *_SERIES_KEY,
        *(Column(name, FLOAT, nullable=False) for name in ("actual", "expected", "residual", "score")),
        Column("direction", TEXT, nullable=False),
        Column("threshold", FLOAT, nullable=False),
    ),
    finding=anomaly_finding(OVERALL, MONEY_METRICS),
)
OUTPUT_SCHEMA, ALERT_SCHEMA = TIMESERIES.schema, ANOMALIES.schema


def timeseries_aggregate(bucket: TumblingWindow) -> WindowedAggregate:
    """Revenue, orders and views per category and bucket, declared for the engine."""
    event_type = pl.col("event_type")
    purchase = event_type == "purchase"
    return WindowedAggregate(
        name=SERIES,
        keys=("category",),
        window=bucket,
        measures={
            "revenue_micros": ExactSum(pl.when(purchase).then(line_micros()).otherwise(0)),
            # Cents squared fit an Int64 where micro-units squared would not; for the noise floor only.
            "revenue_squares": ExactSum(pl.when(purchase).then((line_micros() // CENT) ** 2).otherwise(0)),
            "orders": Sum(purchase),
            "views": Sum(event_type == "view"),
        },
    )


def series_values(rows: pl.DataFrame, bucket_ms: int) -> pl.DataFrame:
    """Aggregate rows -> one row per (bucket number, metric, category): ``value``, ``units``, ``squares``.

    ``units`` counts the events a value adds up (orders for revenue) and
    ``squares`` sums their sizes squared (in cents² for revenue), which set
    the noise floor when anomalies are scored.
    """
    counted = rows.with_columns((pl.col(WINDOW_START) // bucket_ms).alias("bucket"))
    sums = pl.col("revenue_micros", "revenue_squares", "orders", "views").sum()
    overall = counted.group_by("bucket").agg(sums).with_columns(pl.lit(OVERALL).alias("category"))
    scoped = pl.concat([counted.filter(pl.col("category").is_not_null()).select(overall.columns), overall])

    def metric(name: str, value: str, units: str, squares: str, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select("bucket", pl.lit(name).alias("metric"), "category",
                            pl.col(value).cast(pl.Int128).alias("value"), pl.col(units).cast(pl.Int64).alias("units"),
                            pl.col(squares).cast(pl.Int128).alias("squares"))

    return pl.concat([
        metric("revenue", "revenue_micros", "orders", "revenue_squares", scoped),
        metric("orders", "orders", "orders", "orders", scoped),
        metric("views", "views", "views", "views", overall),
    ]).sort("bucket", "metric", "category")


@dataclass
class TimeSeriesState:
    """Snapshot: the series' keys (in state order), their recent past, the last bucket taken."""

    keys: list[tuple[str, str]]
    series: SeriesState
    last: int | None
    seen: list[int] = field(default_factory=list)  # each series' last bucket with an event


class TimeSeriesLogic(StatefulBatchLogic[ClosedWindows, tuple[str, pl.DataFrame], TimeSeriesState]):
    """Complete buckets (in order) -> ``(SERIES, rows)`` and ``(ALERTS, rows)`` values.

    Runs under one key: the series are few (metrics x categories) and each
    bucket is one vectorised step over all of them.
    """

    def __init__(self, config: SeriesConfig, bucket_ms: int, resume: TimeSeriesState | None) -> None:
        self.config = config
        self.bucket_ms = bucket_ms
        self.keys = list(resume.keys) if resume is not None else []
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.series = resume.series if resume is not None else SeriesState.empty(config)
        self.last = resume.last if resume is not None else None
        self.seen = list(resume.seen) if resume is not None else []

    def on_batch(self, values: list[ClosedWindows]) -> tuple[list[tuple[str, pl.DataFrame]], bool]:
        frames = [closed.rows for closed in values if closed.rows.height]
        if not frames:
            return [], StatefulBatchLogic.RETAIN
        long = series_values(pl.concat(frames, how="vertical_relaxed"), self.bucket_ms)
        buckets = long["bucket"].to_numpy()
        if self.last is not None and buckets[0] <= self.last:
            msg = f"time series got bucket {buckets[0]} after bucket {self.last}; buckets must come once, in order"
            raise DmpError(msg)
        keys = list(zip(long["metric"].to_list(), long["category"].to_list()))
        value, units = np.array(long["value"].to_list(), dtype=object), long["units"].to_numpy()
        # Squared sizes in the value's unit: cents² -> micro-units² for money (Python ints: no overflow).
        squares = np.array([sq * CENT * CENT if metric in MONEY_METRICS else sq
                            for sq, metric in zip(long["squares"].to_list(), long["metric"].to_list())], dtype=object)
        t = int(buckets[0]) if self.last is None else self.last + 1
        steps = []
        while t <= int(buckets[-1]):  # quiet buckets too: they are zeros, while a series is live
            self._retire(t)
            if not self.keys:  # every series dormant: skip the silence at once, however long
                t = max(t, int(buckets[np.searchsorted(buckets, t)]))
            lo, hi = np.searchsorted(buckets, [t, t + 1])
            self._add_new(keys[lo:hi], t)
            x = np.zeros(len(self.keys), dtype=np.int64).astype(object)
            u = np.zeros(len(self.keys), dtype=np.int64)
            sq = np.zeros(len(self.keys), dtype=np.int64).astype(object)
            where = [self.index[key] for key in keys[lo:hi]]
            x[where], u[where], sq[where] = value[lo:hi], units[lo:hi], squares[lo:hi]
            for i in where:
                self.seen[i] = t
            steps.append((t, list(self.keys), self.series.step(t, x, u, sq)))
            t += 1
        self.last = int(buckets[-1])
        rows = self._rows(steps)
        alerts = rows.filter(pl.col("score").abs() >= self.config.z)
        out = [(SERIES, present_series(rows, self.bucket_ms))]
        if alerts.height:
            out.append((ALERTS, present_alerts(alerts, self.bucket_ms, self.config.z)))
        return out, StatefulBatchLogic.RETAIN

    def _add_new(self, keys: list[tuple[str, str]], t: int) -> None:
        fresh = [key for key in keys if key not in self.index]
        for key in fresh:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.seen.append(t)
        if fresh:
            self.series.add_series(len(fresh), t)

    def _retire(self, t: int) -> None:
        """Series quiet for a whole history go dormant: no more rows; their next event starts them afresh.

        Their state is all zeros by then, so nothing is lost but the zero
        rows; and a gap of years costs one step, not a step per bucket.
        """
        kept = np.array([t - seen < self.config.history for seen in self.seen], dtype=bool)
        if kept.all():
            return
        self.series.keep(kept)
        self.keys = [key for key, alive in zip(self.keys, kept) if alive]
        self.seen = [seen for seen, alive in zip(self.seen, kept) if alive]
        self.index = {key: i for i, key in enumerate(self.keys)}

    def _rows(self, steps: list[tuple[int, list[tuple[str, str]], dict[str, np.ndarray]]]) -> pl.DataFrame:
        """Every step's statistics as one frame, revenue in currency units, sorted by bucket and series."""
        columns: dict[str, list[np.ndarray]] = {name: [] for name in (*_STATISTICS, "expected", "score")}
        bucket: list[np.ndarray] = []
        metric: list[str] = []
        category: list[str] = []
        for t, keys, out in steps:
            bucket.append(np.full(len(keys), t, dtype=np.int64))
            metric.extend(key[0] for key in keys)
            category.extend(key[1] for key in keys)
            for name in columns:
                columns[name].append(as_floats(out[name]))
        money = np.isin(np.array(metric, dtype=object), MONEY_METRICS)
        data = {name: np.concatenate(parts) for name, parts in columns.items()}
        for name in _IN_UNITS:
            data[name] = np.where(money, data[name] / MICROS, data[name])  # numpy division is correctly rounded
        frame = pl.DataFrame({"bucket": np.concatenate(bucket), "metric": metric, "category": category, **data})
        return frame.fill_nan(None).sort("bucket", "metric", "category")

    def snapshot(self) -> TimeSeriesState:
        return TimeSeriesState(list(self.keys), self.series.copy(), self.last, list(self.seen))


def _bucket_times(bucket_ms: int) -> list[pl.Expr]:
    start = pl.col("bucket") * bucket_ms
    return [as_time(start).alias("bucket_start"), as_time(start + bucket_ms).alias("bucket_end")]


def present_series(rows: pl.DataFrame, bucket_ms: int) -> pl.DataFrame:
    """Engine rows -> typed :data:`TIMESERIES` rows."""
    return rows.select(*_bucket_times(bucket_ms), "metric", "category", *_STATISTICS)


def present_alerts(rows: pl.DataFrame, bucket_ms: int, z: float) -> pl.DataFrame:
    """Engine rows whose score reached ``z`` -> typed :data:`ANOMALIES` rows."""
    return rows.select(
        *_bucket_times(bucket_ms),
        "metric",
        "category",
        pl.col("value").alias("actual"),
        "expected",
        "residual",
        "score",
        pl.when(pl.col("score") > 0).then(pl.lit("up")).otherwise(pl.lit("down")).alias("direction"),
        pl.lit(z, pl.Float64).alias("threshold"),
    )


@dataclass(frozen=True)
class TimeSeriesSettings(Group):
    """Time series of business metrics and their anomalies."""

    ts_bucket_ms: int = setting("DMP_TS_BUCKET", "10m", duration,
                                "Bucket of the time series (revenue and orders overall and per category, views "
                                "overall)", positive, whole_seconds)
    ts_ma: int = setting("DMP_TS_MA", "6", integer, "Buckets in the trailing moving average", at_least(1))
    ts_period: int = setting("DMP_TS_PERIOD", "144", integer,
                             "Buckets in one season (144 at 10m: daily); the trend is the mean of the last period",
                             at_least(2))
    ts_seasons: int = setting("DMP_TS_SEASONS", "3", integer, "Past seasons whose median makes the seasonal component",
                              at_least(1))
    ts_acf_window: int = setting("DMP_TS_ACF_WINDOW", "288", integer,
                                 "Trailing buckets the autocorrelations are computed over (longer than "
                                 "`DMP_TS_PERIOD`)", at_least(3))
    anomaly_z: float = setting("DMP_ANOMALY_Z", "5", number,
                               "Alert when a residual's robust score (distance from the median of recent residuals "
                               "in scaled MADs) reaches this", positive)
    anomaly_window: int = setting("DMP_ANOMALY_WINDOW", "36", integer,
                                  "Recent residuals (buckets) whose median and MAD score the next one", at_least(5))
    anomaly_min_events: int = setting("DMP_ANOMALY_MIN_EVENTS", "5", integer,
                                      "Series averaging fewer events per bucket over the last period are not scored "
                                      "(orders count for revenue): a sparse series' big order is chance, not an "
                                      "anomaly", at_least(0))

    def check(self) -> None:
        if self.ts_acf_window <= self.ts_period:
            raise ConfigError(f"DMP_TS_ACF_WINDOW: must be longer than DMP_TS_PERIOD ({self.ts_period} buckets) "
                              f"to give an autocorrelation at the period; got {self.ts_acf_window}")

    @property
    def bucket(self) -> TumblingWindow:
        return TumblingWindow(self.ts_bucket_ms)

    @property
    def series(self) -> SeriesConfig:
        return SeriesConfig(self.ts_ma, self.ts_period, self.ts_seasons, self.ts_acf_window, self.anomaly_window,
                            self.anomaly_z, self.anomaly_min_events)


def decomposed(w: Wiring) -> Stream:
    """timeseries_buckets -> decompose: ``(SERIES | ALERTS, rows)`` as each bucket closes (built once)."""

    def build() -> Stream:
        settings = w.group(TimeSeriesSettings)
        bucket, config = settings.bucket, settings.series
        buckets = w.window("timeseries", timeseries_aggregate(bucket), step_id="timeseries_buckets")
        return op.stateful_batch(
            "decompose", buckets.results, lambda resume: TimeSeriesLogic(config, bucket.size_ms, resume)
        )

    return w.shared("decompose", build)


def _wire_rows(stream: OutputStream) -> Callable[[Wiring], None]:
    def wire(w: Wiring) -> None:
        tag = stream.name
        rows = op.filter_map(f"{tag}_rows", decomposed(w), lambda kv: (kv[0], kv[1][1]) if kv[1][0] == tag else None)
        w.write(stream, rows)

    return wire


def _buckets(settings: Settings) -> tuple[TumblingWindow, ...]:
    return (settings.group(TimeSeriesSettings).bucket,)


ANALYTICS = (
    Analytic(
        "timeseries", 60, "revenue, orders and views per bucket, decomposed into trend, seasonal and residual",
        streams=(TIMESERIES,), wire=_wire_rows(TIMESERIES), settings=TimeSeriesSettings, fields=("category",),
        dedup_windows=_buckets,
    ),
    Analytic(
        "anomalies", 70, "buckets whose residual is far from normal (robust scores), with their direction",
        streams=(ANOMALIES,), wire=_wire_rows(ANOMALIES), settings=TimeSeriesSettings, fields=("category",),
        dedup_windows=_buckets,
    ),
)
