"""The built-in shop simulator: realistic clickstream as JSON Lines batches.

In: :class:`~flows.engine.config.SimSettings`. Out: :class:`RawBatch` items
(JSON Lines, the same path as any file) from ``partitions`` source
partitions, like a topic keyed by user.

The shop: a catalog of products in categories with catalogue prices,
basket sizes and Zipf-skewed popularity (:mod:`.catalog`); shoppers whose
sessions walk view -> add_to_cart (-> remove_from_cart) -> purchase as real
shoppers do, and a daily cycle of traffic, quiet in the morning, busiest in
the evening (:mod:`.shoppers`); planted behaviour with its ground truth
(:mod:`.planted`) and planted traffic anomalies with their labels
(:mod:`.anomalies`); many slices of a partition generated at once, each a
function of (seed, partition, slice) alone (:mod:`.slices`, with the
counter-based draws of :mod:`.draws`); and the source that delivers them,
out of order but bounded (``disorder_ms``) except for a few stragglers up
to ten minutes late, a given fraction of records corrupted on purpose
(:mod:`.source`, :mod:`.corruption`).

**Calibration.** The shoppers' behaviour is set so that the figures
published for e-commerce come out, and compared with the REES46 sample
(``tests/data/rees46-2019-oct-sample.csv``, 1,000 rows, 17 minutes);
``tests/test_simulator_calibration.py -s`` prints the table (a simulated
day with the defaults)::

    figure                      simulator  REES46 sample  published
    views per session           3.6        2.7            2-6 (approximate)
    sessions with a cart        8.9%       0.8%           5-15% (~7-8% across industries)
    session conversion          2.7%       2.4%           1-4% (~2-3%)
    cart abandonment            69%        33% (3 carts)  ~70%
    view -> cart (events)       2.9%       0.3%
    cart -> purchase (events)   0.36       3.3

Sources, all approximate (benchmarks vary by industry, device and how a
tool counts): cart abandonment, Baymard Institute's average of 49 studies,
70.19% (baymard.com/lists/cart-abandonment-rate); add-to-cart rate, Oberlo's
figures from Dynamic Yield's benchmarks, 7.87% of sessions across
industries in August 2023 and 4-14% by industry
(oberlo.com/statistics/add-to-cart-conversion-rate); session conversion,
2-4% across industries (convertcart.com/blog/ecommerce-conversion-rate-by-industry)
and ~2.5% (pureclarity.com, "a complete guide to ecommerce conversion
rate"); views per session, no authoritative figure was found: Salesforce's
benchmarks of 2,000 shops speak of one or two product views per visit
(answers.salesforce.com/blog/2018/06/digital-commerce-benchmarks-product-views-per-visit.html),
REES46 shows 2.7 (cut short by the sample's 17 minutes), and 2-6 is what
we assert. REES46's sample converts like a real shop but records few carts
(its purchases mostly come without a cart event), so its cart figures are
not a target. Category prices follow REES46's medians (:mod:`.catalog`).

**The default run** is a week of a small shop: 1 event/s of event time on
average (about 760,000 events with the level shift's doubling, 200,000
sessions, 5,700 orders), 100,000 shoppers, anomalies planted from day 4,
12 h on (after the time series' warm-up at their 10-minute buckets), ending
exactly at the end of the seventh day (``DMP_SIM_DURATION``), so every
window, bucket and hour of the run is whole: a run that stopped mid-window would show its last window as
a crash. No event comes before the start. ``DMP_SIM_EVENTS`` instead ends a
run after a number of records (benchmarks, producers), wherever that falls.

Everything is a pure function of (seed, partition, time slice), so the same
settings give the same bytes on any machine, however the slices are
batched, and a partition's snapshot (next slice, undelivered events, count)
resumes it exactly.
"""

from flows.engine.sources.simulator.anomalies import anomaly_factor, anomaly_factors, planted_anomalies
from flows.engine.sources.simulator.catalog import Catalog, make_catalog
from flows.engine.sources.simulator.planted import Planted, abandon_sessions, planted
from flows.engine.sources.simulator.shoppers import SLICE_MS, daily_cycle
from flows.engine.sources.simulator.slices import STRAGGLER_MAX_MS, end_ms, generate_slice, generate_slices
from flows.engine.sources.simulator.source import SimPartition, SimPosition, SimSource, render

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
    "anomaly_factors",
    "daily_cycle",
    "end_ms",
    "generate_slice",
    "generate_slices",
    "make_catalog",
    "planted",
    "planted_anomalies",
    "render",
]
