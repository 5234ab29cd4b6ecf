"""The dashboard's JSON API over SQLite and PostgreSQL: exact answers for a known input, empty states, 400s."""

from __future__ import annotations

import pytest

from flows.dashboard.database import open_database
from flows.dashboard.panels import ENDPOINTS, NO_RESULTS
from flows.engine.analytics.registry import stream
from tests.dashboard.known_rows import W0, W1, W2, create_tables, write_known

H10, H11 = "2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"
# One request per endpoint, with the parameters it requires.
REQUESTS = {e.path: e.path for e in ENDPOINTS}
REQUESTS |= {"/api/products": "/api/products?q=p", "/api/trends": "/api/trends?product_id=p1",
             "/api/recommendations": "/api/recommendations?product_id=p1"}


@pytest.fixture
def known(known_url, dashboard):
    return dashboard(known_url)


@pytest.fixture
def sqlite_known(tmp_path, dashboard):
    """For what the database does not decide (request parameters, the page): one kind is enough."""
    url = f"sqlite:///{tmp_path / 'dmp.sqlite'}"
    write_known(url)
    return dashboard(url)


def get(client, path: str, status: int = 200) -> dict:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_the_leaderboard_is_the_latest_closed_window_s_with_the_windows_before_it(known):
    assert get(known, "/api/leaderboard") == {
        "stream": "leaderboard", "message": None, "window_start": W1, "window_end": W2,
        "rows": [{"rank": 1, "product_id": "p1", "revenue": 59.97, "units": 3, "purchases": 2},
                 {"rank": 2, "product_id": "p3", "revenue": 0.5, "units": 1, "purchases": 1},
                 {"rank": 3, "product_id": "p2", "revenue": 0.1, "units": 1, "purchases": 1}],
        "windows": [W1, W0],
    }


