"""Random draws that are pure functions of where they are used: (seed, partition), slice, item, field.

In: a :class:`Draws` for one (seed, partition), and arrays of slice indices,
item numbers (a session's or an event's number within its slice) and a
:class:`Field`. Out: uniforms in [0, 1), and the few distributions the
simulator needs computed from them (Poisson counts, exponential gaps,
geometric lengths, integers, picks by probability).

Why not one NumPy ``Generator`` per slice: creating one costs ~40 us, more
than generating a quiet slice's events, and draws from it come in sequence,
so slices cannot be generated together. A counter-based generator has
neither problem: the uniform at an address is SplitMix64's output function
of ``key + counter * golden gamma`` (the SplitMix64 stream of the partition's
key, at position ``counter``), where the counter packs (slice, item, field).
So any number of slices are generated at once with a handful of array
operations, each draw is the same whoever asks for it and in whatever batch,
and a slice is still a function of (seed, partition, slice) alone. Session
``i`` of a slice draws the same numbers whether or not an anomaly adds
sessions after it.

>>> draws = Draws(42, 0)
>>> u = draws.uniform(np.array([0, 0, 1]), np.array([0, 1, 0]), Field.SESSION_START)
>>> bool(((u >= 0) & (u < 1)).all()), bool(np.array_equal(u, draws.uniform(np.array([0, 0, 1]), np.array([0, 1, 0]),
...     Field.SESSION_START)))
(True, True)
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SLICE_SHIFT = np.uint64(36)  # counter = slice << 36 | item << 8 | field: 2^28 slices (510 years of minutes),
_ITEM_SHIFT = np.uint64(8)  # 2^28 items per slice, 256 fields
_TO_UNIT = 1.0 / (1 << 53)


class Field(IntEnum):
    """What a draw is for; every use has its own, so no two uses ever share a number."""

    SESSIONS = 1  # per slice: how many ordinary sessions start in it
    SESSION_USER = 2  # per session
    SESSION_START = 3
    SESSION_VIEWS = 4
    SESSION_BUYS = 5
    CHECKOUT_DELAY = 6
    VIEW_GAP = 10  # per view
    VIEW_PRODUCT = 11
    VIEW_CARTS = 12
    CART_DELAY = 13
    CART_REMOVED = 14
    REMOVE_DELAY = 15
    QUANTITY = 16
    BUNDLES = 40  # per slice: bundle sessions; then per bundle session
    BUNDLE_WHICH = 41
    BUNDLE_USER = 42
    BUNDLE_START = 43
    BUNDLE_GAP = 44  # per bundle product
    BUNDLE_CART_DELAY = 45
    BUNDLE_CHECKOUT = 46
    ABANDON_VIEWS = 50  # per abandoner's session; then per view
    ABANDON_CARTS = 51
    ABANDON_GAP = 52
    ABANDON_PRODUCT = 53
    ABANDON_CART_DELAY = 54
    SPEND_PRODUCT = 60  # per big spender's purchase
    DELIVERY = 100  # per event (its number within the slice)
    CORRUPTION = 101


class Draws:
    """The draws of one (seed, partition); see the module docstring."""

    def __init__(self, seed: int, partition: int) -> None:
        state = np.random.SeedSequence([seed, partition, 0x51D]).generate_state(1, np.uint64)
        self.key = np.uint64(state[0])

    def uniform(self, slices: np.ndarray, items: np.ndarray | int, field: Field) -> np.ndarray:
        """Uniforms in [0, 1) at (slice, item, field), elementwise (``items`` broadcast against ``slices``)."""
        x = np.asarray(slices, dtype=np.uint64) << _SLICE_SHIFT
        x |= np.asarray(items, dtype=np.uint64) << _ITEM_SHIFT
        x |= np.uint64(int(field))
        x *= _GOLDEN
        x += self.key
        x ^= x >> np.uint64(30)
        x *= _MIX1
        x ^= x >> np.uint64(27)
        x *= _MIX2
        x ^= x >> np.uint64(31)
        x >>= np.uint64(11)
        return x.astype(np.float64) * _TO_UNIT


def exponential(u: np.ndarray, mean: float) -> np.ndarray:
    """Exponentially distributed values of the given mean (inverse CDF)."""
    return -np.log1p(-u) * mean


def geometric(u: np.ndarray, p: float) -> np.ndarray:
    """Counts >= 1 of trials up to the first success of probability ``p`` (mean ``1/p``)."""
    return np.floor(np.log1p(-u) / math.log1p(-p)).astype(np.int64) + 1


def integers(u: np.ndarray, low: int, high: int | np.ndarray) -> np.ndarray:
    """Integers uniform in [low, high)."""
    return low + np.floor(u * (np.asarray(high) - low)).astype(np.int64)


def pick(u: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Indices drawn with the probabilities whose running sum is ``cumulative``."""
    return np.minimum(np.searchsorted(cumulative, u * cumulative[-1], side="right"), cumulative.size - 1)


def poisson(mean: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson counts of the given means, elementwise: the smallest k with P(X <= k) > u (inverse CDF).

    The sum starts 10 standard deviations below the mean (the mass before
    it is below 1e-20), so large means neither underflow ``exp(-mean)`` nor
    need thousands of steps; the steps are array operations over all means.
    """
    mean = np.asarray(mean, dtype=np.float64)
    k = np.zeros(mean.shape, dtype=np.int64)
    live = mean > 0
    if not live.any():
        return k
    m = mean[live]
    start = np.maximum(0.0, np.floor(m - 10.0 * np.sqrt(m) - 10.0))
    log_p = start * np.log(m) - m - np.array([math.lgamma(s + 1.0) for s in start.tolist()])
    p = np.exp(log_p)
    cdf = p.copy()
    n = start.astype(np.int64)
    target = np.asarray(u, dtype=np.float64)[live]
    limit = n + np.ceil(20.0 * np.sqrt(m) + 40.0).astype(np.int64)  # float rounding never loops for ever
    active = np.flatnonzero((cdf <= target) & (n < limit))
    while active.size:
        n[active] += 1
        p[active] *= m[active] / n[active]
        cdf[active] += p[active]
        active = active[(cdf[active] <= target[active]) & (n[active] < limit[active])]
    k[live] = n
    return k
