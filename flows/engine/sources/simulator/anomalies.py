"""Planted anomalies (``DMP_SIM_ANOMALIES``, off by default): traffic with labels to score a detector by.

In: the settings and a slice index. Out: the rate factor of the slice
(:func:`anomaly_factor`) and the labels (:func:`planted_anomalies`).

From ``DMP_SIM_ANOMALY_AFTER`` after the start (rounded up to a whole
minute) anomaly k = 0, 1, 2, ... starts at ``after + k*5h + jitter``
(jitter: 0-59 whole minutes, drawn per k from the seed) and multiplies the
expected number of session starts of the slices it covers: even k a *spike*
(x3 for 20 minutes), odd k a *drop* (x0.1 for 30 minutes), except k = 5, a
*level shift* (x2 from its start on, forever; later anomalies multiply on
top of it). Spikes and drops end long before the next anomaly starts, and
each covers at least one whole bucket of the time series' default 10
minutes (a 5-minute spike is diluted in a 10-minute bucket and split over
two). Sessions keep their length, so a spike's events spread over the
minute or two after it; bundle sessions follow the rate, abandoners and big
spenders keep their schedules. With anomalies off the output is the same as
without them; with them on, slices before the level shift and outside
spikes and drops are unchanged too (each slice draws its own numbers).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

from flows.engine.config import SimSettings
from flows.engine.sources.simulator.shoppers import SLICE_MS

# Times in slices (minutes).
_ANOMALY_EVERY = 5 * 3_600_000 // SLICE_MS  # anomaly k starts k * 5 h after the first ...
_ANOMALY_JITTER = 60  # ... plus 0-59 slices
_LEVEL_SHIFT_K = 5
_ANOMALY_KINDS = {"spike": (3.0, 20), "drop": (0.1, 30), "level_shift": (2.0, 0)}  # factor, slices (0: forever)


def planted_anomalies(settings: SimSettings, until_ms: int) -> pl.DataFrame:
    """The planted anomalies that start before ``until_ms``: the labels of the traffic.

    Columns ``kind`` (``spike``, ``drop`` or ``level_shift``), ``start_ms`` and
    ``end_ms`` (epoch ms, whole slices; the end is exclusive, and a level
    shift, which never ends, has its start) and ``factor`` (what it multiplies
    the rate of session starts by), ordered by ``start_ms``. Empty when
    anomalies are off.
    """
    schema = {"kind": pl.String, "start_ms": pl.Int64, "end_ms": pl.Int64, "factor": pl.Float64}
    if not settings.anomalies:
        return pl.DataFrame(schema=schema)
    first = _first_anomaly_slice(settings)
    before = -(-(until_ms - settings.start_ms) // SLICE_MS)  # slices 0 .. before-1 start before until_ms
    k = np.arange(max(0, -(-(before - first) // _ANOMALY_EVERY)))  # anomalies that may start in them
    at = first + k * _ANOMALY_EVERY + np.array([_jitter(settings.seed, j) for j in k.tolist()], dtype=np.int64)
    k, at = k[at < before], at[at < before]
    kind = [_anomaly_kind(j) for j in k.tolist()]
    length = np.array([_ANOMALY_KINDS[name][1] for name in kind], dtype=np.int64)
    start = settings.start_ms + at * SLICE_MS
    return pl.DataFrame(
        {
            "kind": kind,
            "start_ms": start,
            "end_ms": start + length * SLICE_MS,
            "factor": [_ANOMALY_KINDS[name][0] for name in kind],
        },
        schema=schema,
    )


def anomaly_factor(settings: SimSettings, index: int) -> float:
    """What the planted anomalies multiply slice ``index``'s rate of session starts by (1.0: nothing).

    The spike or drop covering the slice, if any (they never overlap), times
    the level shift once it has started.
    """
    return float(anomaly_factors(settings, np.array([index]))[0])


def anomaly_factors(settings: SimSettings, indices: np.ndarray) -> np.ndarray:
    """:func:`anomaly_factor` of each slice of ``indices``, at once."""
    factor = np.ones(indices.size)
    first = _first_anomaly_slice(settings)
    if not settings.anomalies or not (indices >= first).any():
        return factor
    factor[indices >= _anomaly_slice(settings, _LEVEL_SHIFT_K)] *= _ANOMALY_KINDS["level_shift"][0]
    covering = (indices - first) // _ANOMALY_EVERY  # the only anomaly that can cover each slice
    for k in np.unique(covering[indices >= first]).tolist():
        kind = _anomaly_kind(k)
        if kind != "level_shift":
            at = _anomaly_slice(settings, k)
            rate, length = _ANOMALY_KINDS[kind]
            factor[(indices >= at) & (indices < at + length)] *= rate
    return factor


def _first_anomaly_slice(settings: SimSettings) -> int:
    """The slice ``anomaly_after_ms`` after the start, rounded up: where anomaly 0's hour begins."""
    return -(-settings.anomaly_after_ms // SLICE_MS)


def _anomaly_kind(k: int) -> str:
    return "level_shift" if k == _LEVEL_SHIFT_K else ("spike", "drop")[k % 2]


def _anomaly_slice(settings: SimSettings, k: int) -> int:
    """The slice anomaly ``k`` starts in."""
    return _first_anomaly_slice(settings) + k * _ANOMALY_EVERY + _jitter(settings.seed, k)


@lru_cache(maxsize=4096)
def _jitter(seed: int, k: int) -> int:
    """Slices (minutes, 0-59) anomaly ``k`` starts after its hour begins: a function of (seed, k) alone."""
    return int(np.random.default_rng([seed, 0xA40A1, k]).integers(0, _ANOMALY_JITTER))
