"""`python -m bytewax.run flows.dmp` as users run it: one worker, several, two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "rees46-2019-oct-sample.csv"
STREAMS = ("trends", "leaderboard", "late", "dead_letters")
# Five minutes of a busy shop (the simulator's default is a week of a small one).
SMALL_SIM = {"DMP_SIM_EVENTS": "30000", "DMP_SIM_EVENTS_PER_SECOND": "100", "DMP_SIM_MALFORMED_RATE": "0.002",
             "DMP_SIM_STRAGGLER_RATE": "0.002"}

pytestmark = pytest.mark.slow


def env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    return {**clean, **settings}


def bytewax_run(*args: str, settings: dict[str, str], timeout: int = 180,
                flow: str = "flows.dmp") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bytewax.run", flow, *args],
        cwd=ROOT, env=env(**settings), capture_output=True, text=True, timeout=timeout,
    )


def outputs(out_dir: Path) -> dict[str, pl.DataFrame]:
    frames = {}
    for stream in STREAMS:
        files = sorted((out_dir / stream).glob("*.jsonl"))
        rows = [pl.read_ndjson(f) for f in files if f.stat().st_size]
        frame = pl.concat(rows) if rows else pl.DataFrame()
        frames[stream] = frame.sort(frame.columns) if frame.height else frame
    return frames


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("one")
    return bytewax_run(settings={**SMALL_SIM, "DMP_OUT_DIR": str(out)}), out


def test_the_default_job_runs_and_prints_a_reconciled_summary(one_worker):
    done, out = one_worker
    assert done.returncode == 0, done.stderr
    assert "dmp run summary" in done.stdout and "reconciled       yes" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 30_000 and summary["reconciled"]
    assert summary["dead_letters"] > 0 and summary["late"] > 0
    frames = outputs(out)
    assert all(frames[s].height for s in STREAMS)
    assert frames["dead_letters"].height == summary["dead_letters"]
    assert frames["late"].unique(["partition", "seq"]).height == summary["late"]  # a row per analytic missed


def test_the_summary_says_what_each_stream_found_in_a_few_lines(one_worker):
    done, out = one_worker
    summary = json.loads((out / "summary.json").read_text())
    streams = ("dead_letters", "late", "quality", "trends", "leaderboard", "sessions", "funnel", "recommendations",
               "triggers", "anomalies")
    assert all(name in summary["findings"] for name in streams)
    printed = done.stdout.splitlines()
    labels = {line.split()[0] for line in printed if line.startswith("  ") and not line.startswith("   ")}
    assert set(streams) <= labels  # "anomalies none": five minutes are too few buckets to score
    assert len(printed) <= 36 and max(map(len, printed)) <= 105


def test_two_workers_give_the_same_outputs(one_worker, tmp_path):
    done = bytewax_run("-w", "2", settings={**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    expected = outputs(one_worker[1])
    for stream, frame in outputs(tmp_path).items():
        assert_frame_equal(frame, expected[stream])
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads((one_worker[1] / "summary.json").read_text())


def test_rotated_output_files_hold_the_same_rows(one_worker, tmp_path):
    done = bytewax_run(settings={**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path), "DMP_OUT_ROTATE": "20kB"})
    assert done.returncode == 0, done.stderr
    # Rotation is at a write's end: this short run writes its trends in a few large writes.
    assert sorted(p.name for p in (tmp_path / "trends").iterdir())[:2] == ["part-0000-000001.jsonl", "part-0000.jsonl"]
    expected = outputs(one_worker[1])
    for stream, frame in outputs(tmp_path).items():
        assert_frame_equal(frame, expected[stream])
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads((one_worker[1] / "summary.json").read_text())


def test_two_processes_give_the_same_outputs(one_worker, tmp_path):
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    settings = env(**SMALL_SIM, DMP_OUT_DIR=str(tmp_path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.dmp", "-i", str(i), "-a", addresses],
            cwd=ROOT, env=settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sum("dmp run summary" in stdout for stdout, _ in results) == 1  # printed once, by one process
    expected = outputs(one_worker[1])
    for stream, frame in outputs(tmp_path).items():
        assert_frame_equal(frame, expected[stream])
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads((one_worker[1] / "summary.json").read_text())


def test_the_rees46_sample_file_runs_with_zero_dead_letters(tmp_path):
    done = bytewax_run(settings={"DMP_SOURCE": "file", "DMP_INPUT": str(DATA), "DMP_OUT_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["records"], summary["events"], summary["dead_letters"]) == (1000, 1000, 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"DMP_WINDOW": "soon"}, "DMP_WINDOW='soon'"),
        ({"DMP_SOURCE": "file"}, "DMP_INPUT"),
        ({"DMP_SOURCE": "file", "DMP_INPUT": "/nonexistent/*.jsonl"}, "DMP_INPUT"),
        ({"DMP_TOPN": "3"}, "did you mean DMP_TOP_N"),
    ],
)
def test_bad_configuration_fails_at_start_up_naming_the_setting(settings, message, tmp_path):
    done = bytewax_run(settings={**settings, "DMP_OUT_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.kafka
def test_kafka_mode_from_the_command_line(kafka_broker, topic_factory, tmp_path):
    from tests.conftest import read_topic

    topic = topic_factory(partitions=2)
    published = subprocess.run(
        [sys.executable, "-m", "flows.tools.produce", "--brokers", kafka_broker.bootstrap, "--topic", topic,
         "--sim", "--events", "20000", "--quiet"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120,
    )
    assert published.returncode == 0, published.stderr
    assert "published 20,000 records" in published.stdout
    done = bytewax_run(settings={
        "DMP_SOURCE": "kafka", "DMP_KAFKA_BROKERS": kafka_broker.bootstrap, "DMP_KAFKA_TOPIC": topic,
        "DMP_KAFKA_BOUNDED": "true", "DMP_SINK": "files,kafka", "DMP_KAFKA_OUTPUT_PREFIX": f"{topic}.",
        "DMP_OUT_DIR": str(tmp_path),
    })
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["records"] == 20_000 and summary["reconciled"]
    trends = read_topic(kafka_broker.bootstrap, f"{topic}.trends")
    assert len(trends) == outputs(tmp_path)["trends"].height > 0


@pytest.mark.parametrize("analytic", ["sessions", "funnel", "recommendations", "triggers", "timeseries"])
def test_each_analytic_runs_as_its_own_flow(tmp_path, analytic):
    # DMP_ANALYTICS is the module's to decide: a stray setting does not change what it runs.
    settings = {**SMALL_SIM, "DMP_OUT_DIR": str(tmp_path), "DMP_ANALYTICS": "trends"}
    done = bytewax_run(settings=settings, flow=f"flows.{analytic}")
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert {analytic, "dead_letters", "monitoring"} <= set(written)
    assert set(written) <= {analytic, "dead_letters", "monitoring", "late", "quarantine", "quality"}  # no anomaly in 5 min
    assert pl.read_ndjson(tmp_path / analytic / "part-0000.jsonl").height > 0
    assert json.loads((tmp_path / "summary.json").read_text())["reconciled"]


def test_an_output_directory_that_cannot_be_written_fails_at_start_up_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    done = bytewax_run(settings={"DMP_SIM_EVENTS": "100", "DMP_OUT_DIR": str(blocker / "out")}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"dmp: DMP_OUT_DIR='{blocker / 'out'}': cannot write the outputs there")
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_fresh_run_replaces_every_stream_s_files_even_those_it_writes_nothing_to(tmp_path):
    for stream in ("dead_letters", "anomalies", "quarantine"):  # the REES46 sample has none of these
        (tmp_path / stream).mkdir()
        (tmp_path / stream / "part-0000.jsonl").write_text('{"from": "an earlier run"}\n' * 145)
    done = bytewax_run(settings={"DMP_SOURCE": "file", "DMP_INPUT": str(DATA), "DMP_OUT_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    from flows.engine.sinks.files import read_stream

    assert json.loads((tmp_path / "summary.json").read_text())["dead_letters"] == 0
    for stream in ("dead_letters", "anomalies", "quarantine"):
        assert read_stream(tmp_path, stream).height == 0, stream
    assert read_stream(tmp_path, "trends").height > 0


@pytest.fixture
def garbage(tmp_path) -> Path:
    path = tmp_path / "garbage.jsonl"
    path.write_text("".join(f"this is not an event {i}\n" for i in range(200)))
    return path


def test_an_input_of_dead_letters_only_warns_at_the_end(tmp_path, garbage):
    done = bytewax_run(settings={"DMP_SOURCE": "file", "DMP_INPUT": str(garbage), "DMP_OUT_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    warning = (f"dmp: warning: all 200 records of input '{garbage}' were dead letters "
               "(above DMP_MAX_DEAD_LETTER_SHARE=0.5; see dead_letters)")
    assert warning in done.stderr.splitlines()
    assert "warning: all 200 records" in done.stdout  # in the summary too
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dead_letter_inputs"] == [
        {"input": str(garbage), "records": 200, "dead_letters": 200, "share": 1.0, "max_share": 0.5}]


def test_an_input_of_dead_letters_fails_the_run_when_asked_to(tmp_path, garbage):
    done = bytewax_run(settings={"DMP_SOURCE": "file", "DMP_INPUT": str(garbage), "DMP_OUT_DIR": str(tmp_path),
                                 "DMP_ON_DEAD_LETTER_SHARE": "fail"})
    assert done.returncode == 1
    assert done.stderr.startswith(f"dmp: error: all 200 records of input '{garbage}' were dead letters")
    assert "dmp run summary" in done.stdout


def test_a_share_of_dead_letters_under_the_limit_is_no_warning(tmp_path):
    done = bytewax_run(settings={"DMP_SOURCE": "file", "DMP_INPUT": str(DATA), "DMP_OUT_DIR": str(tmp_path),
                                 "DMP_MAX_DEAD_LETTER_SHARE": "0"})  # no dead letter at all: 0 is not above 0
    assert done.returncode == 0 and "warning" not in done.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["dead_letter_inputs"] == []
