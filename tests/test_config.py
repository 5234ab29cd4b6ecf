"""Settings: defaults, parsing, and start-up errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.dashboard.settings import DashboardSettings
from flows.engine.config import KafkaSettings, Settings, SimSettings, declared, groups, markdown_table
from flows.engine.errors import ConfigError
from flows.engine.setting import duration
from flows.engine.windows import SlidingWindow, TumblingWindow


def test_no_configuration_runs_the_simulator_into_out():
    settings = Settings.from_env({})
    assert (settings.source, settings.out_dir, settings.window_ms, settings.top_n) == ("sim", Path("out"), 60_000, 10)
    assert settings.window == TumblingWindow(60_000)
    # Dedup horizon: the lateness plus the longest window (the 1 h funnel, by default).
    assert (settings.idle_timeout_ms, settings.dedup, settings.dedup_horizon_ms) == (0, True, 3_630_000)
    assert settings.analytics == ("trends", "sessions", "funnel", "recommendations", "triggers", "timeseries",
                                  "anomalies")
    assert (settings.ts_bucket_ms, settings.ts_period, settings.anomaly_z, settings.monitor_interval_ms) == (
        600_000, 144, 5.0, 10_000)
    trends_only = settings.replace(analytics=("trends",))
    assert trends_only.dedup_horizon_ms == 90_000


def test_every_variable_is_read():
    env = {
        "DMP_SOURCE": "file",
        "DMP_INPUT": "data/*.jsonl",
        "DMP_INPUT_FORMAT": "csv",
        "DMP_OUT_DIR": "/tmp/x",
        "DMP_OUT_FORMAT": "parquet",
        "DMP_OUT_ROTATE": "64MiB",
        "DMP_WINDOW": "5m",
        "DMP_WINDOW_SLIDE": "1m",
        "DMP_ALLOWED_LATENESS": "1m30s",
        "DMP_IDLE_TIMEOUT": "15s",
        "DMP_DEDUP": "false",
        "DMP_FUTURE_TOLERANCE": "2h",
        "DMP_MAX_PRICE": "5000",
        "DMP_MAX_QUANTITY": "99",
        "DMP_MAX_LINE_VALUE": "100000",
        "DMP_DUPLICATE_FIELDS": "reject",
        "DMP_EARLIEST_EVENT_TIME": "2010-01-01T00:00:00Z",
        "DMP_CLOCK_TOLERANCE": "5m",
        "DMP_TOP_N": "3",
        "DMP_SHARDS": "4",
        "DMP_BATCH_BYTES": "65536",
        "DMP_READ_AHEAD": "0",
        "DMP_SUMMARY": "false",
        "DMP_MAX_DEAD_LETTER_SHARE": "0.2",
        "DMP_ON_DEAD_LETTER_SHARE": "fail",
        "DMP_PROGRESS": "off",
        "DMP_ANALYTICS": "sessions, trends",
        "DMP_SESSION_GAP": "20m",
        "DMP_FUNNEL_WINDOW": "2h",
        "DMP_RECO_HALF_LIFE": "3d",
        "DMP_RECO_INTERVAL": "30m",
        "DMP_RECO_TOP_K": "5",
        "DMP_RECO_NEIGHBOURS": "40",
        "DMP_RECO_BASKET_LIMIT": "12",
        "DMP_HIGH_VALUE_THRESHOLD": "2500.50",
        "DMP_HIGH_VALUE_WINDOW": "12h",
        "DMP_HIGH_VALUE_SLIDE": "30m",
        "DMP_TRIGGER_COOLDOWN": "2d",
        "DMP_SIM_PLANT": "false",
        "DMP_SIM_EVENTS": "1000",
        "DMP_SIM_SEED": "7",
        "DMP_SIM_PARTITIONS": "2",
        "DMP_SIM_USERS": "10",
        "DMP_SIM_PRODUCTS": "5",
        "DMP_SIM_EVENTS_PER_SECOND": "12.5",
        "DMP_SIM_START": "2024-05-01T00:00:00+02:00",
        "DMP_SIM_SPEED": "1",
        "DMP_SIM_DISORDER": "3s",
        "DMP_SIM_STRAGGLER_RATE": "0",
        "DMP_SIM_MALFORMED_RATE": "0.01",
        "DMP_SINK": "files,kafka,db",
        "DMP_DB_URL": "postgresql://dmp:pa%40ss@db.example.com:5432/results",
        "DMP_DB_RETRY": "30s",
        "DMP_DB_COMMIT": "250ms",
        "DMP_KAFKA_BROKERS": "k1:9092,k2:9092",
        "DMP_KAFKA_TOPIC": "shop.events",
        "DMP_KAFKA_START": "latest",
        "DMP_KAFKA_BOUNDED": "true",
        "DMP_KAFKA_END_OFFSETS": "1:50,0:40",
        "DMP_KAFKA_BATCH_MESSAGES": "1000",
        "DMP_KAFKA_OUTPUT_PREFIX": "shop.",
        "DMP_KAFKA_OUTPUT_PARTITIONS": "6",
        "DMP_KAFKA_CONNECT_TIMEOUT": "10s",
        "DMP_KAFKA_UNAVAILABLE_TIMEOUT": "5m",
        "DMP_KAFKA_ON_MISSING_OFFSET": "earliest",
        "DMP_KAFKA_MESSAGE_MAX_BYTES": "2000000",
        "DMP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DMP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "DMP_KAFKA_SASL_USERNAME": "dmp",
        "DMP_KAFKA_SASL_PASSWORD": "s3cret",
        "DMP_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        "DMP_KAFKA_SSL_CERTIFICATE_LOCATION": "/etc/cert.pem",
        "DMP_KAFKA_SSL_KEY_LOCATION": "/etc/key.pem",
        "DMP_KAFKA_SSL_KEY_PASSWORD": "k3y",
        "DMP_TS_BUCKET": "5m",
        "DMP_TS_MA": "4",
        "DMP_TS_PERIOD": "288",
        "DMP_TS_SEASONS": "2",
        "DMP_TS_ACF_WINDOW": "300",
        "DMP_ANOMALY_Z": "4.5",
        "DMP_ANOMALY_WINDOW": "30",
        "DMP_ANOMALY_MIN_EVENTS": "2",
        "DMP_MONITOR_INTERVAL": "0",
        "DMP_SIM_ANOMALIES": "true",
        "DMP_SIM_ANOMALY_AFTER": "2d",
        "DMP_DASHBOARD_HOST": "0.0.0.0",
        "DMP_DASHBOARD_PORT": "9050",
        "DMP_SIM_DURATION": "3h",
    }
    assert {s.env for s in declared()} == set(env)
    assert DashboardSettings.read(env) == DashboardSettings(host="0.0.0.0", port=9050)
    s = Settings.from_env(env)
    assert (s.source, s.input, s.input_format, s.out_dir, s.out_format, s.out_rotate_bytes) == (
        "file", "data/*.jsonl", "csv", Path("/tmp/x"), "parquet", 64 << 20)
    assert (s.window_ms, s.allowed_lateness_ms, s.top_n, s.shards, s.batch_bytes, s.read_ahead, s.summary) == (
        300_000, 90_000, 3, 4, 65_536, 0, False)
    assert (s.max_dead_letter_share, s.on_dead_letter_share, s.progress) == (0.2, "fail", "off")
    assert (s.window, s.idle_timeout_ms, s.dedup, s.dedup_horizon_ms) == (SlidingWindow(300_000, 60_000), 15_000, False, None)
    assert (s.future_tolerance_ms, s.earliest_event_ms, s.clock_tolerance_ms) == (7_200_000, 1_262_304_000_000, 300_000)
    assert (s.bounds.max_price, s.bounds.max_quantity, s.bounds.max_line_value, s.duplicate_fields) == (
        5000.0, 99, 100_000.0, "reject")
    assert (s.analytics, s.session_gap_ms, s.funnel_window_ms) == (("sessions", "trends"), 1_200_000, 7_200_000)
    assert (s.reco_half_life_ms, s.reco_interval_ms, s.reco_top_k, s.reco_neighbours, s.reco_basket_limit) == (
        259_200_000, 1_800_000, 5, 40, 12)
    assert (s.high_value_threshold, s.high_value_window_ms, s.high_value_slide_ms, s.trigger_cooldown_ms) == (
        2500.5, 43_200_000, 1_800_000, 172_800_000)
    assert (s.ts_bucket_ms, s.ts_ma, s.ts_period, s.ts_seasons, s.ts_acf_window) == (300_000, 4, 288, 2, 300)
    assert (s.anomaly_z, s.anomaly_window, s.anomaly_min_events, s.monitor_interval_ms) == (4.5, 30, 2, 0)
    sim = s.sim
    assert (sim.anomalies, sim.anomaly_after_ms) == (True, 172_800_000)
    assert sim.plant is False
    assert (sim.events, sim.seed, sim.partitions, sim.users, sim.products) == (1000, 7, 2, 10, 5)
    assert (sim.events_per_second, sim.start_ms, sim.speed, sim.disorder_ms) == (12.5, 1_714_514_400_000, 1.0, 3_000)
    assert (sim.straggler_rate, sim.malformed_rate, sim.duration_ms) == (0.0, 0.01, 10_800_000)
    kafka = s.kafka
    assert s.sinks == ("files", "kafka", "db")
    assert (s.db_url.text, s.db_url.dialect, s.db.retry_ms, s.db.commit_ms) == (
        "postgresql://dmp:pa%40ss@db.example.com:5432/results", "postgresql", 30_000, 250)
    assert (kafka.topic, kafka.start, kafka.bounded, kafka.end_offsets, kafka.batch_messages) == (
        "shop.events", "latest", True, ((0, 40), (1, 50)), 1000)
    assert (kafka.output_prefix, kafka.output_partitions) == ("shop.", 6)
    assert (kafka.connect_timeout_ms, kafka.unavailable_timeout_ms, kafka.on_missing_offset, kafka.message_max_bytes) == (
        10_000, 300_000, "earliest", 2_000_000)
    assert kafka.client_config() == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "dmp",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/cert.pem",
        "ssl.key.location": "/etc/key.pem",
        "ssl.key.password": "k3y",
    }


def test_secrets_never_show_in_settings_or_errors():
    settings = Settings.from_env({"DMP_SINK": "kafka", "DMP_KAFKA_BROKERS": "k:1", "DMP_KAFKA_SASL_PASSWORD": "s3cret",
                                  "DMP_KAFKA_SSL_KEY_PASSWORD": "k3y"})
    assert "s3cret" not in repr(settings) and "k3y" not in repr(settings)
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DMP_SINK": "kafka", "DMP_KAFKA_SASL_PASSWORD": "s3cret"})
    assert "DMP_KAFKA_BROKERS" in str(error.value) and "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DMP_WINDOW": "5 minutes"}, "DMP_WINDOW"),
        ({"DMP_WINDOW": "1500ms"}, "DMP_WINDOW"),  # windows are whole seconds
        ({"DMP_WINDOW": "0"}, "DMP_WINDOW"),
        ({"DMP_ALLOWED_LATENESS": "-1s"}, "DMP_ALLOWED_LATENESS"),
        ({"DMP_WINDOW": "5m", "DMP_WINDOW_SLIDE": "2m"}, "DMP_WINDOW_SLIDE"),  # must divide the window
        ({"DMP_WINDOW_SLIDE": "500ms"}, "DMP_WINDOW_SLIDE"),
        ({"DMP_IDLE_TIMEOUT": "soon"}, "DMP_IDLE_TIMEOUT"),
        ({"DMP_DEDUP": "perhaps"}, "DMP_DEDUP"),
        ({"DMP_TOP_N": "0"}, "DMP_TOP_N"),
        ({"DMP_TOP_N": "ten"}, "DMP_TOP_N"),
        ({"DMP_SOURCE": "kafka2"}, "DMP_SOURCE"),
        ({"DMP_SOURCE": "file"}, "DMP_INPUT"),  # file needs an input
        ({"DMP_OUT_FORMAT": "csv"}, "DMP_OUT_FORMAT"),
        ({"DMP_SUMMARY": "maybe"}, "DMP_SUMMARY"),
        ({"DMP_MAX_DEAD_LETTER_SHARE": "1.5"}, "DMP_MAX_DEAD_LETTER_SHARE"),
        ({"DMP_ON_DEAD_LETTER_SHARE": "panic"}, "DMP_ON_DEAD_LETTER_SHARE"),
        ({"DMP_PROGRESS": "sometimes"}, "DMP_PROGRESS"),
        ({"DMP_SIM_MALFORMED_RATE": "2"}, "DMP_SIM_MALFORMED_RATE"),
        ({"DMP_SIM_START": "yesterday"}, "DMP_SIM_START"),
        ({"DMP_SIM_USERS": "2", "DMP_SIM_PARTITIONS": "4"}, "DMP_SIM_USERS"),
        ({"DMP_SIM_EVENTS_PER_SECOND": "0"}, "DMP_SIM_EVENTS_PER_SECOND"),
        ({"DMP_OUT_ROTATE": "lots"}, "DMP_OUT_ROTATE"),
        ({"DMP_SOURCE": "kafka"}, "DMP_KAFKA_BROKERS"),
        ({"DMP_SINK": "kafka"}, "DMP_KAFKA_BROKERS"),
        ({"DMP_SINK": "files,s3"}, "DMP_SINK"),
        ({"DMP_KAFKA_TOPIC": "no spaces"}, "DMP_KAFKA_TOPIC"),
        ({"DMP_KAFKA_END_OFFSETS": "0=5"}, "DMP_KAFKA_END_OFFSETS"),
        ({"DMP_KAFKA_START": "middle"}, "DMP_KAFKA_START"),
        ({"DMP_ANALYTICS": "trends,clicks"}, "DMP_ANALYTICS"),
        ({"DMP_ANALYTICS": ""}, "DMP_ANALYTICS"),
        ({"DMP_SESSION_GAP": "0"}, "DMP_SESSION_GAP"),
        ({"DMP_FUNNEL_WINDOW": "90ms"}, "DMP_FUNNEL_WINDOW"),
        ({"DMP_RECO_HALF_LIFE": "0"}, "DMP_RECO_HALF_LIFE"),
        ({"DMP_RECO_TOP_K": "20", "DMP_RECO_NEIGHBOURS": "10"}, "DMP_RECO_NEIGHBOURS"),
        ({"DMP_RECO_BASKET_LIMIT": "1"}, "DMP_RECO_BASKET_LIMIT"),
        ({"DMP_HIGH_VALUE_THRESHOLD": "-5"}, "DMP_HIGH_VALUE_THRESHOLD"),
        ({"DMP_HIGH_VALUE_THRESHOLD": "nan"}, "DMP_HIGH_VALUE_THRESHOLD"),
        ({"DMP_HIGH_VALUE_SLIDE": "7h"}, "DMP_HIGH_VALUE_SLIDE"),  # must divide the 24 h window
        ({"DMP_TRIGGER_COOLDOWN": "a day"}, "DMP_TRIGGER_COOLDOWN"),
        ({"DMP_SIM_PLANT": "sometimes"}, "DMP_SIM_PLANT"),
    ],
)
def test_a_bad_value_stops_start_up_with_a_message_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_an_unknown_dmp_variable_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="DMP_WINDOWS is not a known setting; did you mean DMP_WINDOW"):
        Settings.from_env({"DMP_WINDOWS": "5m"})


def test_other_variables_are_ignored():
    assert Settings.from_env({"BYTEWAX_WORKERS_PER_PROCESS": "2", "HOME": "/root"}).source == "sim"


@pytest.mark.parametrize(
    ("text", "ms"), [("0", 0), ("500ms", 500), ("30s", 30_000), ("1m", 60_000), ("1h30m", 5_400_000), ("2d", 172_800_000)]
)
def test_durations(text, ms):
    assert duration(text) == ms


def test_the_readme_table_lists_every_variable():
    table = markdown_table()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert table in readme, "regenerate it: python -m flows.tools.docs"
    assert all(f"`{s.env}`" in table for s in declared())


def test_every_default_parses_to_the_value_the_settings_hold():
    settings = Settings()
    holders = {Settings: settings, SimSettings: settings.sim, KafkaSettings: settings.kafka,
               DashboardSettings: DashboardSettings()}  # the dashboard's own: no flow holds it
    for group in groups():
        holder = holders.get(group) or settings.group(group)
        for declared_setting in group.declared():
            text = declared_setting.default_text
            expected = declared_setting.parse(text) if text else getattr(group(), declared_setting.attr)
            assert getattr(holder, declared_setting.attr) == expected, declared_setting.env
    assert len({s.env for s in declared()}) == len(declared()), "a variable is declared twice"


def test_settings_of_an_analytic_read_flat_and_by_group():
    from flows.engine.analytics.trends import TrendSettings

    settings = Settings(window_ms=120_000, top_n=3)
    assert settings.group(TrendSettings) == TrendSettings(window_ms=120_000, top_n=3)
    assert (settings.window_ms, settings.top_n) == (120_000, 3)
    assert settings.replace(top_n=4).group(TrendSettings).top_n == 4
    with pytest.raises(TypeError, match="did you mean top_n"):
        Settings(top_m=3)


def test_the_readme_stream_table_is_the_registry_s():
    from flows.engine.analytics.registry import markdown_table as stream_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert stream_table() in readme, "regenerate it: python -m flows.tools.docs"


def test_the_ops_guide_topic_table_is_the_registry_s():
    from flows.engine.analytics.registry import topic_table

    guide = (Path(__file__).resolve().parents[1] / "README-ops.md").read_text()
    assert topic_table() in guide, "regenerate it: python -m flows.tools.docs"


def test_the_docs_tool_rewrites_a_table_and_nothing_around_it():
    from flows.tools.docs import replace_table

    text = "intro\n| A | B |\n| --- | --- |\n| old | row |\n\nafter\n"
    assert replace_table(text, "| A | B |\n| --- | --- |\n| new | row |") == (
        "intro\n| A | B |\n| --- | --- |\n| new | row |\n\nafter\n")
    with pytest.raises(LookupError, match="0 tables begin with"):
        replace_table(text, "| C |\n| --- |")


def test_the_docs_tool_finds_every_table_up_to_date(capsys):
    from flows.tools.docs import main

    assert main(["--check"]) == 0, capsys.readouterr().err
