"""Trailing-window statistics of many integer series, one bucket at a time.

In: for each bucket ``t`` in order, every series' value ``x`` (an integer:
a count, or money in micro-units), ``units`` (how many events make it up)
and ``squares`` (the sum of their sizes squared: ``units`` for a count).
Out, per series and bucket (``None`` where the history is too short):

- ``moving_avg``: mean of the last ``ma`` values;
- ``diff``: ``x[t] - x[t-1]``; ``seasonal_diff``: ``x[t] - x[t-P]`` (``P`` the period);
- ``acf_1``, ``acf_period``: the sample autocorrelation at lag 1 and at lag
  ``P`` of the last ``acf_window`` values;
- a decomposition that uses only the past: ``trend`` is the mean of the last
  ``P`` values (a whole season, so seasonality averages out);
  ``seasonal`` is the median, over the ``seasons`` previous seasons, of the
  detrended value (``x - trend``) at the same phase; ``residual`` is
  ``x - trend - seasonal``; ``expected`` is ``trend + seasonal``;
- ``score``: how far the residual is from the median of the previous
  ``anomaly_window`` residuals, in units of ``1.4826 * MAD`` (the MAD of those
  residuals), but never finer than the noise of a sum of Poisson-many
  events: ``sqrt(max(λ, 1) * E[size²])`` with ``λ`` the events per bucket
  and ``E[size²]`` their mean square size over the last period (for a count,
  ``sqrt(max(λ, 1))``), so that one big order in a quiet minute is not an
  anomaly; and a series averaging
  fewer than ``min_events`` events per bucket over the last period is not
  scored at all (its buckets are mostly chance: one big order is not an
  anomaly of the business).

Exact: window sums are kept as Python integers (running sums, updated as a
bucket enters and one leaves), and every output is one correctly rounded
division of exact integers or a fixed sequence of IEEE operations on such
results. So a value depends only on the series, never on how buckets were
batched or when the state was snapshotted; ``tests/timeseries_oracle.py``
recomputes it from the whole series. State per series: ``history`` buckets.

>>> config = SeriesConfig(ma=2, period=2, seasons=1, acf_window=3, anomaly_window=5, z=5.0, min_events=1)
>>> state = SeriesState.empty(config)
>>> state.add_series(1, 0)
>>> out = [state.step(t, np.array([x]), np.array([x]), np.array([x], dtype=object))
...        for t, x in enumerate([4, 8, 6, 10])]
>>> [o["moving_avg"][0] for o in out], [o["seasonal"][0] for o in out]
([None, 6.0, 7.0, 8.0], [None, None, None, 2.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAD_SCALE = 1.4826  # makes the MAD estimate a normal distribution's standard deviation

_UNDEFINED = np.nan


@dataclass(frozen=True)
class SeriesConfig:
    """Window lengths, in buckets, and the alert threshold."""

    ma: int
    period: int
    seasons: int
    acf_window: int
    anomaly_window: int
    z: float
    min_events: int

    @property
    def history(self) -> int:
        """Buckets of the past each series keeps (the longest look-back, plus the current one)."""
        return max(self.seasons * self.period, self.acf_window, self.period, self.ma, self.anomaly_window) + 1

    @property
    def seasonal_from(self) -> int:
        """Buckets a series needs (counting the current) before it has a seasonal component."""
        return (self.seasons + 1) * self.period

    @property
    def scored_from(self) -> int:
        """Buckets a series needs before its residuals are scored."""
        return self.seasonal_from + self.anomaly_window


def _objects(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64).astype(object)  # Python ints: exact, never overflow


@dataclass
class SeriesState:
    """Every series' recent past: ring buffers of ``history`` buckets and running sums.

    Ring slot ``t % history`` holds bucket ``t``; slots of buckets before a
    series began hold 0 (values) or NaN (derived values).
    """

    config: SeriesConfig
    start: np.ndarray  # first bucket of each series
    x: np.ndarray  # object (series, history): exact integers (a bucket's revenue may not fit an int64)
    units: np.ndarray  # int64 (series, history)
    squares: np.ndarray  # object (series, history)
    sum_p_ring: np.ndarray  # object (series, history): the trend sum at each bucket
    detrended: np.ndarray  # float (series, history)
    residual: np.ndarray  # float (series, history)
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # running sums (object arrays)

    SUMS = ("ma", "period", "period_units", "period_squares", "acf", "acf_squares", "lag_1", "lag_period")

    @classmethod
    def empty(cls, config: SeriesConfig) -> SeriesState:
        h = config.history
        return cls(
            config,
            np.zeros(0, dtype=np.int64),
            np.zeros((0, h), dtype=np.int64).astype(object),
            np.zeros((0, h), dtype=np.int64),
            np.zeros((0, h), dtype=np.int64).astype(object),
            np.zeros((0, h), dtype=np.int64).astype(object),
            np.zeros((0, h)),
            np.zeros((0, h)),
            {name: _objects(0) for name in cls.SUMS},
        )

    def add_series(self, count: int, first_bucket: int) -> None:
        """Append ``count`` new series that begin at ``first_bucket``."""
        h = self.config.history
        self.start = np.concatenate([self.start, np.full(count, first_bucket, dtype=np.int64)])
        self.x = np.vstack([self.x, np.zeros((count, h), dtype=np.int64).astype(object)])
        self.units = np.vstack([self.units, np.zeros((count, h), dtype=np.int64)])
        self.squares = np.vstack([self.squares, np.zeros((count, h), dtype=np.int64).astype(object)])
        self.sum_p_ring = np.vstack([self.sum_p_ring, np.zeros((count, h), dtype=np.int64).astype(object)])
        self.detrended = np.vstack([self.detrended, np.full((count, h), _UNDEFINED)])
        self.residual = np.vstack([self.residual, np.full((count, h), _UNDEFINED)])
        for name in self.SUMS:
            self.sums[name] = np.concatenate([self.sums[name], _objects(count)])

    def keep(self, kept: np.ndarray) -> None:
        """Keep only the series where ``kept`` is true (the others are forgotten)."""
        self.start, self.x, self.units = self.start[kept], self.x[kept], self.units[kept]
        self.squares, self.sum_p_ring = self.squares[kept], self.sum_p_ring[kept]
        self.detrended, self.residual = self.detrended[kept], self.residual[kept]
        self.sums = {name: values[kept] for name, values in self.sums.items()}

    def copy(self) -> SeriesState:
        """An independent copy (a snapshot: :meth:`step` changes the arrays in place)."""
        return SeriesState(self.config, self.start.copy(), self.x.copy(), self.units.copy(), self.squares.copy(),
                           self.sum_p_ring.copy(), self.detrended.copy(), self.residual.copy(),
                           {name: values.copy() for name, values in self.sums.items()})

    def step(self, t: int, x: np.ndarray, units: np.ndarray, squares: np.ndarray) -> dict[str, np.ndarray]:
        """Take bucket ``t`` (every series' value and squares as Python ints, units as int64); its statistics.

        Buckets must come in order, each once, none skipped (a quiet bucket is
        a zero). Outputs are object arrays of floats or ``None``, plus
        ``value``, ``diff`` and ``seasonal_diff`` as integers.
        """
        c, s = self.config, self.sums
        h, m, p, n_acf = c.history, c.ma, c.period, c.acf_window
        n = t - self.start + 1  # buckets of each series so far, this one included

        def ago(ring: np.ndarray, lag: int) -> np.ndarray:
            return ring[:, (t - lag) % h]

        xo = x.astype(object)
        prev, season_ago = ago(self.x, 1), ago(self.x, p)
        oldest = ago(self.x, n_acf).astype(object)
        # Running sums: the bucket entering, and the one leaving each window.
        s["ma"] = s["ma"] + xo - ago(self.x, m).astype(object)
        s["period"] = s["period"] + xo - season_ago.astype(object)
        s["period_units"] = s["period_units"] + units.astype(object) - ago(self.units, p).astype(object)
        s["period_squares"] = s["period_squares"] + squares - ago(self.squares, p)
        s["acf"] = s["acf"] + xo - oldest
        s["acf_squares"] = s["acf_squares"] + xo * xo - oldest * oldest
        s["lag_1"] = s["lag_1"] + xo * prev.astype(object) - ago(self.x, n_acf - 1).astype(object) * oldest
        s["lag_period"] = (s["lag_period"] + xo * season_ago.astype(object)
                           - ago(self.x, n_acf - p).astype(object) * oldest)
        slot = t % h
        self.x[:, slot], self.units[:, slot], self.squares[:, slot] = x, units, squares
        self.sum_p_ring[:, slot] = s["period"]

        has_trend = n >= p
        trend = _where(has_trend, _ratio(s["period"], p))
        detrended = _where(has_trend, _ratio(p * xo - s["period"], p))
        self.detrended[:, slot] = as_floats(detrended)
        seasonal, residual = self._seasonal(t, n, detrended)
        self.residual[:, slot] = as_floats(residual)
        expected = _where(n >= c.seasonal_from, as_floats(trend) + as_floats(seasonal))
        return {
            "value": xo,
            "moving_avg": _where(n >= m, _ratio(s["ma"], m)),
            "diff": _where(n >= 2, xo - prev.astype(object)),
            "seasonal_diff": _where(n > p, xo - season_ago.astype(object)),
            "acf_1": self._acf(n, 1, x.astype(object), ago(self.x, n_acf - 1).astype(object), "lag_1"),
            "acf_period": self._acf(n, p, s["period"], ago(self.sum_p_ring, n_acf - p), "lag_period"),
            "trend": trend,
            "seasonal": seasonal,
            "residual": residual,
            "expected": expected,
            "score": self._score(t, n, residual),
        }

    def _seasonal(self, t: int, n: np.ndarray, detrended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        has = n >= c.seasonal_from
        if not has.any():
            nothing = np.full(n.size, None, dtype=object)
            return nothing, nothing
        past = np.stack([self.detrended[:, (t - k * c.period) % c.history] for k in range(1, c.seasons + 1)], axis=1)
        seasonal = np.median(past[has], axis=1)
        seasonal_all = np.full(n.size, np.nan)
        seasonal_all[has] = seasonal
        residual = as_floats(detrended) - seasonal_all
        return _where(has, seasonal_all), _where(has, residual)

    def _acf(self, n: np.ndarray, lag: int, tail: np.ndarray, head: np.ndarray, products: str) -> np.ndarray:
        """Sample autocorrelation at ``lag`` of each series' last ``acf_window`` values.

        With ``A`` the window's sum, ``B`` its sum of squares, ``L`` its sum of
        lagged products and ``head``/``tail`` the sums of its first/last
        ``lag`` values: ``(N²L - NA(2A - head - tail) + (N - lag)A²) / (N(NB - A²))``.
        """
        big_n = self.config.acf_window
        a, b, lagged = self.sums["acf"], self.sums["acf_squares"], self.sums[products]
        numerator = big_n * big_n * lagged - big_n * a * (2 * a - head - tail) + (big_n - lag) * a * a
        denominator = big_n * (big_n * b - a * a)
        out = np.full(n.size, None, dtype=object)
        for i in np.flatnonzero((n >= big_n) & (denominator != 0)):
            out[i] = numerator[i] / denominator[i]  # exact integers, one correctly rounded division
        return out

    def _score(self, t: int, n: np.ndarray, residual: np.ndarray) -> np.ndarray:
        c = self.config
        dense = self.sums["period_units"] >= c.min_events * c.period
        has = (n >= c.scored_from) & dense.astype(bool)
        out = np.full(n.size, None, dtype=object)
        if not has.any():
            return out
        rows = np.flatnonzero(has)
        recent = np.stack([self.residual[rows, (t - k) % c.history] for k in range(c.anomaly_window, 0, -1)], axis=1)
        median = np.median(recent, axis=1)
        mad = np.median(np.abs(recent - median[:, None]), axis=1)
        floor = np.array([_noise(self.sums["period_units"][i], self.sums["period_squares"][i], c.period) for i in rows])
        scale = np.maximum(MAD_SCALE * mad, floor)
        score = (as_floats(residual[rows]) - median) / scale
        out[rows] = score.astype(object)
        return out


def _noise(units: int, squares: int, period: int) -> float:
    """The standard deviation of a sum of Poisson-many events like the last period's (1.0 without events)."""
    if units <= 0:
        return 1.0
    return math.sqrt(max(units / period, 1.0) * (squares / units))


def _ratio(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """Exact integers divided, each correctly rounded (Python's ``int / int``)."""
    return np.array([value / denominator for value in numerator], dtype=object)


def _where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(mask.size, None, dtype=object)
    out[mask] = np.asarray(values, dtype=object)[mask]
    return out


def as_floats(values: np.ndarray) -> np.ndarray:
    """An object array of floats or ``None`` as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
