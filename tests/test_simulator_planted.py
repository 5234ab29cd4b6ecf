"""The simulator's planted behaviour: bundles, cart abandoners, big spenders, and their ground truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.engine.config import Settings, SimSettings
from flows.engine.decode import decode_batch
from flows.engine.errors import ConfigError
from flows.engine.schema import RawBatch
from flows.engine.sources import SimSource
from flows.engine.sources.simulator import (
    SLICE_MS,
    Planted,
    abandon_sessions,
    generate_slices,
    make_catalog,
    planted,
    render,
)
from flows.engine.testing import drain

FIRST_USER = 500_000_000
MINUTE, HOUR = 60_000, 3_600_000

# A few minutes of busy traffic through the real source (delivery, corruption path).
SHORT = SimSettings(events=60_000, events_per_second=100.0, partitions=3, users=500, products=2_000,
                    straggler_rate=0.0, malformed_rate=0.0)
# A day and more of very quiet traffic, straight from the slices (the schedules).
LONG = SimSettings(partitions=3, users=300, products=600, events_per_second=0.01, straggler_rate=0.0,
                   malformed_rate=0.0)
LONG_SLICES = 27 * 60
LONG_END = LONG.start_ms + LONG_SLICES * SLICE_MS


def run(settings: SimSettings) -> tuple[list[bytes], pl.DataFrame]:
    """Every partition drained: the payloads, and the decoded events with their ``partition`` (int)."""
    source = SimSource(settings)
    payloads, frames = [], []
    for name in source.partitions():
        part = source.build_part("read", name, None)
        while True:
            try:
                batches = part.next_batch()
            except StopIteration:
                break
            for batch in batches:
                payloads.append(batch.payload)
                frames.append(decode_batch(batch).events.with_columns(partition=int(name.removeprefix("sim-"))))
    return payloads, pl.concat(frames)


def sliced(settings: SimSettings, slices: int) -> pl.DataFrame:
    """The decoded events of slices ``0 .. slices-1`` of every partition (no delivery order)."""
    catalog = make_catalog(settings.products, settings.seed)
    frames = []
    for partition in range(settings.partitions):
        events = generate_slices(settings, catalog, partition, 0, slices)
        payload = render(events, catalog, partition).write_ndjson().encode()
        decoded = decode_batch(RawBatch(f"sim-{partition}", payload)).events
        assert decoded.height == events.height
        frames.append(decoded.with_columns(partition=partition))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def short() -> pl.DataFrame:
    return run(SHORT)[1]


@pytest.fixture(scope="module")
def long() -> pl.DataFrame:
    return sliced(LONG, LONG_SLICES)


def bundle_sessions(events: pl.DataFrame, truth: Planted) -> pl.DataFrame:
    """Sessions that view, cart and buy exactly the products of one bundle, once each."""
    bundles = {frozenset(b): b for b in truth.bundles}
    sessions = events.group_by("session_id").agg(
        pl.col("user_id").unique(),
        pl.col("partition").first(),
        pl.col("product_id").filter(pl.col("event_type") == "purchase").alias("bought"),
        pl.col("product_id").filter(pl.col("event_type") == "add_to_cart").alias("carted"),
        pl.col("product_id").filter(pl.col("event_type") == "view").alias("viewed"),
        pl.len().alias("events"),
    )
    return sessions.filter(
        pl.col("bought").map_elements(lambda b: frozenset(b) in bundles and len(b) == len(set(b)),
                                      return_dtype=pl.Boolean)
        & (pl.col("bought").list.sort() == pl.col("carted").list.sort())
        & (pl.col("bought").list.sort() == pl.col("viewed").list.sort())
        & (pl.col("events") == 3 * pl.col("bought").list.len())
    )


# -- ground truth ----------------------------------------------------------------------------


def test_the_ground_truth_names_five_bundles_ten_abandoners_and_five_big_spenders():
    truth = planted(SHORT)
    assert truth.abandoners == tuple(str(599_000_000 + j) for j in range(10))
    assert truth.big_spenders == tuple(str(599_000_100 + j) for j in range(5))
    assert len(truth.bundles) == 5 and all(2 <= len(b) <= 3 for b in truth.bundles)
    products = [p for b in truth.bundles for p in b]
    assert len(set(products)) == len(products)  # distinct within and across bundles
    # Mid-popularity: not the bestsellers, not the long tail.
    catalog = make_catalog(SHORT.products, SHORT.seed)
    ranked = catalog.product_id.gather(np.argsort(-catalog.popularity, kind="stable")).cast(pl.String).to_list()
    assert all(50 <= ranked.index(p) < 500 for p in products)


def test_the_plan_is_a_function_of_the_seed():
    assert planted(SHORT) == planted(SimSettings(**{**SHORT.__dict__, "events": 5, "partitions": 7}))
    assert planted(SHORT).bundles != planted(SimSettings(**{**SHORT.__dict__, "seed": 43})).bundles


def test_abandon_sessions_follow_the_schedule():
    until = SHORT.start_ms + 13 * HOUR
    sessions = abandon_sessions(SHORT, until)
    assert sessions.schema == pl.Schema({"user_id": pl.String, "session_start": pl.Int64})
    assert sessions["session_start"].is_sorted() and (sessions["session_start"] < until).all()
    expected = sorted(
        (SHORT.start_ms + j * 17 * MINUTE + k * 6 * HOUR, str(599_000_000 + j))
        for j in range(10)
        for k in range(3)
        if SHORT.start_ms + j * 17 * MINUTE + k * 6 * HOUR < until
    )
    assert list(zip(sessions["session_start"], sessions["user_id"])) == expected
    assert abandon_sessions(SHORT, SHORT.start_ms).height == 0


def test_without_planting_there_is_no_ground_truth():
    off = SimSettings(**{**SHORT.__dict__, "plant": False})
    assert planted(off) == Planted((), (), ())
    assert abandon_sessions(off, off.start_ms + 24 * HOUR).height == 0


# -- settings --------------------------------------------------------------------------------


def test_planting_is_on_by_default_and_read_from_dmp_sim_plant():
    assert SimSettings().plant is True and Settings.from_env({}).sim.plant is True
    assert Settings.from_env({"DMP_SIM_PLANT": "false"}).sim.plant is False
    assert Settings.from_env({"DMP_SIM_PLANT": "1"}).sim.plant is True
    with pytest.raises(ConfigError, match="DMP_SIM_PLANT"):
        Settings.from_env({"DMP_SIM_PLANT": "sometimes"})
    with pytest.raises(ConfigError, match="DMP_SIM_PLANT"):
        Settings(sim=SimSettings(plant="yes"))  # type: ignore[arg-type]


# -- determinism and the ordinary traffic ----------------------------------------------------


def test_planted_runs_are_deterministic():
    first, events = run(SHORT)
    again, _ = run(SHORT)
    assert first == again
    assert events.filter(pl.col("user_id").is_in(planted(SHORT).abandoners + planted(SHORT).big_spenders)).height > 0


def test_without_planting_the_ordinary_traffic_is_untouched(short: pl.DataFrame):
    off_settings = SimSettings(**{**SHORT.__dict__, "plant": False})
    _, off = run(off_settings)
    # Exactly the requested records, none of them planted.
    assert off.group_by("partition").len().sort("partition")["len"].to_list() == [20_000] * 3
    assert not off["user_id"].cast(pl.Int64).ge(599_000_000).any()
    assert bundle_sessions(off, planted(SHORT)).height == 0
    # Planting adds sessions: every ordinary event is the same event either way ...
    both = off.join(short, on="event_id", how="inner", suffix="_on")
    assert both.height > 0.9 * off.height
    for column in off.columns:
        if column != "event_id":
            assert both[column].eq_missing(both[f"{column}_on"]).all(), column
    # ... what only the planted run has are the planted sessions (bundle ones perhaps cut short
    # by the quota) ...
    truth = planted(SHORT)
    extra = short.join(off, on="event_id", how="anti")
    assert extra.height > 0
    not_planted_users = extra.filter(~pl.col("user_id").is_in(truth.abandoners + truth.big_spenders))
    products = short.filter(pl.col("session_id").is_in(not_planted_users["session_id"].unique().to_list()))
    bundles = [set(b) for b in truth.bundles]
    for session in products.group_by("session_id").agg("product_id")["product_id"]:
        assert any(set(session) <= bundle for bundle in bundles), session
    # ... and what it lacks is the end the planted events took the place of (the quota).
    last = short.group_by("partition").agg(pl.col("ts").max().alias("last"))
    missing = off.join(short, on="event_id", how="anti").join(last, on="partition")
    assert (missing["ts"] >= missing["last"] - SHORT.disorder_ms).all()


# -- the planted behaviours ------------------------------------------------------------------


def test_bundles_are_bought_together_in_one_short_session(short: pl.DataFrame):
    truth = planted(SHORT)
    found = bundle_sessions(short, truth)
    per_bundle = found.group_by(pl.col("bought").list.sort()).len()
    assert per_bundle.height == 5 and per_bundle["len"].min() >= 5
    # About 0.5% of the ordinary sessions (counting those that start well before the run ends).
    starts = short.group_by("session_id").agg(pl.col("ts").min().alias("start"), pl.col("user_id").first())
    cutoff = short.group_by("partition").agg(pl.col("ts").max())["ts"].min() - 5 * MINUTE
    early = starts.filter(pl.col("start") < cutoff)
    ordinary = early.filter(pl.col("user_id").cast(pl.Int64) < 599_000_000)
    bundled = early.filter(pl.col("session_id").is_in(found["session_id"].to_list()))
    assert 0.0035 < bundled.height / (ordinary.height - bundled.height) < 0.0065
    # One ordinary user, each product viewed, then carted, then bought (one unit), within minutes.
    assert (found["user_id"].list.len() == 1).all()
    assert (found["user_id"].list.first().cast(pl.Int64) < 599_000_000).all()
    sessions = short.filter(pl.col("session_id").is_in(found["session_id"].to_list()))
    span = sessions.group_by("session_id").agg((pl.col("ts").max() - pl.col("ts").min()).alias("span"))
    assert span["span"].max() < 5 * MINUTE
    steps = sessions.pivot("event_type", index=["session_id", "product_id"], values="ts", aggregate_function="first")
    assert ((steps["view"] < steps["add_to_cart"]) & (steps["add_to_cart"] < steps["purchase"])).all()
    assert (sessions.filter(pl.col("event_type") == "purchase")["quantity"] == 1).all()


def test_bundles_are_planted_in_quiet_runs_too(long: pl.DataFrame):
    found = bundle_sessions(long, planted(LONG))
    assert found.height > 0.5 * 0.02 * LONG_SLICES * LONG.partitions  # at least 0.02 per slice and partition


def test_cart_abandoners_cart_but_never_buy_on_their_schedule(long: pl.DataFrame):
    truth = planted(LONG)
    events = long.filter(pl.col("user_id").is_in(truth.abandoners))
    assert set(events["event_type"].cast(pl.String)) == {"view", "add_to_cart"}
    sessions = (
        events.group_by("session_id")
        .agg(
            pl.col("user_id").first(),
            pl.col("ts").min().alias("session_start"),
            (pl.col("ts").max() - pl.col("ts").min()).alias("span"),
            (pl.col("event_type") == "view").sum().alias("views"),
            (pl.col("event_type") == "add_to_cart").sum().alias("carts"),
            pl.col("product_id").filter(pl.col("event_type") == "view").alias("viewed"),
            pl.col("product_id").filter(pl.col("event_type") == "add_to_cart").alias("carted"),
            pl.col("user_id").n_unique().alias("users"),
        )
        .sort("session_start", "user_id")
    )
    # Exactly the sessions of the ground truth, each user every 6 hours.
    expected = abandon_sessions(LONG, LONG_END)
    assert expected.height == 10 * 5  # 27 hours: sessions at 0, 6, 12, 18 and 24 h (+ j * 17 m) each
    assert_frame_equal(sessions.select("user_id", "session_start"), expected)
    assert (sessions["users"] == 1).all() and sessions["span"].max() < 5 * MINUTE
    assert sessions["views"].is_between(1, 3).all() and sessions["carts"].is_between(1, 2).all()
    assert (sessions["carts"] <= sessions["views"]).all()
    assert all(set(c) <= set(v) for c, v in zip(sessions["carted"], sessions["viewed"]))


def test_big_spenders_buy_something_dear_every_two_hours(long: pl.DataFrame):
    truth = planted(LONG)
    events = long.filter(pl.col("user_id").is_in(truth.big_spenders)).sort("ts")
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert (purchases["price"] >= 500).all() and (purchases["quantity"] == 1).all()
    for j, user in enumerate(truth.big_spenders):
        mine = purchases.filter(pl.col("user_id") == user)
        # The view, a minute before the purchase, starts the session: it belongs to a generated slice.
        expected = [
            LONG.start_ms + j * 11 * MINUTE + k * 2 * HOUR + MINUTE
            for k in range(20)
            if LONG.start_ms + j * 11 * MINUTE + k * 2 * HOUR < LONG_END
        ]
        assert mine["ts"].to_list() == expected
        # Over any 24 hours, at least 6,000 spent.
        ts, spent = mine["ts"].to_numpy(), (mine["price"] * mine["quantity"]).to_numpy()
        for start in ts[ts + 24 * HOUR <= LONG_END]:
            assert spent[(ts >= start) & (ts < start + 24 * HOUR)].sum() >= 6_000
    # Each purchase: viewed a minute before and carted half a minute before, in one session.
    steps = events.pivot("event_type", index=["session_id", "product_id"], values="ts", aggregate_function="first")
    assert steps.height == purchases.height == events.height // 3
    assert (steps["purchase"] - steps["view"] == MINUTE).all()
    assert (steps["purchase"] - steps["add_to_cart"] == MINUTE // 2).all()


def test_nothing_planted_comes_before_the_start(short: pl.DataFrame, long: pl.DataFrame):
    for events, settings in ((short, SHORT), (long, LONG)):
        assert events["ts"].min() >= settings.start_ms
    first = long.filter(pl.col("user_id") == planted(LONG).big_spenders[0]).sort("ts").head(3)
    assert first["event_type"].cast(pl.String).to_list() == ["view", "add_to_cart", "purchase"]
    assert first["ts"].to_list() == [LONG.start_ms, LONG.start_ms + MINUTE // 2, LONG.start_ms + MINUTE]


def test_a_users_events_all_come_from_the_users_partition(short: pl.DataFrame, long: pl.DataFrame):
    for events, settings in ((short, SHORT), (long, LONG)):
        home = (pl.col("user_id").cast(pl.Int64) - FIRST_USER) % settings.partitions
        assert events.select(home == pl.col("partition")).to_series().all()
    # The planted users are spread over the partitions.
    planted_users = planted(LONG).abandoners + planted(LONG).big_spenders
    assert long.filter(pl.col("user_id").is_in(planted_users))["partition"].n_unique() == LONG.partitions


def test_planted_partitions_resume_exactly_after_a_snapshot():
    import pickle

    settings = SimSettings(**{**SHORT.__dict__, "events": 90_000, "malformed_rate": 0.01, "straggler_rate": 0.01})
    source = SimSource(settings)
    part = source.build_part("read", "sim-0", None)
    head = part.next_batch()
    tail_part = source.build_part("read", "sim-0", pickle.loads(pickle.dumps(part.snapshot())))
    whole_part = source.build_part("read", "sim-0", None)

    tail = [b.payload for b in drain(tail_part)]
    assert head and tail and [b.payload for b in head] + tail == [b.payload for b in drain(whole_part)]


@pytest.mark.parametrize("products", [1, 2, 5, 12])
def test_small_catalogs_still_plant_sensibly(products: int):
    settings = SimSettings(events=2_000, partitions=2, users=40, products=products, seed=3, events_per_second=5.0,
                           malformed_rate=0.0)
    truth = planted(settings)
    assert all(len(set(b)) == len(b) >= 2 for b in truth.bundles)
    assert len(truth.bundles) == (0 if products == 1 else 5)
    _, events = run(settings)
    big = events.filter(pl.col("user_id").is_in(truth.big_spenders) & (pl.col("event_type") == "purchase"))
    assert big.height > 0 and (big["price"] * big["quantity"] >= 500).all()
