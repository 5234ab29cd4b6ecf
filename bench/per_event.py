"""What the benchmarks share: the per-event Bytewax pieces they compare against, and running variants alone.

The per-event functions are what Bytewax's documentation teaches a user to
write: ``json.loads`` per record, a Python accumulator per window and key.
Their accumulator counts what ``trends_aggregate`` counts, so both sides do
the same work.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
TREND_SLOTS = 7  # events, views, carts, removes, purchases, units, revenue micros
SESSION_SLOTS = 4  # events, views, purchases, revenue micros


def parse(record: str | bytes) -> dict | None:
    """One JSON record -> an event dict with an aware ``ts`` (``None`` if it is not one)."""
    try:
        event = json.loads(record)
        event["ts"] = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        return event
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def add_to_trend(acc: list, event: dict) -> list:
    """Fold one event into a ``TREND_SLOTS`` accumulator."""
    acc[0] += 1
    kind = event["event_type"]
    if kind == "view":
        acc[1] += 1
    elif kind in ("add_to_cart", "cart"):
        acc[2] += 1
    elif kind == "remove_from_cart":
        acc[3] += 1
    elif kind == "purchase":
        quantity = event.get("quantity") or 1
        acc[4] += 1
        acc[5] += quantity
        acc[6] += round((event.get("price") or 0.0) * 1_000_000) * quantity
    return acc


def add_to_session(acc: list, event: dict) -> list:
    """Fold one event into a ``SESSION_SLOTS`` accumulator."""
    acc[0] += 1
    kind = event["event_type"]
    if kind == "view":
        acc[1] += 1
    elif kind == "purchase":
        acc[2] += 1
        acc[3] += round((event.get("price") or 0.0) * 1_000_000) * (event.get("quantity") or 1)
    return acc


def merge(a: list, b: list) -> list:
    return [x + y for x, y in zip(a, b)]


def run_child(script: str, *args: str) -> dict:
    """Run ``script --run ...`` in a fresh interpreter; return the JSON its last line printed."""
    done = subprocess.run([sys.executable, script, "--run", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{Path(script).name} --run {' '.join(args)} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


Name = TypeVar("Name", bound=Hashable)
Run = TypeVar("Run")


def shuffled_rounds(names: Sequence[Name], rounds: int, run: Callable[[Name], Run]) -> dict[Name, list[Run]]:
    """``run`` each name once per round, in a fresh random order each round (a drift in the load touches all)."""
    runs: dict[Name, list[Run]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in random.sample(list(names), len(names)):
            runs[name].append(run(name))
        print(f"  round {round_ + 1} of {rounds} done", file=sys.stderr, flush=True)
    return runs


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block (user + sys of this process, every thread): imports and set-up left out."""
    run: dict[str, float] = {}
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    yield run
    after = resource.getrusage(resource.RUSAGE_SELF)
    run.update(seconds=time.perf_counter() - started,
               cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