@pytest.mark.parametrize("asked", ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00+01:00", "2024-03-01T10:00:00"])
def test_an_earlier_window_is_chosen_by_its_start_in_any_iso_form(known, asked):
    answer = get(known, f"/api/leaderboard?window={asked.replace('+', '%2B')}&windows=1")
    assert answer["rows"] == [{"rank": 1, "product_id": "p2", "revenue": 40.0, "units": 2, "purchases": 1},
                              {"rank": 2, "product_id": "p1", "revenue": 19.99, "units": 1, "purchases": 1}]
    assert (answer["window_start"], answer["window_end"], answer["windows"]) == (W0, W1, [W1])


def test_a_window_without_a_leaderboard_says_so(known):
    assert get(known, "/api/leaderboard?window=2024-03-01T09:00:00Z") == {
        "stream": "leaderboard", "window_start": None, "window_end": None, "rows": [], "windows": [W1, W0],
        "message": "no leaderboard for the window starting 2024-03-01T09:00:00Z: nothing was bought in it, or it "
                   "has not closed",
    }


def test_a_series_comes_with_its_decomposition_its_anomalies_and_the_categories(known):
    assert get(known, "/api/timeseries") == {
        "stream": "timeseries", "metric": "revenue", "category": "*", "message": None, "categories": ["*", "shoes"],
        "points": [
            {"bucket_start": W0, "bucket_end": W1, "value": 59.99, "moving_avg": None, "diff": None,
             "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": None, "seasonal": None,
             "residual": None},
            {"bucket_start": W1, "bucket_end": W2, "value": 60.57, "moving_avg": 60.28, "diff": 0.58,
             "seasonal_diff": None, "acf_1": None, "acf_period": None, "trend": 60.28, "seasonal": 0.0,
             "residual": 0.29},
        ],
        "anomalies": [{"bucket_start": W1, "bucket_end": W2, "actual": 60.57, "expected": 30.0, "residual": 30.57,
                       "score": 7.25, "direction": "up", "threshold": 5.0}],
    }


def test_a_series_shows_only_the_anomalies_of_its_buckets(known):
    answer = get(known, "/api/timeseries?metric=orders&buckets=5")
    assert [p["bucket_start"] for p in answer["points"]] == [W1]
    assert (answer["anomalies"], answer["categories"]) == ([], ["*"])  # the orders anomaly is a bucket earlier
    assert [p["bucket_start"] for p in get(known, "/api/timeseries?buckets=1")["points"]] == [W1]


def test_a_series_not_there_says_so(known):
    answer = get(known, "/api/timeseries?metric=views")
    assert (answer["message"], answer["points"], answer["categories"]) == (
        "no views series for category * in the latest 2 buckets", [], [])


def test_the_latest_anomalies_of_every_series_newest_first(known):
    assert get(known, "/api/anomalies?limit=5")["rows"] == [
        {"bucket_start": W1, "bucket_end": W2, "metric": "revenue", "category": "*", "actual": 60.57,
         "expected": 30.0, "residual": 30.57, "score": 7.25, "direction": "up", "threshold": 5.0},
        {"bucket_start": W0, "bucket_end": W1, "metric": "orders", "category": "*", "actual": 0.0, "expected": 3.0,
         "residual": -3.0, "score": -5.5, "direction": "down", "threshold": 5.0},
    ]
    assert len(get(known, "/api/anomalies?limit=1")["rows"]) == 1


def test_products_are_searched_by_a_part_of_their_id_best_sellers_first(known):
    assert get(known, "/api/products?q=p") == {"stream": "trends", "message": None, "rows": [
        {"product_id": "p1", "views": 12, "purchases": 3, "revenue": 79.96},
        {"product_id": "p2", "views": 4, "purchases": 2, "revenue": 40.1},
        {"product_id": "p3", "views": 2, "purchases": 1, "revenue": 0.5},
    ]}
    assert [r["product_id"] for r in get(known, "/api/products?q=p&windows=1&limit=2")["rows"]] == ["p1", "p3"]


@pytest.mark.parametrize("q", ["%", "_", "x_%"])
def test_search_wildcards_are_taken_literally(known, q):
    assert [r["product_id"] for r in get(known, f"/api/products?q={q.replace('%', '%25')}")["rows"]] == ["x_%"]


def test_a_product_s_trend_is_its_windows_in_order(known):
    assert get(known, "/api/trends?product_id=p1") == {"stream": "trends", "product_id": "p1", "message": None,
                                                        "rows": [
        {"window_start": W0, "window_end": W1, "views": 5, "carts": 2, "removes": 0, "purchases": 1, "units": 1,
         "revenue": 19.99, "revenue_change": 19.99, "trend": "new"},
        {"window_start": W1, "window_end": W2, "views": 7, "carts": 3, "removes": 1, "purchases": 2, "units": 3,
         "revenue": 59.97, "revenue_change": 39.98, "trend": "up"},
    ]}
    assert [r["window_start"] for r in get(known, "/api/trends?product_id=p1&windows=1")["rows"]] == [W1]


@pytest.mark.parametrize("product", ["nope", "p1' OR '1'='1", 'p1"; DROP TABLE trends; --'])
def test_an_unknown_product_has_no_trend_and_nothing_is_injected(known, product):
    answer = known.get("/api/trends", params={"product_id": product}).json()
    assert (answer["rows"], answer["message"]) == ([], f"product {product} had no events in the latest 2 windows")
    assert len(get(known, "/api/trends?product_id=p1")["rows"]) == 2


def test_the_funnel_is_everything_first_then_the_busiest_categories(known):
    assert get(known, "/api/funnel") == {
        "stream": "funnel", "message": None, "window_start": H10, "window_end": H11,
        "windows": [H10, "2024-03-01T09:00:00Z"],
        "rows": [
            {"category": "*", "viewed": 6, "carted": 2, "purchased": 1, "view_to_cart": 0.3333333333333333,
             "cart_to_purchase": 0.5, "conversion": 0.16666666666666666, "median_time_to_purchase_s": 90.5},
            {"category": "shoes", "viewed": 4, "carted": 2, "purchased": 1, "view_to_cart": 0.5,
             "cart_to_purchase": 0.5, "conversion": 0.25, "median_time_to_purchase_s": 90.5},
            {"category": "hats", "viewed": 2, "carted": 0, "purchased": 0, "view_to_cart": 0.0,
             "cart_to_purchase": None, "conversion": 0.0, "median_time_to_purchase_s": None},
        ],
    }
    assert get(known, "/api/funnel?window=2024-03-01T09:00:00Z")["rows"][0]["viewed"] == 1


def test_triggers_are_newest_first_and_filtered_by_type(known):
    t1 = {"trigger_id": "t1", "trigger_type": "cart_abandoned", "user_id": "u1",
          "triggered_at": "2024-03-01T10:00:30.250Z", "value": 19.99, "since": "2024-03-01T09:50:00.000Z",
          "products": ["p1", "p2"]}
    t2 = {"trigger_id": "t2", "trigger_type": "high_value_customer", "user_id": "u2",
          "triggered_at": "2024-03-01T11:00:00.000Z", "value": 3200.5, "since": "2024-02-29T11:00:00.000Z",
          "products": None}
    t3 = {"trigger_id": "t3", "trigger_type": "cart_abandoned", "user_id": "u3",
          "triggered_at": "2024-03-01T10:05:00.000Z", "value": 5.0, "since": "2024-03-01T10:01:00.000Z",
          "products": ["p3"]}
    assert get(known, "/api/triggers") == {"stream": "triggers", "message": None, "rows": [t2, t3, t1]}
    assert get(known, "/api/triggers?type=cart_abandoned")["rows"] == [t3, t1]
    assert get(known, "/api/triggers?limit=1")["rows"] == [t2]


def test_recommendations_are_a_product_s_latest_list(known):
    assert get(known, "/api/recommendations?product_id=p1") == {
        "stream": "recommendations", "product_id": "p1", "message": None, "as_of": H11,
        "related": [{"product_id": "p2", "score": 0.8164965809277261}, {"product_id": "p3", "score": 0.5}],
    }
    assert get(known, "/api/recommendations?product_id=p4") == {
        "stream": "recommendations", "product_id": "p4", "as_of": None, "related": [],
        "message": "no recommendations for product p4 yet: it needs sessions that bought it with something else",
    }


def test_monitoring_is_every_worker_and_the_total_over_the_latest_intervals(known):
    answer = get(known, "/api/monitoring?intervals=2")
    assert [(r["interval_start"], r["worker"]) for r in answer["rows"]] == [
        (f"2024-03-01T12:00:{s}.000Z", w) for s in ("10", "20") for w in ("0", "1", "total")]
    assert answer["rows"][-1] == {
        "interval_start": "2024-03-01T12:00:20.000Z", "interval_end": "2024-03-01T12:00:30.000Z", "worker": "total",
        "workers": 2, "records": 802, "events": 801, "events_per_s": 80.1, "dead_letters": 1, "late_events": 0,
        "latency_samples": 2, "latency_p50_ms": 12.5, "latency_p95_ms": 40.0, "latency_p99_ms": 48.0,
        "watermark": "2024-03-01T10:01:30.000Z", "watermark_lag_s": 7130.0, "live": True}


def test_quality_adds_up_every_report_of_a_window(known):
    assert get(known, "/api/quality") == {"stream": "quality", "message": None, "rows": [
        {"window_start": W0, "window_end": W1, "events": 120, "late": 3, "duplicates": 1, "dead_letters": 2,
         "dropped_after_idle": 0, "reports": 2},
        {"window_start": W1, "window_end": W2, "events": 80, "late": 1, "duplicates": 0, "dead_letters": 0,
         "dropped_after_idle": 0, "reports": 1},
    ]}
    funnel = get(known, "/api/quality?analytic=funnel")["rows"]
    assert [(r["window_start"], r["events"], r["reports"]) for r in funnel] == [(W0, 500, 1)]


def test_status_gives_each_table_s_latest_time(known, known_url):
    assert get(known, "/api/status") == {"database": known_url, "exists": True, "message": None, "streams": {
        "leaderboard": {"table": True, "latest": W1}, "trends": {"table": True, "latest": W1},
        "funnel": {"table": True, "latest": H10}, "timeseries": {"table": True, "latest": W1},
        "anomalies": {"table": True, "latest": W1},
        "triggers": {"table": True, "latest": "2024-03-01T11:00:00.000Z"},
        "recommendations": {"table": True, "latest": H11},
        "monitoring": {"table": True, "latest": "2024-03-01T12:00:20.000Z"},
        "quality": {"table": True, "latest": H11},
    }}


# -- empty states ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(REQUESTS.values()))
def test_before_any_flow_every_endpoint_says_how_to_get_results(db_url, dashboard, path):
    answer = get(dashboard(db_url), path)
    assert answer["message"] == NO_RESULTS
    assert all(not value for key, value in answer.items() if key in ("rows", "points", "windows", "related"))


def test_status_before_any_flow(db_url, dashboard):
    answer = get(dashboard(db_url), "/api/status")
    assert answer["message"] == NO_RESULTS
    assert answer["exists"] is db_url.startswith("postgresql")  # SQLite: the file is not there
    assert all(s == {"table": False, "latest": None} for s in answer["streams"].values())


def test_reading_a_missing_sqlite_file_never_creates_it(tmp_path, dashboard):
    path = tmp_path / "dmp.sqlite"
    client = dashboard(f"sqlite:///{path}")
    for request in REQUESTS.values():
        get(client, request)
    assert not path.exists()


EMPTY = {
    "/api/leaderboard": "no leaderboard rows yet: a window's top products appear when it closes",
    "/api/funnel": "no funnel rows yet: a funnel window appears when it closes",
    "/api/timeseries": "no timeseries rows yet: a bucket appears when it closes",
    "/api/anomalies": "no anomalies yet: a series is scored once it has a season's history",
    "/api/products": "no trends rows yet: a window's products appear when it closes",
    "/api/trends": "no trends rows yet: a window's products appear when it closes",
    "/api/triggers": "no triggers yet: they fire when a session with a cart closes, or a spend window does",
    "/api/recommendations": "no recommendations for product p1 yet: it needs sessions that bought it with "
                            "something else",
    "/api/monitoring": "no monitoring rows yet: one comes every DMP_MONITOR_INTERVAL",
    "/api/quality": "no quality rows of trends yet: they come as its windows close",
    "/api/status": None,
}


@pytest.mark.parametrize(("endpoint", "message"), EMPTY.items())
def test_a_flow_that_started_but_wrote_nothing_yet(db_url, dashboard, endpoint, message):
    create_tables(db_url)
    assert get(dashboard(db_url), REQUESTS[endpoint])["message"] == message


@pytest.mark.parametrize(("endpoint", "message"), [
    ("/api/funnel", "no funnel results: the flow writing this database does not run funnel (DMP_ANALYTICS)"),
    ("/api/anomalies", "no anomalies results: the flow writing this database does not run anomalies (DMP_ANALYTICS)"),
    ("/api/monitoring", "no monitoring results: the flow writing this database runs with DMP_MONITOR_INTERVAL=0"),
])
def test_a_stream_the_flow_does_not_write_is_named_with_the_setting_that_would(db_url, dashboard, endpoint, message):
    create_tables(db_url, (stream("leaderboard"), stream("trends")))
    client = dashboard(db_url)
    assert get(client, REQUESTS[endpoint])["message"] == message
    assert get(client, "/api/leaderboard")["message"] == EMPTY["/api/leaderboard"]


# -- bad requests ---------------------------------------------------------------------------------

BAD = [
    ("/api/leaderboard?windw=x", "unknown parameter 'windw'; did you mean window? (accepted: window, windows)"),
    ("/api/leaderboard?window=yesterday",
     "window='yesterday': expected an ISO-8601 time such as 2024-01-01T00:05:00Z"),
    ("/api/leaderboard?windows=0", "windows='0': expected a whole number from 1 to 500"),
    ("/api/leaderboard?windows=ten", "windows='ten': expected a whole number from 1 to 500"),
    ("/api/leaderboard?window=2024-03-01T10:00:00Z&window=2024-03-01T10:01:00Z", "window: given 2 times; give it once"),
    ("/api/trends", "product_id: required (a product id)"),
    ("/api/recommendations?product_id=", "product_id='': expected 1-200 printable characters"),
    ("/api/timeseries?metric=profit", "metric='profit': expected one of revenue, orders, views"),
    ("/api/timeseries?buckets=10001", "buckets='10001': expected a whole number from 1 to 10000"),
    ("/api/triggers?type=spam", "type='spam': expected one of cart_abandoned, high_value_customer"),
    ("/api/status?since=1", "unknown parameter 'since' (it takes none)"),
    ("/api/products?q=%00", "q='\\x00': expected 1-200 printable characters"),
]


@pytest.mark.parametrize(("path", "error"), BAD)
def test_a_bad_parameter_is_a_400_that_says_what_was_expected(sqlite_known, path, error):
    assert get(sqlite_known, path, 400) == {"error": error}


def test_unknown_paths_are_json_404s(sqlite_known):
    assert get(sqlite_known, "/api/nothing", 404) == {"error": "Not Found: /api/nothing"}


def test_the_api_index_lists_every_endpoint_and_its_parameters(sqlite_known):
    listed = get(sqlite_known, "/api/")["endpoints"]
    assert [e["path"] for e in listed] == [e.path for e in ENDPOINTS]
    trends = next(e for e in listed if e["path"] == "/api/trends")
    assert trends["params"][0] == {"name": "product_id", "help": "a product id", "required": True}


# -- the server ---------------------------------------------------------------------------------


def test_healthz_never_waits_for_the_database(dashboard):
    client = dashboard("postgresql://dmp:s3cret@127.0.0.1:1/dmp")
    assert get(client, "/healthz") == {"status": "ok"}


def test_an_unreachable_database_is_a_503_that_hides_the_password(dashboard):
    pytest.importorskip("psycopg")
    client = dashboard("postgresql://dmp:s3cret@127.0.0.1:1/dmp")
    answer = get(client, "/api/leaderboard", 503)
    assert answer == {"error": "cannot connect to postgresql://dmp:***@127.0.0.1:1/dmp (no connection within 5 s)"}


def test_the_page_and_its_files_come_from_the_dashboard_with_a_strict_policy(sqlite_known):
    known = sqlite_known
    page = known.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("dashboard.js", "charts.js", "dashboard.css"):
        assert known.get(f"/static/{name}").status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere


def test_the_dashboard_cannot_write(db_url):
    create_tables(db_url)
    db = open_database(db_url)
    try:
        with pytest.raises(Exception, match=r"(?i)read.?only"), db.session() as s:
            s.rows('CREATE TABLE "x" ("a" INTEGER)', (), ())
        with db.session() as s:
            assert "x" not in s.tables()
    finally:
        db.close()
