"""Sessions, recommendations and triggers recomputed in plain Python over whole partitions.

Written from the README and the analytics' docstrings, sharing no code with
the engine; lateness and sessions come from :mod:`tests.window_oracle`.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

from tests import window_oracle as oracle


def micros(price: float | None) -> int:
    return round((price or 0.0) * 1_000_000)


def money(amount: int) -> float:
    return float(Decimal(amount) / 1_000_000)


def iso(ms: int, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}Z" if millis else "Z")


def sessions(stamped: list[oracle.Stamped], gap_ms: int, basket_limit: int) -> list[dict]:
    """Every on-time session, in release order (close, user, start), engine-level fields."""
    expected = oracle.sessions(stamped, ["user_id"], gap_ms)
    rows = []
    for (start, user), events in expected.members.items():
        kinds = [e["event_type"] for e in events]
        value = [micros(e.get("price")) * e.get("quantity", 1) for e in events]
        carted = sorted({e["product_id"] for e in events if e["event_type"] == "add_to_cart"})
        basket = sorted({e["product_id"] for e in events if e["event_type"] in ("add_to_cart", "purchase")})
        cart_micros = sum(v if k == "add_to_cart" else -v for k, v in zip(kinds, value) if k != "view" and k != "purchase")
        rows.append({
            "user_id": user,
            "start": start,
            "last": max(e["ts"] for e in events),
            "events": len(events),
            "views": kinds.count("view"),
            "carts": kinds.count("add_to_cart"),
            "removes": kinds.count("remove_from_cart"),
            "purchases": kinds.count("purchase"),
            "units": sum(e.get("quantity", 1) for e in events if e["event_type"] == "purchase"),
            "revenue_micros": sum(v for k, v in zip(kinds, value) if k == "purchase"),
            "distinct_products": len({e["product_id"] for e in events}),
            "cart_micros": max(cart_micros, 0),
            "carted": carted,
            "basket": basket[:basket_limit],
        })
    return sorted(rows, key=lambda r: (r["last"] + 2 * gap_ms, r["user_id"], r["start"]))


def session_output(row: dict) -> dict:
    """An engine-level session -> its ``sessions`` output row."""
    return {
        "user_id": row["user_id"],
        "session_start": iso(row["start"], millis=True),
        "session_end": iso(row["last"], millis=True),
        "duration_s": (row["last"] - row["start"]) / 1000,
        "events": row["events"],
        "views": row["views"],
        "carts": row["carts"],
        "removes": row["removes"],
        "purchases": row["purchases"],
        "units": row["units"],
        "revenue": money(row["revenue_micros"]),
        "distinct_products": row["distinct_products"],
        "converted": row["purchases"] > 0,
        "abandoned_cart": row["cart_micros"] > 0 and row["purchases"] == 0,
        "cart_value": money(row["cart_micros"]),
        "carted_products": row["carted"],
    }


def spend_candidates(stamped: list[oracle.Stamped], size_ms: int, slide_ms: int, threshold_micros: int) -> list[tuple]:
    """(at, user, type, value, since, products) of spend windows above the threshold."""
    purchases = [s for s in stamped if s.event["event_type"] == "purchase"]
    expected = oracle.fixed_windows(purchases, ["user_id"], size_ms, slide_ms)
    out = []
    for (start, user), events in expected.members.items():
        revenue = sum(micros(e.get("price")) * e.get("quantity", 1) for e in events)
        if revenue > threshold_micros:
            out.append((start + size_ms, user, "high_value_customer", revenue, start, None))
    return out


def cart_candidates(session_rows: list[dict]) -> list[tuple]:
    return [
        (r["last"], r["user_id"], "cart_abandoned", r["cart_micros"], r["start"], r["carted"])
        for r in session_rows
        if r["cart_micros"] > 0 and r["purchases"] == 0
    ]


def triggers(candidates: list[tuple], cooldown_ms: int) -> list[dict]:
    """Sequential cooldown per (user, type), in time order."""
    last: dict[tuple, int] = {}
    fired = []
    for at, user, kind, value, since, products in sorted(candidates, key=lambda c: (c[0], c[1], c[2])):
        before = last.get((user, kind))
        if before is not None and at - before < cooldown_ms:
            continue
        last[(user, kind)] = at
        fired.append({
            "trigger_id": hashlib.blake2b(f"{kind}|{user}|{at}".encode(), digest_size=10).hexdigest(),
            "trigger_type": kind,
            "user_id": user,
            "triggered_at": iso(at, millis=True),
            "value": money(value),
            "since": iso(since, millis=True),
            "products": products,
        })
    return fired


def recommendations(session_rows: list[dict], interval_ms: int, half_life_ms: int, top_k: int, capacity: int,
                    floor: float = 0.01) -> list[dict]:
    """Decayed co-occurrence per interval, Misra-Gries per product, cosine top K; rows of changed lists."""
    by_interval: dict[int, list[Sequence[str]]] = defaultdict(list)
    for row in session_rows:
        by_interval[row["last"] // interval_ms].append(row["basket"])
    n: dict[str, float] = {}
    co: dict[tuple[str, str], float] = {}
    emitted: dict[str, list[str]] = {}
    as_of = None
    out = []
    for interval in sorted(by_interval):
        factor = 0.5 ** ((0 if as_of is None else interval - as_of) * interval_ms / half_life_ms)
        as_of = interval
        add_n: dict[str, float] = defaultdict(float)
        add_co: dict[tuple[str, str], float] = defaultdict(float)
        for basket in by_interval[interval]:
            for a in basket:
                add_n[a] += 1.0
                for b in basket:
                    if a != b:
                        add_co[(a, b)] += 1.0
        n = {a: n.get(a, 0.0) * factor + add_n.get(a, 0.0) for a in set(n) | set(add_n)}
        n = {a: v for a, v in n.items() if v >= floor}
        co = {p: co.get(p, 0.0) * factor + add_co.get(p, 0.0) for p in set(co) | set(add_co)}
        co = {p: v for p, v in co.items() if v >= floor}
        per_product: dict[str, dict[str, float]] = defaultdict(dict)
        for (a, b), v in co.items():
            per_product[a][b] = v
        co = {}
        for a, others in per_product.items():
            if len(others) > capacity:
                cut = sorted(others.values(), reverse=True)[capacity]
                others = {b: v - cut for b, v in others.items() if v - cut > 0}
            for b, v in others.items():
                if a in n and b in n:
                    co[(a, b)] = v
        lists: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for (a, b), v in co.items():
            lists[a].append((b, v / math.sqrt(n[a] * n[b])))
        now = {a: sorted(items, key=lambda item: (-item[1], item[0]))[:top_k] for a, items in lists.items()}
        end = iso((interval + 1) * interval_ms)
        for a in sorted(set(now) | set(emitted)):
            related = [b for b, _ in now.get(a, [])]
            if a not in now and not emitted.get(a):
                continue
            if a in now and emitted.get(a) == related:
                continue
            out.append({"product_id": a, "as_of": end, "related": related, "scores": [s for _, s in now.get(a, [])]})
        emitted = {a: [b for b, _ in items] for a, items in now.items()}
    return out
