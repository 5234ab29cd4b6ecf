"""Ctrl-C and SIGTERM on `python -m bytewax.run flows.dmp`: a quick, quiet stop, the summary so far, 130 / 143.

And with recovery, an interrupted run resumes to the results of a run that
was never interrupted (an interrupt is not an end of input).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import ROOT, bytewax_run, env

pytestmark = pytest.mark.slow

ENDLESS = {"DMP_SIM_EVENTS": "0", "DMP_SIM_SPEED": "60"}  # a simulated minute per second, for ever
# Four minutes of a busy shop at 20x: about 12 s of wall clock, so a signal can come half-way.
PACED = {"DMP_SIM_EVENTS": "24000", "DMP_SIM_EVENTS_PER_SECOND": "100", "DMP_SIM_SPEED": "20",
         "DMP_SIM_MALFORMED_RATE": "0.002", "DMP_SIM_STRAGGLER_RATE": "0.002", "DMP_SINK": "files"}
COMPARED = ("trends", "leaderboard", "late", "dead_letters", "quality", "sessions", "funnel", "triggers",
            "timeseries", "recommendations", "quarantine")


def start(out: Path, settings: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.dmp", *args], cwd=ROOT,
        env=env(**settings, DMP_OUT_DIR=str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_results(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the run has written trends (it is well under way), or fail."""
    deadline = time.monotonic() + timeout
    trends = out / "trends" / "part-0000.jsonl"
    while not (trends.exists() and trends.stat().st_size):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trends in time"
        time.sleep(0.2)


def stop(proc: subprocess.Popen, signum: int) -> tuple[str, str, float]:
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return out, err, time.monotonic() - sent


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_signal_stops_the_run_at_once_with_the_summary_so_far(tmp_path, signum, status, workers):
    proc = start(tmp_path, ENDLESS, "-w", workers)
    wait_for_results(tmp_path, proc)
    out, err, took = stop(proc, signum)
    assert proc.returncode == status, err
    assert took < 3
    assert "dmp run summary (INTERRUPTED" in out
    assert "panic" not in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2, err  # at most a line of progress
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and summary["records"] > 0 and summary["reconciled"]
    assert {"trends", "sessions", "funnel", "triggers", "anomalies"} <= set(summary["findings"])  # what came so far
    assert re.search(r"^  trends +\S", out, re.M) and re.search(r"^  anomalies +\S", out, re.M)


def lines(out: Path, stream: str) -> list[str]:
    path = out / stream / "part-0000.jsonl"
    return sorted(path.read_text().splitlines()) if path.exists() else []


def test_an_interrupted_run_resumes_to_the_results_of_an_uninterrupted_one(tmp_path):
    whole = bytewax_run(settings={**PACED, "DMP_OUT_DIR": str(tmp_path / "whole")})
    assert whole.returncode == 0, whole.stderr
    assert re.search(r"^dmp: [\d,]+ events \([\d,]+/s\), event time 2024-01-01T00:\d\d:\d\dZ$", whole.stderr, re.M), (
        whole.stderr)  # progress: a line every 10 s when stderr is not a terminal

    recovery, out = tmp_path / "recovery", tmp_path / "resumed"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    args = ("-r", str(recovery), "-s", "1", "-b", "0")
    proc = start(out, PACED, *args)
    wait_for_results(out, proc)
    time.sleep(2)  # a few snapshots in
    _, err, _ = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    interrupted = json.loads((out / "summary.json").read_text())
    assert interrupted["interrupted"] and 0 < interrupted["records"] < 24_000

    resumed = bytewax_run(*args, settings={**PACED, "DMP_OUT_DIR": str(out)})
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "interrupted" not in summary and summary["records"] == 24_000 and summary["reconciled"]
    assert summary == json.loads((tmp_path / "whole" / "summary.json").read_text())
    for stream in COMPARED:
        assert lines(out, stream) == lines(tmp_path / "whole", stream), stream
    assert lines(out, "trends")
