"""Sources: where raw batches come from (the simulator, files, Kafka).

:func:`open_source` builds the source the settings ask for; every source of
ours also tells the flow all of its partitions (:func:`source_partitions`),
which the watermark needs before any data arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.testing import TestingSource

from flows.engine.config import Settings
from flows.engine.errors import ConfigError
from flows.engine.schema import DEFAULT_PARTITION, RawBatch
from flows.engine.sources.files import FileSource, expand_inputs
from flows.engine.sources.idle import IdleAwareSource
from flows.engine.sources.interruptible import InterruptibleSource
from flows.engine.sources.kafka import KafkaSource
from flows.engine.sources.readahead import ReadAheadSource
from flows.engine.sources.simulator import SimSource

__all__ = ["FileSource", "IdleAwareSource", "InterruptibleSource", "KafkaSource", "ReadAheadSource", "SimSource",
           "open_source", "source_partitions", "source_sizes"]


def open_source(settings: Settings, prepare: Callable[[RawBatch], Any] | None = None) -> Source:
    """The source named by ``DMP_SOURCE``, validated (files exist, CSV headers fit).

    With ``prepare`` (the flow's decoder) and ``DMP_READ_AHEAD`` > 0, each
    partition decodes its next batches on a background thread. With
    ``DMP_IDLE_TIMEOUT`` > 0, quiet partitions announce that they are idle.
    Every partition stops the run cleanly on Ctrl-C or SIGTERM.
    """
    source: FixedPartitionedSource
    if settings.source == "sim":
        source = SimSource(settings.sim)
    elif settings.source == "file":
        source = FileSource(expand_inputs(settings.input or ""), settings.input_format, settings.batch_bytes)
    elif settings.source == "kafka":
        source = KafkaSource(settings.kafka)
    else:
        msg = f"DMP_SOURCE={settings.source!r}: unknown source"
        raise ConfigError(msg)
    if prepare is not None and settings.read_ahead > 0:
        source = ReadAheadSource(source, prepare, settings.read_ahead)
    if settings.idle_timeout_ms > 0:
        source = IdleAwareSource(source, settings.idle_timeout_ms)
    return InterruptibleSource(source)


def source_sizes(source: Source) -> dict[str, int] | None:
    """Bytes of each partition (files: what progress shows the percent done of), or ``None`` (unbounded, unknown).

    Looks through our wrappers (read-ahead, idle, interruptible) to the source they wrap.
    """
    wrapped: Any = source
    while wrapped is not None:
        sizes = getattr(wrapped, "sizes", None)
        if callable(sizes):
            return sizes()
        wrapped = getattr(wrapped, "inner", None)
    return None


def source_partitions(source: Source) -> list[str]:
    """Every partition name ``source`` will emit batches for.

    Our sources list them; a ``TestingSource`` emits plain items, which
    belong to the default partition. Any other source must be given its
    partitions explicitly.
    """
    partitions = getattr(source, "partitions", None)
    if callable(partitions):
        return list(partitions())
    if isinstance(source, TestingSource):
        return [DEFAULT_PARTITION]
    msg = (
        f"cannot tell the partitions of {type(source).__name__}; pass partitions=[...] "
        "naming every partition its batches come from"
    )
    raise ConfigError(msg)
