"""Business metrics as time series, and anomaly alerts: the ``timeseries`` and ``anomalies`` streams.

    python -m bytewax.run flows.timeseries

    source -> decode -> stamp_event_time -> timeseries_buckets   revenue, orders, views per category
                                                                 and DMP_TS_BUCKET, in bucket order
                                              -> decompose -> timeseries, anomalies

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=timeseries,anomalies``),
with its dead letters, monitoring and summary.
"""

from __future__ import annotations

from flows import dmp

build = dmp.only(("timeseries", "anomalies"))
__getattr__ = dmp.flow_attribute(build)
