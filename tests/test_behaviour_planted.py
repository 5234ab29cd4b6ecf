"""On simulated data, the behaviour analytics find what the simulator planted.

Two and a bit days of a small shop (``DMP_SIM_PLANT``): bundles bought
together show up in each other's top 3; each planted cart abandoner's
sessions are found and trigger once per cooldown; every big spender
triggers ``high_value_customer``.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from flows import dmp
from flows.engine.config import Settings, SimSettings
from flows.engine.sources.simulator import SimSource, abandon_sessions, planted
from flows.engine.testing import CapturedOutputs, run

HOUR = 3_600_000
DAY = 24 * HOUR


@pytest.fixture(scope="module")
def shop():
    sim = SimSettings(events=200_000, events_per_second=1.0, users=2_000, products=500, partitions=2, seed=5,
                      straggler_rate=0.0, malformed_rate=0.0)
    settings = Settings(analytics=("sessions", "recommendations", "triggers"), sim=sim, summary=False)
    captured = CapturedOutputs()
    source = SimSource(sim)
    run(dmp.build(settings, source=source, partitions=source.partitions(), outputs=captured.outputs()))
    return settings, captured


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_bundles_bought_together_are_in_each_others_top_3(shop):
    settings, captured = shop
    latest = captured.frame("recommendations").group_by("product_id").agg(pl.col("related").last())
    related = dict(latest.iter_rows())
    bundles = planted(settings.sim).bundles
    assert bundles
    for bundle in bundles:
        for product in bundle:
            top3 = related.get(product, [])[:3]
            assert set(bundle) - {product} <= set(top3), (bundle, product, related.get(product))


def test_cart_abandoners_sessions_are_found_and_trigger_once_per_cooldown(shop):
    settings, captured = shop
    sessions = captured.frame("sessions")
    triggers = captured.frame("triggers").filter(pl.col("trigger_type") == "cart_abandoned")
    reached = sessions["session_start"].map_elements(ms, return_dtype=pl.Int64).max()
    truth = abandon_sessions(settings.sim, reached - 2 * HOUR)
    abandoners = planted(settings.sim).abandoners
    assert len(abandoners) == 10
    for user in abandoners:
        found = sessions.filter(pl.col("user_id") == user)
        starts = [ms(t) for t in found["session_start"]]
        planted_starts = truth.filter(pl.col("user_id") == user)["session_start"].to_list()
        assert len(planted_starts) >= 8  # two days, one every 6 h
        assert starts[: len(planted_starts)] == planted_starts  # found, in order, as planted
        assert found["abandoned_cart"].all()
        # Once per cooldown: the first session, then the first to end a full cooldown after the last trigger.
        expected, last = [], None
        for end in (ms(t) for t in found["session_end"]):
            if last is None or end - last >= settings.trigger_cooldown_ms:
                expected.append(end)
                last = end
        fired = sorted(ms(t) for t in triggers.filter(pl.col("user_id") == user)["triggered_at"])
        assert fired == expected
        assert len(fired) >= 2 and all(b - a >= DAY for a, b in zip(fired, fired[1:]))


def test_big_spenders_trigger(shop):
    settings, captured = shop
    high = captured.frame("triggers").filter(pl.col("trigger_type") == "high_value_customer")
    spenders = set(planted(settings.sim).big_spenders)
    assert spenders and spenders <= set(high["user_id"])
    assert (high["value"] > settings.high_value_threshold).all()
    # The cooldown holds for them too: a day between a spender's triggers.
    for user in spenders:
        times = sorted(ms(t) for t in high.filter(pl.col("user_id") == user)["triggered_at"])
        assert all(b - a >= settings.trigger_cooldown_ms for a, b in zip(times, times[1:]))
