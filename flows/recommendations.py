"""Co-purchase recommendations on their own: the ``recommendations`` stream.

    python -m bytewax.run flows.recommendations

    source -> decode -> stamp_event_time -> session_windows   per user; each closed session's basket
                                             -> co_purchases  decayed pair counts per interval,
                                                              top K by cosine -> recommendations

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=recommendations``),
with its dead letters and summary.
"""

from __future__ import annotations

from typing import Any

from flows import dmp

build = dmp.only(("recommendations",))


def __getattr__(name: str) -> Any:
    if name == "flow":
        return dmp.flow_from_env(build)
    raise AttributeError(name)
