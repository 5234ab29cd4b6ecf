"""Where flows.dmp's CPU goes: process CPU-seconds (every thread) per function of ``flows``, self and inclusive.

    .venv/bin/python bench/cpu_profile.py                          # default run over the 2M-event file
    .venv/bin/python bench/cpu_profile.py --top 20 DMP_ANALYTICS=trends DMP_SHARDS=2

Why not py-spy: it samples Python threads only, while most of the work runs
in Polars' own threads (``polars-*``, ``async-executor-*``: more than half
of a default run's CPU) and shows the calling Python frame as idle or busy
by wall clock. Here every function and method of the ``flows`` package is
wrapped to add the *process's* CPU time (``time.process_time``: all threads)
spent while it runs, so the Polars work a call waits for is charged to it.
Self time leaves out the nested ``flows`` calls. The run is in-process with
``DMP_READ_AHEAD=0``, so one Python thread does all the work and nothing
else runs beside a call; ``DMP_*`` assignments given as arguments override
the defaults. Calls are per batch, not per event, so the wrappers cost
little (compare the printed total with an unwrapped run's).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import importlib
import inspect
import os
import pkgutil
import runpy
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.make_events import ensure_events  # noqa: E402

SKIPPED = ("flows.tools", "flows.dashboard")  # not on a run's path


class Profile:
    """CPU-seconds per wrapped function: inclusive, self, calls."""

    def __init__(self) -> None:
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.own: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.stack: list[float] = []  # CPU of the nested wrapped calls of each open call

    def wrap(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            self.stack.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.process_time() - started
                nested = self.stack.pop()
                self.inclusive[label] += spent
                self.own[label] += spent - nested
                self.calls[label] += 1
                if self.stack:
                    self.stack[-1] += spent

        timed.__wrapped__ = function  # type: ignore[attr-defined]
        timed.__name__ = getattr(function, "__name__", label)
        timed.__doc__ = function.__doc__
        return timed

    def instrument(self) -> int:
        """Wrap every function and method defined in ``flows``; how many were wrapped."""
        import flows

        wrapped = 0
        for info in pkgutil.walk_packages(flows.__path__, "flows."):
            if info.name.startswith(SKIPPED):
                continue
            module = importlib.import_module(info.name)
            short = info.name.rsplit(".", 1)[-1]
            for name, value in list(vars(module).items()):
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                if inspect.isfunction(value) and not name.startswith("__"):
                    setattr(module, name, self.wrap(value, f"{short}.{name}"))
                    wrapped += 1
                elif inspect.isclass(value):
                    for attribute, member in list(vars(value).items()):
                        if inspect.isfunction(member) and (not attribute.startswith("__")
                                                           or attribute in ("__init__", "__setstate__")):
                            setattr(value, attribute, self.wrap(member, f"{value.__name__}.{attribute}"))
                            wrapped += 1
        return wrapped

    def report(self, top: int) -> None:
        total = time.process_time()
        print(f"process CPU {total:.2f} s (every thread)", file=sys.stderr)
        for title, counter in (("self", self.own), ("inclusive", self.inclusive)):
            print(f"--- {title}: CPU-s, share of the process, calls", file=sys.stderr)
            for label, spent in counter.most_common(top):
                print(f"{spent:8.2f} {100 * spent / total:5.1f}% {self.calls[label]:8,}  {label}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="events of the generated input file")
    parser.add_argument("--top", type=int, default=40, help="functions listed in each table")
    parser.add_argument("settings", nargs="*", metavar="DMP_X=value", help="settings for the run")
    args = parser.parse_args()
    path = ensure_events(ROOT / "bench" / "data" / f"events-{args.events}.jsonl", args.events)
    out = tempfile.mkdtemp(prefix="cpu-profile-")
    os.environ.update({"DMP_SOURCE": "file", "DMP_INPUT": str(path), "DMP_OUT_DIR": out, "DMP_SUMMARY": "false",
                       "DMP_PROGRESS": "off", "DMP_READ_AHEAD": "0"})
    for assignment in args.settings:
        name, sep, value = assignment.partition("=")
        if not sep or not name.startswith("DMP_"):
            parser.error(f"{assignment!r}: settings are DMP_NAME=value")
        os.environ[name] = value
    profile = Profile()
    profile.instrument()
    atexit.register(shutil.rmtree, out, ignore_errors=True)  # runs after the report (last registered, first run)
    atexit.register(profile.report, args.top)
    sys.argv = ["bytewax.run", "flows.dmp"]
    warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)  # imported above
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
