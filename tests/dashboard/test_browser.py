"""The dashboard in a real browser while results are being written: headless Chromium driven by Playwright.

Debian's Chromium (/usr/bin/chromium; ``.ci/run`` installs it) runs the page served by ``python -m
flows.dashboard`` over a fresh SQLite database that a live writer fills as the page is open. The test
checks what a person would see: the leaderboard's top product of the latest closed window as the
database has it, a new window appearing without a reload within 2 s of its commit, a planted anomaly
marked on the chart with its score and direction, no console errors, and no sideways scrolling at phone
width. Screenshots (laptop and phone width) go to ``tests/artifacts/``; ``UPDATE_DOCS_SCREENSHOT=1``
also refreshes ``docs/dashboard.png``.

The live writer is :class:`StandInLive` (a finished bounded run replayed into the database window by
window, through ``standin_db_writer``) until the ``DMP_SINK=db`` sink lands; then set ``LIVE =
SinkFlow`` below (one line): the same simulated run, written by the flow itself as it goes.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows.engine.analytics.registry import streams
from flows.engine.sinks.files import read_stream
from tests.dashboard.standin_db_writer import LiveWriter

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LAPTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}
# A bounded simulated run (13 minutes of event time) with small seasons, so the detector is warm after
# 7 minutes and finds the drop the simulator plants at 8 minutes.
SIMULATION = {
    "DMP_SIM_EVENTS": "80000", "DMP_MONITOR_INTERVAL": "1s", "DMP_TS_BUCKET": "10s", "DMP_TS_PERIOD": "10",
    "DMP_TS_SEASONS": "2", "DMP_TS_ACF_WINDOW": "20", "DMP_ANOMALY_WINDOW": "10", "DMP_TS_MA": "3",
    "DMP_SIM_ANOMALIES": "true", "DMP_SIM_ANOMALY_AFTER": "8m",
}

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")]


def clean_env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}, **settings}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_window(path: Path) -> tuple[str, str] | None:
    """(window_start, top product) of the latest leaderboard window, as the database has it."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute('SELECT "window_start", "product_id" FROM "leaderboard" WHERE "rank" = 1 '
                              'ORDER BY "window_start" DESC LIMIT 1').fetchone()
        except sqlite3.OperationalError:
            return None


class StandInLive:
    """STAND-IN for a flow writing with DMP_SINK=db: a finished bounded run, replayed window by window."""

    def __init__(self, path: Path, workdir: Path):
        out = workdir / "out"
        done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=clean_env(**SIMULATION, DMP_OUT_DIR=str(out)))
        assert done.returncode == 0, done.stderr
        frames = {s.name: read_stream(out, s) for s in streams()}
        self.writer = LiveWriter(f"sqlite:///{path}", frames)
        self.windows = self.writer.release_times("leaderboard")

    def start(self) -> None:
        """Everything up to the second-to-last window's close (its anomalies included)."""
        self.writer.advance_to(self.windows[-2])

    def advance(self) -> float:
        """The next window (and all else released with it); the monotonic time of its commit."""
        self.writer.advance_to(self.windows[-1])
        return time.monotonic()

    def stop(self) -> None:
        pass


