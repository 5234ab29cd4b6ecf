"""`python -m flows.dashboard` as users run it: settings checked first, one line and exit 2 when wrong."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.dashboard.panels import NO_RESULTS, markdown_table
from flows.dashboard.settings import DashboardSettings, from_env
from flows.engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def dashboard(*, code: str | None = None, timeout: float = 60, **settings: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}, **settings}
    args = ["-c", code] if code else ["-m", "flows.dashboard"]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_by_default_it_listens_on_loopback_port_8050_and_reads_out_dmp_sqlite():
    config = from_env({})
    assert (config.listen, config.db_url) == (DashboardSettings("127.0.0.1", 8050), "sqlite:///out/dmp.sqlite")
    assert config.listen.loopback and not DashboardSettings(host="0.0.0.0").loopback
    assert from_env({"DMP_OUT_DIR": "/data"}).db_url == "sqlite:////data/dmp.sqlite"
    assert from_env({"DMP_DB_URL": "postgresql://u@h/db"}).db_url == "postgresql://u@h/db"


@pytest.mark.parametrize(("settings", "line"), [
    ({"DMP_DASHBOARD_PORT": "80800"}, "dmp: DMP_DASHBOARD_PORT='80800': expected a TCP port, 1-65535; got '80800'"),
    ({"DMP_DASHBOARD_HOST": "my host"},
     "dmp: DMP_DASHBOARD_HOST='my host': expected an address to listen on, such as 127.0.0.1, 0.0.0.0 or ::1; "
     "got 'my host'"),
    ({"DMP_DASHBORD_PORT": "8051"},
     "dmp: DMP_DASHBORD_PORT is not a known setting; did you mean DMP_DASHBOARD_PORT? (see the README's table)"),
    ({"DMP_DB_URL": "mysql://dmp:s3cret@db/dmp"},  # the results database's own check, as for a flow
     "dmp: DMP_DB_URL: expected sqlite:///path/to/file.sqlite or postgresql://user:password@host:5432/database; "
     "got 'mysql://dmp:***@db/dmp'"),
    ({"DMP_DB_URL": "sqlite://dmp.sqlite"},
     "dmp: DMP_DB_URL: a SQLite URL is sqlite:/// and a file path (four slashes for an absolute one), shared by "
     "every worker, so not :memory:; got 'sqlite://dmp.sqlite'"),
])
def test_a_bad_setting_is_one_line_and_exit_2(settings, line):
    done = dashboard(**settings)
    assert (done.returncode, done.stderr, done.stdout) == (2, line + "\n", "")


def test_a_missing_package_is_one_line_and_exit_2():
    code = "import sys, runpy; sys.modules['uvicorn'] = None; runpy.run_module('flows.dashboard', run_name='__main__')"
    done = dashboard(code=code)
    assert done.returncode == 2
    assert done.stderr == ("dmp: the dashboard needs uvicorn, which is not installed: pip install starlette "
                           "uvicorn\n")


def test_a_missing_postgresql_driver_is_one_line_and_exit_2():
    code = ("import sys, runpy; sys.modules['psycopg'] = None; "
            "runpy.run_module('flows.dashboard', run_name='__main__')")
    done = dashboard(code=code, DMP_DB_URL="postgresql://u@127.0.0.1/db")
    assert (done.returncode, done.stderr) == (
        2, "dmp: DMP_DB_URL: a PostgreSQL database needs psycopg: pip install 'psycopg[binary]' psycopg-pool\n")


def test_it_serves_health_and_an_empty_state_then_stops_on_sigint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))},
           "DMP_DB_URL": f"sqlite:///{tmp_path / 'dmp.sqlite'}", "DMP_DASHBOARD_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "flows.dashboard"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == f"dmp dashboard: http://127.0.0.1:{port}/ reading {env['DMP_DB_URL']}\n"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert json.loads(answer.read()) == {"status": "ok"}
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as answer:
            assert json.loads(answer.read())["message"] == NO_RESULTS
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


def test_settings_errors_are_config_errors():
    with pytest.raises(ConfigError, match="DMP_DASHBOARD_PORT"):
        from_env({"DMP_DASHBOARD_PORT": "0"})


def test_the_readme_endpoint_table_is_the_dashboard_s():
    assert markdown_table() in (ROOT / "README.md").read_text(), "regenerate it: python -m flows.tools.docs"
