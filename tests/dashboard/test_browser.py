"""The dashboard in a real browser while a flow writes its results: headless Chromium driven by Playwright.

Debian's Chromium (/usr/bin/chromium; ``.ci/run`` installs it) runs the page served by ``python -m
flows.dashboard`` over a fresh SQLite database that a running flow (``DMP_SINK=files,db``, a paced
simulation) fills as the page is open. The test checks what a person would see: the leaderboard's top
product of the window shown as the database has it, a new window appearing without a reload within 2 s
of its commit, a planted anomaly marked on the chart with its score and direction, no console errors,
and no sideways scrolling at phone width. Screenshots (laptop and phone width) go to
``tests/artifacts/``; ``UPDATE_DOCS_SCREENSHOT=1`` also refreshes ``docs/dashboard.png``.

The flow keeps writing while the page is read, so every check reads what the page shows first and
then asks the database about that (never "the latest" twice, which can move in between).
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

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LAPTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}
# A bounded simulation of a busy shop (20 minutes of event time) with small seasons, so the detector is
# warm after 7 minutes and finds the drop the simulator plants at 8 minutes; paced at 30 simulated
# seconds a second, a leaderboard window closes every 2 s of wall time.
SIMULATION = {
    "DMP_SIM_EVENTS": "120000", "DMP_SIM_EVENTS_PER_SECOND": "100", "DMP_SIM_USERS": "20000",
    "DMP_MONITOR_INTERVAL": "1s", "DMP_TS_BUCKET": "10s", "DMP_TS_PERIOD": "10",
    "DMP_TS_SEASONS": "2", "DMP_TS_ACF_WINDOW": "20", "DMP_ANOMALY_WINDOW": "10", "DMP_TS_MA": "3",
    "DMP_SIM_ANOMALIES": "true", "DMP_SIM_SEED": "36", "DMP_SIM_ANOMALY_AFTER": "7m", "DMP_SIM_SPEED": "30",
}
SHOWN_WINDOW = "() => document.querySelector('#leaderboard-when').dataset.window || null"

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")]


def clean_env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}, **settings}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(path: Path, sql: str, *args) -> tuple | None:
    """One row of the database the flow is writing, or None while the table does not exist yet."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchone()
    except sqlite3.OperationalError:  # no file or no table yet
        return None


def latest_window(path: Path) -> str | None:
    row = query(path, 'SELECT max("window_start") FROM "leaderboard"')
    return row[0] if row else None


def top_product(path: Path, window: str) -> str:
    return query(path, 'SELECT "product_id" FROM "leaderboard" WHERE "window_start" = ? AND "rank" = 1', window)[0]


class LiveFlow:
    """``python -m bytewax.run flows.dmp`` writing the paced simulation to files and the database."""

    def __init__(self, path: Path, workdir: Path):
        self.path = path
        env = clean_env(**SIMULATION, DMP_OUT_DIR=str(workdir / "out"), DMP_SINK="files,db",
                        DMP_DB_URL=f"sqlite:///{path}")
        self.process = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_for_an_anomaly(self) -> None:
        deadline = time.monotonic() + 120
        while not (query(self.path, 'SELECT count(*) FROM "anomalies"') or (0,))[0]:
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
            assert time.monotonic() < deadline, "the flow wrote no anomaly in 120 s"
            time.sleep(0.2)

    def next_window(self) -> tuple[str, float]:
        """The next leaderboard window the flow commits, and when it was first seen (polled every 20 ms)."""
        before = latest_window(self.path)
        deadline = time.monotonic() + 60
        while (window := latest_window(self.path)) == before:
            assert self.process.poll() is None, "the flow ended before another window"
            assert time.monotonic() < deadline, "no new window in 60 s"
            time.sleep(0.02)
        assert window is not None
        return window, time.monotonic()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live")
    path = workdir / "dmp.sqlite"
    flow = LiveFlow(path, workdir)
    yield path, flow
    flow.stop()


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
    path, flow = live
    flow.wait_for_an_anomaly()
    page = browser.new_page(viewport=LAPTOP)
    console = Console(page)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    latest = latest_window(path)
    page.goto(server)

    # The leaderboard: a window at least as new as the latest when the page opened, with the top product
    # the database has for it.
    page.wait_for_function(f"w => ({SHOWN_WINDOW})() >= w", arg=latest, timeout=10_000)
    window, shown_top = page.evaluate(f"""() => [({SHOWN_WINDOW})(),
        document.querySelector('#leaderboard-table tbody tr').dataset.product]""")
    assert shown_top == top_product(path, window)
    first = page.locator("#leaderboard-table tbody tr").first
    assert first.locator("td").nth(1).inner_text() == first.get_attribute("data-product")

    # A planted anomaly, marked on its series' chart with its score and direction: the newest one the
    # table lists, clicked in the same breath as it is read (the table is redrawn as the flow writes).
    page.wait_for_selector("#anomalies-table tbody tr[data-metric]", timeout=10_000)
    clicked = page.evaluate("""() => {
        const row = document.querySelector('#anomalies-table tbody tr[data-metric]');
        row.click();
        return {...row.dataset};
    }""")
    score, direction = query(path, 'SELECT "score", "direction" FROM "anomalies" WHERE "bucket_start" = ? '
                             'AND "metric" = ? AND "category" = ?', clicked["bucket"], clicked["metric"],
                             clicked["category"])
    marker = page.locator(f"#series-chart polygon.marker[data-bucket='{clicked['bucket']}']")
    marker.wait_for(timeout=10_000)
    assert page.locator("#series-metric").input_value() == clicked["metric"]
    assert page.locator("#series-category").input_value() == clicked["category"]
    assert marker.get_attribute("data-direction") == direction and f"({direction})" in marker.text_content()
    assert float(marker.get_attribute("data-score")) == pytest.approx(score)
    assert f"score {score:.1f}" in marker.locator("title").text_content()

    # A new window appears without a reload, within 2 s of reaching the database.
    page.evaluate("window.__still_the_same_page = true")
    window, committed = flow.next_window()
    page.wait_for_function(f"w => ({SHOWN_WINDOW})() >= w", arg=window, timeout=10_000, polling=50)
    delay = time.monotonic() - committed
    assert page.evaluate("window.__still_the_same_page") is True and len(navigations) == 1
    assert delay < 2.0, f"the new window showed {delay:.2f} s after its commit"

    page.wait_for_timeout(1500)  # the other panels' redraws, for the screenshot
    laptop = screenshot(page, "laptop")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(laptop, ROOT / "docs" / "dashboard.png")

    phone = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone_console = Console(phone)
    phone.goto(server)
    phone.wait_for_function(f"w => ({SHOWN_WINDOW})() >= w", arg=window, timeout=10_000)
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
