"""Sinks: where each output stream goes (files, Kafka, or both).

:class:`Outputs` names the sinks of each stream; :func:`build_outputs` makes
the set ``DMP_SINK`` asks for: ``$DMP_OUT_DIR/<stream>/`` files and/or
``<DMP_KAFKA_OUTPUT_PREFIX><stream>`` topics. Tests pass ``TestingSink`` s.
Each sink encodes rows its own way: the dead-letter stream carries the
original bytes, which files show as text and Kafka sends unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from bytewax.outputs import Sink

from flows.engine.config import Settings
from flows.engine.present import dead_letter_rows
from flows.engine.sinks.files import FileSink
from flows.engine.sinks.kafka import KafkaSink, ensure_topics
from flows.engine.sinks.summary import SummarySink

__all__ = ["STREAMS", "FileSink", "KafkaSink", "Outputs", "SummarySink", "build_outputs"]

STREAMS = ("trends", "leaderboard", "quality", "late", "dead_letters", "sessions", "funnel", "recommendations",
           "triggers", "timeseries", "anomalies", "monitoring")

Sinks = Union[Sink, Sequence[Sink]]


@dataclass(frozen=True)
class Outputs:
    """The sink (or sinks) of each output stream; the summary is optional."""

    streams: Mapping[str, Sinks]
    summary: Sink | None = None

    def sinks(self, stream: str) -> list[Sink]:
        if stream not in self.streams:
            msg = f"no sink for the output stream {stream!r} (outputs have {sorted(self.streams)})"
            raise KeyError(msg)
        chosen = self.streams[stream]
        return list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]


def build_outputs(settings: Settings, streams: Sequence[str] = STREAMS) -> Outputs:
    """The sinks ``DMP_SINK`` names, for each of ``streams``."""
    per_stream: dict[str, list[Sink]] = {stream: [] for stream in streams}
    if "kafka" in settings.sinks:
        topics = [f"{settings.kafka.output_prefix}{stream}" for stream in streams]
        ensure_topics(settings.kafka, topics, settings.kafka.output_partitions)
    for stream in streams:
        if "files" in settings.sinks:
            present = dead_letter_rows if stream == "dead_letters" else None
            per_stream[stream].append(FileSink(settings.out_dir / stream, settings.out_format, present=present))
        if "kafka" in settings.sinks:
            per_stream[stream].append(KafkaSink(settings.kafka, stream))
    summary = SummarySink(settings.out_dir if "files" in settings.sinks else None) if settings.summary else None
    return Outputs(per_stream, summary=summary)
