"""User sessions on their own: the ``sessions`` stream.

    python -m bytewax.run flows.sessions

    source -> decode -> stamp_event_time -> session_windows   per user, gap DMP_SESSION_GAP;
                                                              released in (close, user) order
                                              -> present_sessions -> sessions

The same blocks as :mod:`flows.dmp` (``DMP_ANALYTICS=sessions``), with its
dead letters and summary.
"""

from __future__ import annotations

from flows import dmp

build = dmp.only(("sessions",))
__getattr__ = dmp.flow_attribute(build)
