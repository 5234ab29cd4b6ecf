"""The summary sink: prints the run summary, writes ``summary.json``, and warns of inputs of dead letters.

Warnings (an input whose share of dead letters is above
``DMP_MAX_DEAD_LETTER_SHARE``) go to stderr as well as into the summary;
with ``DMP_ON_DEAD_LETTER_SHARE=fail`` they are errors and the run exits
with status 1 once Bytewax returns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.engine import interrupt
from flows.engine.summary import dead_letter_warnings, format_summary


class SummarySink(DynamicSink[dict]):
    """Prints each summary it gets (one per bounded run, or one of an interrupted run) and saves it as JSON."""

    def __init__(self, out_dir: Path | str | None, stream: TextIO | None = None,
                 on_dead_letters: Literal["warn", "fail"] = "warn", errors: TextIO | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.stream = stream
        self.on_dead_letters = on_dead_letters
        self.errors = errors

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SummaryPart:
        return _SummaryPart(self)

    def report(self, summary: dict[str, Any]) -> None:
        """Print ``summary`` (stdout), its warnings (stderr), and write ``summary.json``."""
        print(format_summary(summary, str(self.out_dir) if self.out_dir else None), file=self.stream or sys.stdout,
              flush=True)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        fail = self.on_dead_letters == "fail"
        for line in dead_letter_warnings(summary):
            print(f"dmp: {'error' if fail else 'warning'}: {line}", file=self.errors or sys.stderr, flush=True)
            if fail:
                interrupt.exit_with(1)


class _SummaryPart(StatelessSinkPartition[dict]):
    def __init__(self, sink: SummarySink):
        self.sink = sink

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        for summary in items:
            self.sink.report(summary)
