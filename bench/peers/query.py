"""The query every peer computes, as constants the peer modules share (standard library only).

Per product, tumbling 1-minute event-time windows aligned to the epoch:
``views``, ``carts`` (add_to_cart), ``removes`` (remove_from_cart),
``purchases``, ``units`` (sum of purchase quantities, a missing one counts
1) and ``revenue`` (sum of price x quantity over purchases, a missing price
adds 0). Plus a top-10 leaderboard per window over the products with
purchases: by revenue desc, then units desc, then product_id asc as text.
Watermark: the largest event time seen minus 30 s; an event is late for a
window whose end is at or before the watermark it meets.

Every peer writes two JSON Lines outputs, ``<out>/trends/*`` and
``<out>/leaderboard/*``, with these field names; ``bench/peers/results.py``
normalises their types (times, money) before comparing.

This module is imported both by the driver (as ``bench.peers.query``) and
by the peer scripts running in their own virtualenvs (as ``query``), so it
imports nothing outside the standard library.
"""

from __future__ import annotations

WINDOW_S = 60
LATENESS_S = 30
TOP_N = 10

TREND_FIELDS = ("window_start", "window_end", "product_id", "views", "carts", "removes", "purchases", "units",
                "revenue")
BOARD_FIELDS = ("window_start", "window_end", "rank", "product_id", "revenue", "units", "purchases")
