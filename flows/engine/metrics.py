"""Prometheus metrics of the pipeline, beside Bytewax's own.

Registered in ``prometheus_client``'s default registry, which Bytewax's
dataflow API server (``BYTEWAX_DATAFLOW_API_ENABLED=true``, port
``BYTEWAX_DATAFLOW_API_PORT``, default 3030) serves at ``/metrics`` together
with its step metrics. Every metric has a ``worker`` label (the global
worker index); each process serves its own workers. Names and labels are
stable; the README lists them with example alert rules
(``k8s/monitoring/dmp-alerts.yaml``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter("dmp_records", "Records read from the sources (events + dead letters)", ["worker"])
EVENTS = Counter("dmp_events", "Events decoded", ["worker"])
DEAD_LETTERS = Counter("dmp_dead_letters", "Records that could not be decoded", ["worker"])
LATE_EVENTS = Counter("dmp_late_events", "Events too late for a window they belong to", ["worker"])
LATENCY = Histogram(
    "dmp_latency_seconds",
    "Wall time from reading the source batch that released window results to their emission",
    ["worker"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WATERMARK_LAG = Gauge(
    "dmp_watermark_lag_seconds", "Wall clock minus the oldest watermark of the partitions the worker stamps",
    ["worker"],
)
EVENTS_PER_SECOND = Gauge(
    "dmp_events_per_second", "Events decoded per second over the last DMP_MONITOR_INTERVAL", ["worker"]
)
