"""Reading the results back: the README's example queries in both dialects, and `python -m flows.tools.query`."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flows.engine.db.database import Database
from flows.engine.db.url import DbUrl
from flows.tools import query
from tests.db.helpers import ROOT, env

pytestmark = pytest.mark.slow
README = (ROOT / "README.md").read_text()
EXAMPLES = {(m["dialect"], m["name"]): m["sql"] for m in re.finditer(
    r"```sql\n-- (?P<dialect>sqlite|postgresql): (?P<name>[^\n]+)\n(?P<sql>.*?)```", README, re.S)}
NAMES = ("top products in a time range", "a product's trend", "conversion by category per hour")


def plain(value):
    """A value as both dialects can agree on it: amounts as floats, instants as SQLite writes them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def run(url: str, sql: str) -> list[tuple]:
    database = Database.open(DbUrl.parse(url), read_only=True)
    try:
        return [tuple(plain(v) for v in row) for row in database.query(sql)[1]]
    finally:
        database.close()


def test_the_readme_shows_three_queries_in_both_dialects():
    assert sorted(EXAMPLES) == sorted((d, n) for d in ("sqlite", "postgresql") for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_readme_query_answers_the_same_in_both_dialects(name, sqlite_reference, pg_reference):
    answer = run(sqlite_reference["url"], EXAMPLES["sqlite", name])
    assert answer, "the example finds nothing in the small simulation"
    assert answer == run(pg_reference["url"], EXAMPLES["postgresql", name])


def test_the_named_queries_answer_what_the_readme_queries_answer(reference, capsys):
    dialect = DbUrl.parse(reference["url"]).dialect
    top = run(reference["url"], EXAMPLES[dialect, "top products in a time range"])
    assert query.main(["top", "--db", reference["url"], "--from", "2024-01-01T00:00Z", "--to", "2024-01-01T01:00Z",
                       "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "product_id,revenue,units,purchases,views"
    shown = [line.split(",") for line in lines[1:]]
    assert [(p, float(r), int(u), int(n)) for p, r, u, n, _ in shown] == top


def test_the_leaderboard_at_an_instant_is_that_window_s(reference, capsys):
    assert query.main(["leaderboard", "--db", reference["url"], "--at", "2024-01-01T00:01:30Z", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    expected = reference["tables"]["leaderboard"].filter(
        reference["tables"]["leaderboard"]["window_start"].dt.strftime("%H:%M") == "00:01").sort("rank")
    assert [row.split(",")[3] for row in rows] == expected["product_id"].to_list() and rows


def test_a_product_s_trend_as_a_table(reference, capsys):
    assert query.main(["trend", "--db", reference["url"], "--product", "1000796"]) == 0
    shown = capsys.readouterr().out
    trends = reference["tables"]["trends"]
    windows = trends.filter(trends["product_id"] == "1000796").height
    assert shown.startswith("┌") and shown.rstrip().endswith(f"({windows} rows)") and "window_start" in shown


def test_conversion_per_hour_and_category(reference, capsys):
    assert query.main(["conversion", "--db", reference["url"], "--category", "*", "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The small simulation is 200 s long, from midnight: one hour, and no event before the start.
    assert [re.search(r'"hour":"2024-01-01T00:00:00', line) is not None for line in lines] == [True]
    assert all('"category":"*"' in line and '"conversion":' in line for line in lines)


def test_bad_sql_is_one_line_and_exit_status_2(sqlite_reference, capsys):
    assert query.main(["--db", sqlite_reference["url"], "SELECT nope FROM trends"]) == 2
    assert capsys.readouterr().err == f"query: {sqlite_reference['url']}: no such column: nope\n"


def test_the_tool_reads_dmp_db_url_and_writes_nothing(sqlite_reference):
    done = subprocess.run([sys.executable, "-m", "flows.tools.query", "DELETE FROM trends"], cwd=ROOT,
                          env=env(DMP_OUT_DIR=str(sqlite_reference["out"])), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "readonly" in done.stderr.replace(" ", "").lower()
    assert Path(sqlite_reference["out"], "dmp.sqlite").exists()
