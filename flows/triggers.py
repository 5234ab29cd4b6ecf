"""Marketing triggers on their own: the ``triggers`` stream.

    python -m bytewax.run flows.triggers

    source -> decode -> stamp_event_time -> session_windows -> cart_candidates ----+
                                         -> purchases_only -> spend_windows         |
                                                           -> spend_candidates -----+-> cooldown -> triggers

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=triggers``), with its
dead letters and summary.
"""

from __future__ import annotations

from flows import dmp

build = dmp.only(("triggers",))
__getattr__ = dmp.flow_attribute(build)
