"""Ordered conversion funnels on their own: the ``funnel`` stream.

    python -m bytewax.run flows.funnel

    source -> decode -> stamp_event_time -> funnel_windows   per user, tumbling DMP_FUNNEL_WINDOW:
                                                             first view, then cart, then purchase
                                             -> funnel_rates -> funnel   per window and category

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=funnel``), with its
dead letters and summary.
"""

from __future__ import annotations

from flows import dmp

build = dmp.only(("funnel",))
__getattr__ = dmp.flow_attribute(build)
