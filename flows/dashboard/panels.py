"""The dashboard's panels: one read per JSON endpoint, over the stream tables.

In: a read-only :class:`~flows.dashboard.database.Session` and an endpoint's parsed parameters. Out: a
JSON-ready dict, always with ``message``: ``None``, or why there is nothing to show (no table yet, an
empty one, an analytic the flow does not run). Every query names tables and columns through
:class:`~flows.dashboard.database.Table` and passes values as parameters; each is bounded (``LIMIT``, or
a range of the key's leading time column, which the primary key indexes).

:data:`ENDPOINTS` declares them all (path, parameters, streams, meaning): the routes, ``GET /api/``
and the README's table come from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows.dashboard.database import Session, Table
from flows.dashboard.params import REQUIRED, Param, count, instant, name, one_of
from flows.engine.analytics.registry import analytics, stream
from flows.engine.streams import INT, TEXT

NO_RESULTS = "no results yet: start a flow with DMP_SINK including db"
SCHEMA_TABLE = "dmp_schema"

LEADERBOARD, TRENDS, FUNNEL = Table(stream("leaderboard")), Table(stream("trends")), Table(stream("funnel"))
TIMESERIES, ANOMALIES = Table(stream("timeseries")), Table(stream("anomalies"))
TRIGGERS, RECOMMENDATIONS = Table(stream("triggers")), Table(stream("recommendations"))
MONITORING, QUALITY = Table(stream("monitoring")), Table(stream("quality"))

# What moves forward as a stream's results arrive: /api/status reports its latest value per table, so the
# page refreshes only the panels whose tables changed. Leading key columns are index lookups.
PROGRESS = {
    LEADERBOARD: "window_start", TRENDS: "window_start", FUNNEL: "window_start", TIMESERIES: "bucket_start",
    ANOMALIES: "bucket_start", TRIGGERS: "triggered_at", RECOMMENDATIONS: "as_of", MONITORING: "interval_start",
    QUALITY: "as_of",
}


def absent(s: Session, table: Table) -> str | None:
    """Why a table has nothing to read, or ``None`` when it is there."""
    tables = s.tables()
    if table.stream.name in tables:
        return None
    if SCHEMA_TABLE not in tables:
        return NO_RESULTS
    if table is MONITORING:
        return "no monitoring results: the flow writing this database runs with DMP_MONITOR_INTERVAL=0"
    owner = next((a.name for a in analytics() if table.stream in a.streams), table.stream.name)
    return f"no {table.stream.name} results: the flow writing this database does not run {owner} (DMP_ANALYTICS)"


def _latest(s: Session, table: Table, column: str) -> Any:
    (row,) = s.rows(f"SELECT max({table.col(column)}) FROM {table.name}", (), [(column, table.kind(column))])
    return row[column]


def _at(s: Session, table: Table, column: str, iso: str) -> Any:
    """A time as a row gave it (ISO text) as a parameter compared with ``column``."""
    return s.time(instant(iso), table.kind(column))


def _recent(s: Session, table: Table, column: str, n: int) -> list[Any]:
    """The ``n`` latest distinct values of a (leading key) column, latest first."""
    col = table.col(column)
    found = s.rows(f"SELECT DISTINCT {col} FROM {table.name} ORDER BY {col} DESC LIMIT ?", (n,),
                   [(column, table.kind(column))])
    return [row[column] for row in found]


def status(s: Session) -> dict[str, Any]:
    """Per watched stream: whether its table exists and its latest progress value (see :data:`PROGRESS`)."""
    tables = s.tables()
    streams = {}
    for table, column in PROGRESS.items():
        present = table.stream.name in tables
        streams[table.stream.name] = {"table": present, "latest": _latest(s, table, column) if present else None}
    return {"message": None if SCHEMA_TABLE in tables or tables & {t.stream.name for t in PROGRESS} else NO_RESULTS,
            "streams": streams}


def _window_panel(s: Session, table: Table, window: Any, windows: int, what: str) -> tuple[dict[str, Any], Any]:
    """The envelope of a per-window panel and the window start to read (``None``: nothing to show)."""
    panel: dict[str, Any] = {"stream": table.stream.name, "message": absent(s, table), "window_start": None,
                             "window_end": None, "rows": [], "windows": []}
    if panel["message"]:
        return panel, None
    panel["windows"] = _recent(s, table, "window_start", windows)
    if not panel["windows"]:
        panel["message"] = f"no {table.stream.name} rows yet: {what}"
        return panel, None
    if window is not None:
        return panel, s.time(window, table.kind("window_start"))
    return panel, _at(s, table, "window_start", panel["windows"][0])


def leaderboard(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """The top products of the latest closed window (or of ``window``), and the windows before it."""
    panel, start = _window_panel(s, LEADERBOARD, p["window"], p["windows"],
                                 "a window's top products appear when it closes")
    if start is None:
        return panel
    fields = LEADERBOARD.select("window_start", "window_end", "rank", "product_id", "revenue", "units", "purchases")
    rows = s.rows(f"SELECT {fields.sql} FROM {LEADERBOARD.name} WHERE {LEADERBOARD.col('window_start')} = ? "
                  f"ORDER BY {LEADERBOARD.col('rank')}", (start,), fields.fields)
    if not rows:
        return panel | {"message": f"no leaderboard for the window starting {_shown(p['window'])}: nothing was "
                                   "bought in it, or it has not closed"}
    return _fill_window(panel, rows)


def _shown(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fill_window(panel: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    panel["window_start"], panel["window_end"] = rows[0]["window_start"], rows[0]["window_end"]
    panel["rows"] = [{k: v for k, v in row.items() if k not in ("window_start", "window_end")} for row in rows]
    return panel


def funnel(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """View -> cart -> purchase per category (``*``: all) in the latest funnel window (or ``window``)."""
    panel, start = _window_panel(s, FUNNEL, p["window"], p["windows"], "a funnel window appears when it closes")
    if start is None:
        return panel
    fields = FUNNEL.select()
    rows = s.rows(f"SELECT {fields.sql} FROM {FUNNEL.name} WHERE {FUNNEL.col('window_start')} = ?", (start,),
                  fields.fields)
    # Everything first, then the busiest categories (sorted here: '*' sorts differently under PostgreSQL collations).
    rows.sort(key=lambda r: (r["category"] != "*", -r["viewed"], r["category"]))
    if not rows:
        return panel | {"message": f"no funnel for the window starting {_shown(p['window'])}: nobody viewed "
                                   "anything in it, or it has not closed"}
    return _fill_window(panel, rows)


def products(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """Products with events in the latest ``windows`` trend windows whose id contains ``q``, best sellers first."""
    panel: dict[str, Any] = {"stream": "trends", "message": absent(s, TRENDS), "rows": []}
    if panel["message"]:
        return panel
    recent = _recent(s, TRENDS, "window_start", p["windows"])
    if not recent:
        return panel | {"message": "no trends rows yet: a window's products appear when it closes"}
    pattern = "%" + p["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    t = TRENDS
    sums = [("views", INT), ("purchases", INT), ("revenue", t.kind("revenue"))]
    panel["rows"] = s.rows(
        f"SELECT {t.col('product_id')}, sum({t.col('views')}), sum({t.col('purchases')}), sum({t.col('revenue')}) "
        f"FROM {t.name} WHERE {t.col('window_start')} >= ? AND {t.col('product_id')} LIKE ? ESCAPE '\\' "
        f"GROUP BY {t.col('product_id')} "
        f"ORDER BY sum({t.col('revenue')}) DESC, sum({t.col('views')}) DESC, {t.col('product_id')} LIMIT ?",
        (_at(s, t, "window_start", recent[-1]), pattern, p["limit"]), [("product_id", TEXT), *sums])
    return panel


def trends(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """One product's views, carts, purchases and revenue per window, over the latest ``windows`` windows."""
    panel: dict[str, Any] = {"stream": "trends", "product_id": p["product_id"], "message": absent(s, TRENDS),
                             "rows": []}
    if panel["message"]:
        return panel
    recent = _recent(s, TRENDS, "window_start", p["windows"])
    if not recent:
        return panel | {"message": "no trends rows yet: a window's products appear when it closes"}
    fields = TRENDS.select(*(c for c in TRENDS.stream.column_names if c != "product_id"))
    panel["rows"] = s.rows(
        f"SELECT {fields.sql} FROM {TRENDS.name} WHERE {TRENDS.col('window_start')} >= ? "
        f"AND {TRENDS.col('product_id')} = ? ORDER BY {TRENDS.col('window_start')}",
        (_at(s, TRENDS, "window_start", recent[-1]), p["product_id"]), fields.fields)
    if not panel["rows"]:
        panel["message"] = f"product {p['product_id']} had no events in the latest {len(recent)} windows"
    return panel


