"""The built-in shop simulator: realistic clickstream as JSON Lines batches.

In: :class:`~flows.engine.config.SimSettings`. Out: :class:`RawBatch` items
(JSON Lines, the same path as any file) from ``partitions`` source
partitions, like a topic keyed by user.

The shop: a catalog of products in categories with per-product prices and
Zipf-skewed popularity (:mod:`.catalog`); users whose sessions walk view ->
add_to_cart (-> remove_from_cart) -> purchase with realistic conversion, and
a daily cycle of traffic, quiet at night, busiest in the evening
(:mod:`.shoppers`); planted behaviour with its ground truth
(:mod:`.planted`) and planted traffic anomalies with their labels
(:mod:`.anomalies`); each slice of a partition put together, with delivery
delays (:mod:`.slices`); and the source that delivers them, out of order but
bounded (``disorder_ms``) except for a few stragglers delivered up to ten
minutes late, a given fraction of records corrupted on purpose
(:mod:`.source`).

Everything is a pure function of (seed, partition, time slice), generated
with NumPy a slice at a time, so the same settings give the same bytes on
any machine, and a partition's snapshot (slice number, undelivered events,
count) resumes it exactly.
"""

from flows.engine.sources.simulator.anomalies import anomaly_factor, planted_anomalies
from flows.engine.sources.simulator.catalog import Catalog, make_catalog
from flows.engine.sources.simulator.planted import Planted, abandon_sessions, planted
from flows.engine.sources.simulator.shoppers import SLICE_MS, daily_cycle
from flows.engine.sources.simulator.slices import STRAGGLER_MAX_MS, generate_slice
from flows.engine.sources.simulator.source import SimPartition, SimPosition, SimSource, corrupt, render

__all__ = [
    "SLICE_MS",
    "STRAGGLER_MAX_MS",
    "Catalog",
    "Planted",
    "SimPartition",
    "SimPosition",
    "SimSource",
    "abandon_sessions",
    "anomaly_factor",
    "corrupt",
    "daily_cycle",
    "generate_slice",
    "make_catalog",
    "planted",
    "planted_anomalies",
    "render",
]
