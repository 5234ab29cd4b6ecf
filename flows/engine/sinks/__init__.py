"""Sinks: where each output stream goes (files, Kafka, the results database, or several).

:class:`Outputs` names the sinks of each stream; :func:`build_outputs` makes
the set ``DMP_SINK`` asks for: ``$DMP_OUT_DIR/<stream>/`` files,
``<DMP_KAFKA_OUTPUT_PREFIX><stream>`` topics and/or a table per stream at
``DMP_DB_URL``, each from the stream's declaration
(:class:`~flows.engine.streams.OutputStream`). Tests pass ``TestingSink`` s.
Each sink renders typed rows its own way: JSON Lines show times as
ISO-8601 and a dead letter's bytes as text; Parquet keeps the types; Kafka
sends JSON, and a dead letter's original bytes unchanged; the database
stores each kind as its dialect's type (:mod:`flows.engine.db`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bytewax.outputs import Sink

from flows.engine.config import Settings
from flows.engine.sinks.db import DbSink, open_db_sinks
from flows.engine.sinks.files import FileSink, writable_directory
from flows.engine.sinks.kafka import KafkaSink, ensure_topics
from flows.engine.sinks.summary import SummarySink
from flows.engine.streams import OutputStream

__all__ = ["DbSink", "FileSink", "KafkaSink", "Outputs", "SummarySink", "build_outputs"]

Sinks = Sink | list[Sink] | tuple[Sink, ...]  # what Outputs.sinks() expands: a list or tuple


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


def build_outputs(settings: Settings, streams: Sequence[OutputStream] | None = None, *, fresh: bool = False) -> Outputs:
    """The sinks ``DMP_SINK`` names, for each of ``streams`` (by default the streams the settings' analytics write).

    With files, the outputs' directory must be writable (else a
    :class:`~flows.engine.errors.ConfigError` naming ``DMP_OUT_DIR``);
    ``fresh`` (a run that does not resume) removes every stream's files
    first, and ``summary.json``, so none is left from an earlier run.
    """
    if streams is None:
        from flows.engine.analytics.registry import streams as declared

        streams = declared(settings)
    per_stream: dict[str, list[Sink]] = {stream.name: [] for stream in streams}
    if "files" in settings.sinks:
        writable_directory(settings.out_dir)
    if "kafka" in settings.sinks:
        topics = [f"{settings.kafka.output_prefix}{stream.name}" for stream in streams]
        ensure_topics(settings.kafka, topics, settings.kafka.output_partitions)
    tables = open_db_sinks(settings, streams) if "db" in settings.sinks else {}
    for stream in streams:
        if "files" in settings.sinks:
            files = FileSink(settings.out_dir / stream.name, settings.out_format, stream=stream,
                             rotate_bytes=settings.out_rotate_bytes)
            if fresh:
                files.clear()
            per_stream[stream.name].append(files)
        if "kafka" in settings.sinks:
            per_stream[stream.name].append(KafkaSink(settings.kafka, stream))
        if stream.name in tables:
            per_stream[stream.name].append(tables[stream.name])
    if fresh and "files" in settings.sinks:
        (settings.out_dir / "summary.json").unlink(missing_ok=True)
    summary = SummarySink(settings.out_dir if "files" in settings.sinks else None,
                          on_dead_letters=settings.on_dead_letter_share) if settings.summary else None
    return Outputs(per_stream, summary=summary)
