"""The summary sink: prints the run summary and writes ``summary.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.engine.summary import format_summary


class SummarySink(DynamicSink[dict]):
    """Prints each summary it gets (one per bounded run) and saves it as JSON."""

    def __init__(self, out_dir: Path | str | None, stream: TextIO | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.stream = stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SummaryPart:
        return _SummaryPart(self.out_dir, self.stream)


class _SummaryPart(StatelessSinkPartition[dict]):
    def __init__(self, out_dir: Path | None, stream: TextIO | None):
        self.out_dir = out_dir
        self.stream = stream

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        for summary in items:
            stream = self.stream or sys.stdout
            print(format_summary(summary, str(self.out_dir) if self.out_dir else None), file=stream, flush=True)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
