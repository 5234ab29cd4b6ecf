"""Regenerate the tables the README and README-ops print from the code's declarations.

    .venv/bin/python -m flows.tools.docs           # rewrite them in place
    .venv/bin/python -m flows.tools.docs --check   # exit 1, naming the table, if one is out of date

The settings table (from the setting declarations), the output streams and
Kafka topics (from the analytic registry) and the dashboard's endpoints are
declared once in code; the documents hold a copy that tests compare. A
table is found by its header line and runs to the first line that is not a
table row, so the text around it is never touched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tables() -> list[tuple[str, str, Callable[[], str]]]:
    """(document, what the table is, its generator)."""
    from flows.dashboard.panels import markdown_table as endpoints
    from flows.engine.analytics.registry import markdown_table as stream_table
    from flows.engine.analytics.registry import topic_table
    from flows.engine.config import markdown_table as settings_table

    return [("README.md", "settings", settings_table), ("README.md", "output streams", stream_table),
            ("README.md", "dashboard endpoints", endpoints), ("README-ops.md", "Kafka topics", topic_table)]


def replace_table(text: str, table: str) -> str:
    """``text`` with the table that has ``table``'s header line replaced by ``table``."""
    header = table.splitlines()[0]
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == header]
    if len(starts) != 1:
        raise LookupError(f"{len(starts)} tables begin with {header!r}")
    end = starts[0]
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join([*lines[: starts[0]], table + "\n", *lines[end:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.tools.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    stale = []
    for document, name, generate in tables():
        path = ROOT / document
        text = path.read_text()
        try:
            new = replace_table(text, generate())
        except LookupError as ex:
            print(f"docs: {document}: the {name} table: {ex}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(f"{document}: the {name} table")
            if not args.check:
                path.write_text(new)
    for what in stale:
        print(f"docs: {what} {'is out of date' if args.check else 'rewritten'}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