def timeseries(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """A series' latest ``buckets`` with its moving average and decomposition, and the anomalies among them."""
    panel: dict[str, Any] = {"stream": "timeseries", "metric": p["metric"], "category": p["category"],
                             "message": absent(s, TIMESERIES), "categories": [], "points": [], "anomalies": []}
    if panel["message"]:
        return panel
    t = TIMESERIES
    # A series has a row in every bucket from its first on, so the latest buckets of the table hold its
    # latest points: a range of the leading key column, however rare the series asked for.
    recent = _recent(s, t, "bucket_start", p["buckets"])
    if not recent:
        return panel | {"message": "no timeseries rows yet: a bucket appears when it closes"}
    found = s.rows(f"SELECT DISTINCT {t.col('category')} FROM {t.name} WHERE {t.col('bucket_start')} = ? "
                   f"AND {t.col('metric')} = ?", (_at(s, t, "bucket_start", recent[0]), p["metric"]),
                   [("category", TEXT)])
    panel["categories"] = sorted((r["category"] for r in found), key=lambda c: (c != "*", c))
    fields = t.select(*(c for c in t.stream.column_names if c not in ("metric", "category")))
    panel["points"] = s.rows(
        f"SELECT {fields.sql} FROM {t.name} WHERE {t.col('bucket_start')} >= ? AND {t.col('metric')} = ? "
        f"AND {t.col('category')} = ? ORDER BY {t.col('bucket_start')}",
        (_at(s, t, "bucket_start", recent[-1]), p["metric"], p["category"]), fields.fields)
    points = panel["points"]
    if not points:
        return panel | {"message": f"no {p['metric']} series for category {p['category']} in the latest "
                                   f"{len(recent)} buckets"}
    if absent(s, ANOMALIES) is None:
        a = ANOMALIES
        marks = a.select(*(c for c in a.stream.column_names if c not in ("metric", "category")))
        panel["anomalies"] = s.rows(
            f"SELECT {marks.sql} FROM {a.name} WHERE {a.col('bucket_start')} >= ? AND {a.col('metric')} = ? "
            f"AND {a.col('category')} = ? ORDER BY {a.col('bucket_start')}",
            (_at(s, a, "bucket_start", points[0]["bucket_start"]), p["metric"], p["category"]), marks.fields)
    return panel


def anomalies(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """The latest anomalies of every series, newest first."""
    panel: dict[str, Any] = {"stream": "anomalies", "message": absent(s, ANOMALIES), "rows": []}
    if panel["message"]:
        return panel
    fields = ANOMALIES.select()
    panel["rows"] = s.rows(f"SELECT {fields.sql} FROM {ANOMALIES.name} ORDER BY {ANOMALIES.col('bucket_start')} DESC, "
                           f"{ANOMALIES.col('metric')}, {ANOMALIES.col('category')} LIMIT ?", (p["limit"],),
                           fields.fields)
    if not panel["rows"]:
        panel["message"] = "no anomalies yet: a series is scored once it has a season's history"
    return panel


def triggers(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """The latest marketing triggers (of one ``type``, or all), newest first."""
    panel: dict[str, Any] = {"stream": "triggers", "message": absent(s, TRIGGERS), "rows": []}
    if panel["message"]:
        return panel
    t = TRIGGERS
    fields = t.select()
    where, params = (f"WHERE {t.col('trigger_type')} = ? ", (p["type"],)) if p["type"] else ("", ())
    panel["rows"] = s.rows(f"SELECT {fields.sql} FROM {t.name} {where}"
                           f"ORDER BY {t.col('triggered_at')} DESC, {t.col('trigger_id')} LIMIT ?",
                           (*params, p["limit"]), fields.fields)
    if not panel["rows"]:
        panel["message"] = "no triggers yet: they fire when a session with a cart closes, or a spend window does"
    return panel


def recommendations(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """A product's latest related products, best first, with their scores."""
    panel: dict[str, Any] = {"stream": "recommendations", "product_id": p["product_id"],
                             "message": absent(s, RECOMMENDATIONS), "as_of": None, "related": []}
    if panel["message"]:
        return panel
    r = RECOMMENDATIONS
    fields = r.select("as_of", "related", "scores")
    found = s.rows(f"SELECT {fields.sql} FROM {r.name} WHERE {r.col('product_id')} = ? "
                   f"ORDER BY {r.col('as_of')} DESC LIMIT 1", (p["product_id"],), fields.fields)
    if not found:
        return panel | {"message": f"no recommendations for product {p['product_id']} yet: it needs sessions "
                                   "that bought it with something else"}
    (row,) = found
    panel["as_of"] = row["as_of"]
    panel["related"] = [{"product_id": other, "score": score} for other, score in zip(row["related"], row["scores"])]
    return panel


def monitoring(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """Every worker's figures (and the ``total``'s) over the latest ``intervals`` monitoring intervals."""
    panel: dict[str, Any] = {"stream": "monitoring", "message": absent(s, MONITORING), "rows": []}
    if panel["message"]:
        return panel
    m = MONITORING
    recent = _recent(s, m, "interval_start", p["intervals"])
    if not recent:
        return panel | {"message": "no monitoring rows yet: one comes every DMP_MONITOR_INTERVAL"}
    fields = m.select()
    panel["rows"] = s.rows(f"SELECT {fields.sql} FROM {m.name} WHERE {m.col('interval_start')} >= ? "
                           f"ORDER BY {m.col('interval_start')}, {m.col('worker')}",
                           (_at(s, m, "interval_start", recent[-1]),), fields.fields)
    return panel


def quality(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    """Per window of the latest ``windows`` of one analytic: events on time, late, duplicates, dead letters
    (all its reports added)."""
    panel: dict[str, Any] = {"stream": "quality", "message": absent(s, QUALITY), "rows": []}
    if panel["message"]:
        return panel
    q = QUALITY
    start, analytic = q.col("window_start"), q.col("analytic")
    recent = s.rows(f"SELECT DISTINCT {start} FROM {q.name} WHERE {analytic} = ? ORDER BY {start} DESC LIMIT ?",
                    (p["analytic"], p["windows"]), [("window_start", q.kind("window_start"))])
    if not recent:
        return panel | {"message": f"no quality rows of {p['analytic']} yet: they come as its windows close"}
    counts = ("events", "late", "duplicates", "dead_letters", "dropped_after_idle")
    panel["rows"] = s.rows(
        f"SELECT {start}, max({q.col('window_end')}), "
        + ", ".join(f"sum({q.col(c)})" for c in counts)
        + f", count(*) FROM {q.name} WHERE {analytic} = ? AND {start} >= ? GROUP BY {start} ORDER BY {start}",
        (p["analytic"], _at(s, q, "window_start", recent[-1]["window_start"])),
        [("window_start", q.kind("window_start")), ("window_end", q.kind("window_end")),
         *((c, INT) for c in counts), ("reports", INT)])
    return panel


@dataclass(frozen=True)
class Endpoint:
    """One JSON endpoint: ``GET path`` with ``params``, reading ``streams``."""

    path: str
    summary: str
    streams: tuple[str, ...]
    params: tuple[Param, ...]
    read: Callable[[Session, dict[str, Any]], dict[str, Any]]


_WINDOW = Param("window", instant, None, "a window's start, ISO-8601 (default: the latest closed window)")
_WINDOWS = Param("windows", count(1, 500), 30, "earlier window starts listed, latest first (1-500)")
_PRODUCT = Param("product_id", name, REQUIRED, "a product id")

ENDPOINTS = (
    Endpoint("/api/status", "per stream: whether its table exists and its latest time (the page polls this)",
             tuple(t.stream.name for t in PROGRESS), (), lambda s, p: status(s)),
    Endpoint("/api/leaderboard", "the top products of the latest closed window (or `window`), and earlier windows",
             ("leaderboard",), (_WINDOW, _WINDOWS), leaderboard),
    Endpoint("/api/timeseries", "a series' latest buckets: value, moving average, trend, seasonal, residual; "
             "its anomalies; the categories", ("timeseries", "anomalies"),
             (Param("metric", one_of("revenue", "orders", "views"), "revenue", "revenue, orders or views"),
              Param("category", name, "*", "a category, or * for all"),
              Param("buckets", count(1, 10_000), 180, "latest buckets (1-10000)")), timeseries),
    Endpoint("/api/anomalies", "the latest anomalies of every series, newest first", ("anomalies",),
             (Param("limit", count(1, 500), 20, "rows (1-500)"),), anomalies),
    Endpoint("/api/products", "products of the latest trend windows whose id contains `q`, best sellers first",
             ("trends",), (Param("q", name, REQUIRED, "text the product id contains"),
                           Param("limit", count(1, 100), 10, "rows (1-100)"),
                           Param("windows", count(1, 1440), 60, "latest windows searched (1-1440)")), products),
    Endpoint("/api/trends", "one product's views, carts, purchases and revenue per window", ("trends",),
             (_PRODUCT, Param("windows", count(1, 1440), 60, "latest windows (1-1440)")), trends),
    Endpoint("/api/funnel", "view -> cart -> purchase per category in the latest funnel window (or `window`)",
             ("funnel",), (_WINDOW, _WINDOWS), funnel),
    Endpoint("/api/triggers", "the latest marketing triggers, newest first", ("triggers",),
             (Param("type", one_of("cart_abandoned", "high_value_customer"), None,
                    "cart_abandoned or high_value_customer (default: both)"),
              Param("limit", count(1, 500), 50, "rows (1-500)")), triggers),
    Endpoint("/api/recommendations", "a product's latest related products and scores", ("recommendations",),
             (_PRODUCT,), recommendations),
    Endpoint("/api/monitoring", "events/s, latency p50/p95/p99 and watermark lag per worker and in total",
             ("monitoring",), (Param("intervals", count(1, 1000), 60, "latest intervals (1-1000)"),), monitoring),
    Endpoint("/api/quality", "per window: events on time, late events, duplicates, dead letters", ("quality",),
             (Param("analytic", name, "trends", "the analytic whose windows are reported (trends, funnel, ...)"),
              Param("windows", count(1, 1000), 60, "latest windows (1-1000)")), quality),
)


def markdown_table() -> str:
    """The README's endpoint table, generated from :data:`ENDPOINTS`."""
    rows = ["| Endpoint | Parameters | Streams | Returns |", "| --- | --- | --- | --- |"]
    for e in ENDPOINTS:
        params = "; ".join(f"`{p.name}`: {p.help}" + (" (required)" if p.default is REQUIRED else
                                                        f", default `{p.default}`" if p.default is not None else "")
                           for p in e.params) or "none"
        rows.append(f"| `GET {e.path}` | {params} | {', '.join(f'`{n}`' for n in e.streams)} | {e.summary} |")
    return "\n".join(rows)
