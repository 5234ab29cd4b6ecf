"""Command-line tools around the flows: a local broker, an event producer and a topic reader.

Each says what went wrong in one line on stderr, ``<tool>: <message>``, and
exits 2 for something to fix before running again (an argument, a setting, a
broker that does not answer, a missing dev dependency) and 1 for a failure
while it ran.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from flows.engine.errors import ConfigError, DmpError


class MissingDependencyError(DmpError):
    """A tool needs a package that is not installed (e.g. the dev extra's local broker)."""


def exit_with(tool: str, error: DmpError) -> NoReturn:
    """One line on stderr, and exit 2 (fix something first) or 1 (it failed while running)."""
    print(f"{tool}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2 if isinstance(error, (ConfigError, MissingDependencyError)) else 1)
