"""Helpers of the database tests: run the job as users do, read its tables back, compare them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from flows.engine.analytics.registry import streams
from flows.engine.db.database import Database
from flows.engine.db.url import DbUrl
from flows.engine.streams import OutputStream

ROOT = Path(__file__).resolve().parents[2]
# 200 s of a busy shop (the simulator's default is a week of a small one).
SMALL_SIM = {"DMP_SIM_EVENTS": "20000", "DMP_SIM_EVENTS_PER_SECOND": "100", "DMP_SIM_MALFORMED_RATE": "0.002",
             "DMP_SIM_STRAGGLER_RATE": "0.005"}
# The same 200 s of event time at 20x, about 10 s of wall time: long enough to kill it or stop its database.
# (A paced simulator cuts batches per time slice and draws the records it corrupts per batch, so its events
# differ from an unpaced run's: paced runs are compared with a paced reference.)
PACED = {**SMALL_SIM, "DMP_SIM_SPEED": "20"}
# Rows keyed by the wall clock (README "The results database"): compared apart.
WALL_CLOCK = ("monitoring",)


def env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_", "RUST_BACKTRACE"))}
    return {**clean, **settings}


def job(*args: str, flow: str = "flows.dmp") -> list[str]:
    return [sys.executable, "-m", "bytewax.run", flow, *args]


def bytewax_run(*args: str, settings: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(job(*args), cwd=ROOT, env=env(**settings), capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(settings: dict[str, str], timeout: int = 180) -> list[tuple[int, str, str]]:
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [subprocess.Popen(job("-i", str(i), "-a", addresses), cwd=ROOT, env=env(**settings),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def read_tables(url: str, names: Iterable[str] | None = None) -> dict[str, pl.DataFrame]:
    """Every stream's table as typed rows, in key order."""
    database = Database.open(DbUrl.parse(url), read_only=True)
    try:
        chosen = [s for s in streams() if names is None or s.name in names]
        return {s.name: canonical(s, database.read(s)) for s in chosen}
    finally:
        database.close()


def canonical(stream: OutputStream, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(list(stream.key), maintain_order=True)


def assert_same_tables(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    """Equal tables, but for ``monitoring``, whose rows are keyed by wall-clock intervals (each run adds its own)."""
    assert set(got) == set(expected)
    for name, frame in expected.items():
        if name not in WALL_CLOCK:
            try:
                assert_frame_equal(got[name], frame, check_exact=True)
            except AssertionError as error:
                raise AssertionError(f"table {name}: {error}") from None