class SinkFlow:
    """The same simulated run, written by the flow itself (DMP_SINK=db) at 60 simulated seconds a second."""

    def __init__(self, path: Path, workdir: Path):
        self.path = path
        env = clean_env(**SIMULATION, DMP_OUT_DIR=str(workdir / "out"), DMP_SINK="files,db",
                        DMP_DB_URL=f"sqlite:///{path}", DMP_SIM_SPEED="60")
        self.process = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def start(self) -> None:
        """Until the database has an anomaly and a few windows."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                    if db.execute('SELECT count(*) FROM "anomalies"').fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
            time.sleep(0.2)
        raise AssertionError("the flow wrote no anomaly in 120 s")

    def advance(self) -> float:
        """Wait for the flow to commit the next window; when it was first seen (polled every 20 ms)."""
        before = latest_window(self.path)
        deadline = time.monotonic() + 60
        while latest_window(self.path) == before:
            assert time.monotonic() < deadline, "no new window in 60 s"
            time.sleep(0.02)
        return time.monotonic()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# The live writer. When the DMP_SINK=db sink lands: LIVE = SinkFlow
LIVE = StandInLive


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live")
    path = workdir / "dmp.sqlite"
    writer = LIVE(path, workdir)
    yield path, writer
    writer.stop()


@contextmanager
def dashboard(db: Path) -> Iterator[str]:
    """``python -m flows.dashboard`` over ``db``, on a free port; its URL once it listens."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "flows.dashboard"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=clean_env(DMP_DB_URL=f"sqlite:///{db}", DMP_DASHBOARD_PORT=str(port)))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(live):
    with dashboard(live[0]) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_the_dashboard_follows_a_live_database(live, server, browser):
    path, writer = live
    writer.start()
    page = browser.new_page(viewport=LAPTOP)
    console = Console(page)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.goto(server)

    # The leaderboard: the top product of the latest closed window, as the database has it.
    window, top = latest_window(path)
    page.wait_for_function("w => document.querySelector('#leaderboard-when').dataset.window === w", arg=window,
                           timeout=10_000)
    first = page.locator("#leaderboard-table tbody tr").first
    assert first.get_attribute("data-product") == top
    assert first.locator("td").nth(1).inner_text() == top

    # A planted anomaly, marked on its series' chart with its score and direction.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        bucket, metric, category, score, direction = db.execute(
            'SELECT "bucket_start", "metric", "category", "score", "direction" FROM "anomalies" '
            'ORDER BY "bucket_start" DESC, "metric", "category" LIMIT 1').fetchone()
    page.locator("#anomalies-table tbody tr").first.click()  # the newest anomaly: shows its series
    marker = page.locator(f"#series-chart polygon.marker[data-bucket='{bucket}']")
    marker.wait_for(timeout=10_000)
    assert page.locator("#series-metric").input_value() == metric
    assert page.locator("#series-category").input_value() == category
    assert marker.get_attribute("data-direction") == direction and f"({direction})" in marker.text_content()
    assert float(marker.get_attribute("data-score")) == pytest.approx(score)
    assert f"score {score:.1f}" in marker.locator("title").text_content()

    # A new window appears without a reload, within 2 s of reaching the database.
    page.evaluate("window.__still_the_same_page = true")
    committed = writer.advance()
    window, top = latest_window(path)
    page.wait_for_function("w => document.querySelector('#leaderboard-when').dataset.window === w", arg=window,
                           timeout=10_000, polling=50)
    delay = time.monotonic() - committed
    assert page.evaluate("window.__still_the_same_page") is True and len(navigations) == 1
    assert page.locator("#leaderboard-table tbody tr").first.get_attribute("data-product") == top
    assert delay < 2.0, f"the new window showed {delay:.2f} s after its commit"

    page.wait_for_timeout(1500)  # the other panels' redraws, for the screenshot
    laptop = screenshot(page, "laptop")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(laptop, ROOT / "docs" / "dashboard.png")

    phone = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone_console = Console(phone)
    phone.goto(server)
    phone.wait_for_function("w => document.querySelector('#leaderboard-when').dataset.window === w", arg=window,
                            timeout=10_000)
    phone.wait_for_timeout(1500)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scrolling"
    screenshot(phone, "phone")
    assert console.errors == [] and phone_console.errors == []


def test_an_empty_database_explains_how_to_get_results(browser, tmp_path):
    with dashboard(tmp_path / "none.sqlite") as url:
        page = browser.new_page(viewport=LAPTOP)
        console = Console(page)
        page.goto(url)
        banner = page.locator("#banner")
        banner.wait_for(state="visible", timeout=10_000)
        assert banner.inner_text() == "no results yet: start a flow with DMP_SINK including db"
        assert "no results yet" in page.locator("#leaderboard .empty").inner_text()
        screenshot(page, "empty")
        assert console.errors == []
