"""Named queries an analyst runs against the results database, in both dialects.

In: a query's name and its parameters (times as epoch milliseconds, from
``--at 2024-01-01T10:00Z``). Out: the SQL for a dialect and the parameters
as that driver wants them. Money comes out as decimal amounts (SQLite
stores micro-units, so its queries divide by 1,000,000). ``python -m
flows.tools.query <name> ...`` runs them; the README shows the plain SQL
they grew from.

>>> sql, params = QUERIES["trend"].bind("sqlite", {"product": "1000354"})
>>> params["product"], params["since"]
('1000354', None)
>>> QUERIES["trend"].bind("postgresql", {"product": "p"})[0].count("%(product)s")
1
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

ParamKind = Literal["time", "text", "int"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    help: str
    default: Any = None
    flag: str = ""
    """The command-line flag, when it is not ``--<name>``."""


@dataclass(frozen=True)
class NamedQuery:
    """One query, written for each dialect with ``:name`` parameters."""

    name: str
    help: str
    params: tuple[Param, ...]
    sqlite: str
    postgresql: str

    def bind(self, dialect: str, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The SQL and parameters for ``dialect`` (``sqlite`` or ``postgresql``); times are epoch ms or None."""
        params = {p.name: _value(dialect, p, values.get(p.name, p.default)) for p in self.params}
        if dialect == "sqlite":
            return self.sqlite, params
        return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", self.postgresql), params


def _value(dialect: str, param: Param, value: Any) -> Any:
    if value is None or param.kind != "time":
        return value
    moment = datetime.fromtimestamp(value / 1000, timezone.utc)
    # SQLite holds window bounds as text on whole seconds, which compares as the instants do.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if dialect == "sqlite" else moment


_SINCE = Param("since", "time", "from this instant on (ISO-8601), by window start", flag="--from")
_UNTIL = Param("until", "time", "before this instant (ISO-8601), by window start", flag="--to")
_RANGE_SQLITE = "(:since IS NULL OR window_start >= :since) AND (:until IS NULL OR window_start < :until)"
_RANGE_PG = ("(CAST(:since AS timestamptz) IS NULL OR window_start >= :since) "
             "AND (CAST(:until AS timestamptz) IS NULL OR window_start < :until)")

QUERIES = {q.name: q for q in (
    NamedQuery(
        "leaderboard", "the top products of the window holding an instant (default: the latest closed window)",
        (Param("at", "time", "an instant (ISO-8601, e.g. 2024-01-01T10:00Z)"),),
        "SELECT window_start, window_end, rank, product_id, revenue / 1e6 AS revenue, units, purchases "
        "FROM leaderboard WHERE window_start = (SELECT max(window_start) FROM leaderboard "
        "WHERE :at IS NULL OR (window_start <= :at AND window_end > :at)) ORDER BY rank",
        "SELECT window_start, window_end, rank, product_id, revenue, units, purchases "
        "FROM leaderboard WHERE window_start = (SELECT max(window_start) FROM leaderboard "
        "WHERE CAST(:at AS timestamptz) IS NULL OR (window_start <= :at AND window_end > :at)) ORDER BY rank",
    ),
    NamedQuery(
        "trend", "one product's windows in time order: views, carts, purchases, revenue and its change",
        (Param("product", "text", "the product_id"), _SINCE, _UNTIL),
        "SELECT window_start, window_end, views, carts, removes, purchases, units, revenue / 1e6 AS revenue, "
        f"revenue_change / 1e6 AS revenue_change, trend FROM trends WHERE product_id = :product AND {_RANGE_SQLITE} "
        "ORDER BY window_start",
        "SELECT window_start, window_end, views, carts, removes, purchases, units, revenue, revenue_change, trend "
        f"FROM trends WHERE product_id = :product AND {_RANGE_PG} ORDER BY window_start",
    ),
    NamedQuery(
        "top", "the products with the most revenue in a time range (default: all of it)",
        (_SINCE, _UNTIL, Param("limit", "int", "how many", 10)),
        "SELECT product_id, sum(revenue) / 1e6 AS revenue, sum(units) AS units, sum(purchases) AS purchases, "
        f"sum(views) AS views FROM trends WHERE {_RANGE_SQLITE} GROUP BY product_id "
        "ORDER BY sum(revenue) DESC, sum(units) DESC, product_id LIMIT :limit",
        "SELECT product_id, sum(revenue) AS revenue, sum(units) AS units, sum(purchases) AS purchases, "
        f"sum(views) AS views FROM trends WHERE {_RANGE_PG} GROUP BY product_id "
        "ORDER BY sum(revenue) DESC, sum(units) DESC, product_id LIMIT :limit",
    ),
    NamedQuery(
        "conversion", "per hour and category: distinct users who viewed, carted, purchased, and the conversion",
        (_SINCE, _UNTIL, Param("category", "text", "one category (`*` is all of them)")),
        "SELECT strftime('%Y-%m-%dT%H:00:00Z', window_start) AS hour, category, sum(viewed) AS viewed, "
        "sum(carted) AS carted, sum(purchased) AS purchased, "
        "round(CAST(sum(purchased) AS REAL) / nullif(sum(viewed), 0), 4) AS conversion "
        f"FROM funnel WHERE {_RANGE_SQLITE} AND (:category IS NULL OR category = :category) "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT date_trunc('hour', window_start, 'UTC') AS hour, category, sum(viewed) AS viewed, "
        "sum(carted) AS carted, sum(purchased) AS purchased, "
        "round(sum(purchased)::numeric / nullif(sum(viewed), 0), 4) AS conversion "
        f"FROM funnel WHERE {_RANGE_PG} AND (CAST(:category AS text) IS NULL OR category = :category) "
        "GROUP BY 1, 2 ORDER BY 1, 2",
    ),
)}
