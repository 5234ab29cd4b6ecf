"""Co-purchase recommendations on their own: the ``recommendations`` stream.

    python -m bytewax.run flows.recommendations

    source -> decode -> stamp_event_time -> session_windows   per user; each closed session's basket
                                             -> co_purchases  decayed pair counts per interval,
                                                              top K by cosine -> recommendations

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=recommendations``),
with its dead letters and summary.
"""

from __future__ import annotations

from flows import dmp

build = dmp.only(("recommendations",))
__getattr__ = dmp.flow_attribute(build)
