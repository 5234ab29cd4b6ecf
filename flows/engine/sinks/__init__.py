"""Sinks: where each output stream goes (files now; Kafka later).

:class:`Outputs` names one sink per stream; :func:`file_outputs` is the
default set, ``$DMP_OUT_DIR/<stream>/``. Tests pass ``TestingSink`` s instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from bytewax.outputs import Sink

from flows.engine.config import Settings
from flows.engine.sinks.files import FileSink
from flows.engine.sinks.summary import SummarySink

__all__ = ["STREAMS", "FileSink", "Outputs", "SummarySink", "file_outputs"]

STREAMS = ("trends", "leaderboard", "late", "dead_letters")


@dataclass(frozen=True)
class Outputs:
    """One sink per output stream; the summary is optional (bounded runs)."""

    trends: Sink
    leaderboard: Sink
    late: Sink
    dead_letters: Sink
    summary: Sink | None = None


def file_outputs(settings: Settings) -> Outputs:
    out = settings.out_dir
    sinks = {name: FileSink(out / name, settings.out_format) for name in STREAMS}
    return Outputs(**sinks, summary=SummarySink(out) if settings.summary else None)
