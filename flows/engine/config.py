"""Settings: one frozen, validated object read from ``DMP_*`` variables.

In: a mapping of environment variables (``os.environ`` by default).
Out: a :class:`Settings`, or a :class:`~flows.engine.errors.ConfigError`
whose message names the variable at fault. Unknown ``DMP_*`` variables
are errors too (with a did-you-mean), so a typo never silently falls back
to a default.

Every variable is declared once, as a field of a settings group
(:mod:`flows.engine.setting`): the engine's own here, the simulator's and
Kafka's here, and each analytic's in its own module (found through the
analytic registry). The README's table is printed from the declarations
(``python -m flows.engine.config``). Bytewax's own knobs (workers,
recovery, snapshots) stay ``BYTEWAX_*``.

``Settings`` reads flat: ``Settings(window_ms=60_000, top_n=3)`` and
``settings.window_ms`` reach the trends group, as ``settings.group(TrendSettings)``
does with types.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from flows.engine.bounds import Bounds
from flows.engine.db.url import DbUrl
from flows.engine.errors import ConfigError
from flows.engine.screen import Screen
from flows.engine.setting import (
    Group,
    Setting,
    at_least,
    boolean,
    choice,
    choices,
    duration,
    fraction,
    instant,
    integer,
    matching,
    number,
    optional,
    positive,
    setting,
    size,
    text,
)

SourceKind = Literal["sim", "file", "kafka"]
SinkKind = Literal["files", "kafka", "db"]
SINK_KINDS = ("files", "kafka", "db")
SINK_EXAMPLE = "some of files, kafka and db, such as files,db or kafka,db"
InputFormat = Literal["auto", "jsonl", "csv"]
OutputFormat = Literal["jsonl", "parquet"]

G = TypeVar("G", bound=Group)


def _analytic_names() -> tuple[str, ...]:
    from flows.engine.analytics.registry import names

    return names()


def _all_analytics() -> str:
    return ",".join(_analytic_names())


def _share(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"expected a share from 0 to 1; got {value!r}"


def _end_offsets(value: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        partition, _, offset = part.partition(":")
        if not partition.isdigit() or not offset.isdigit():
            msg = f"expected partition:offset pairs such as 0:1200,1:980; got {part!r}"
            raise ValueError(msg)
        pairs.append((int(partition), int(offset)))
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class SimSettings(Group):
    """The built-in shop simulator (``DMP_SOURCE=sim``)."""

    title = "Simulator"

    events: int | None = setting("DMP_SIM_EVENTS", "", optional(integer),
                                  "Records the simulator emits over all partitions, then it stops (`0`: never); "
                                  "unset: it runs for `DMP_SIM_DURATION`", at_least(0))
    duration_ms: int = setting("DMP_SIM_DURATION", "7d", duration,
                                "Event time a run covers when `DMP_SIM_EVENTS` is unset: every partition stops "
                                "at `DMP_SIM_START` plus this, so the last windows are whole; `0` runs forever")
    seed: int = setting("DMP_SIM_SEED", "42", integer, "Seed; the same seed gives the same events", at_least(0))
    partitions: int = setting("DMP_SIM_PARTITIONS", "4", integer,
                               "Source partitions (users are spread over them, like a topic keyed by user)",
                               at_least(1))
    users: int = setting("DMP_SIM_USERS", "100000", integer, "Distinct shoppers", at_least(1))
    products: int = setting("DMP_SIM_PRODUCTS", "2000", integer, "Catalog size", at_least(1))
    events_per_second: float = setting("DMP_SIM_EVENTS_PER_SECOND", "1", number,
                                        "Average event rate in event time (follows a daily cycle)", positive)
    start_ms: int = setting("DMP_SIM_START", "2024-01-01T00:00:00Z", instant,
                             "Event time of the simulation's start (ISO-8601, or `now`)")
    speed: float = setting("DMP_SIM_SPEED", "0", number,
                            "Event-time seconds per wall-clock second; `0` is as fast as possible, `1` is live",
                            at_least(0))
    disorder_ms: int = setting("DMP_SIM_DISORDER", "20s", duration,
                                "Largest delivery delay of ordinary events (bounded out-of-order delivery)")
    straggler_rate: float = setting("DMP_SIM_STRAGGLER_RATE", "0.0005", number,
                                     "Fraction of events delivered up to 10 minutes late (they show up as `late`)",
                                     fraction)
    malformed_rate: float = setting("DMP_SIM_MALFORMED_RATE", "0.0005", number,
                                     "Fraction of records the simulator corrupts (they show up as `dead_letters`)",
                                     fraction)
    plant: bool = setting("DMP_SIM_PLANT", "true", boolean,
                           "Plant known behaviour for the analytics to find: products bought together, "
                           "cart abandoners, big spenders (see the simulator's docstring)")
    anomalies: bool = setting("DMP_SIM_ANOMALIES", "true", boolean,
                               "Plant traffic anomalies with known labels: spikes, drops and one level shift "
                               "(see the simulator's docstring)")
    anomaly_after_ms: int = setting("DMP_SIM_ANOMALY_AFTER", "4d12h", duration,
                                     "Planted anomalies begin this long after the start (the detector's warm-up: "
                                     "`DMP_TS_SEASONS`+1 periods and `DMP_ANOMALY_WINDOW`)")

    def check(self) -> None:
        if not isinstance(self.plant, bool):
            raise ConfigError(f"DMP_SIM_PLANT: expected true or false; got {self.plant!r}")
        if self.users < self.partitions:
            raise ConfigError(f"DMP_SIM_USERS: must be at least DMP_SIM_PARTITIONS ({self.partitions})")


@dataclass(frozen=True)
class KafkaSettings(Group):
    """Kafka in (``DMP_SOURCE=kafka``) and out (``DMP_SINK`` containing ``kafka``)."""

    title = "Kafka"

    brokers: str | None = setting("DMP_KAFKA_BROKERS", "", text,
                                   "Bootstrap servers (`host:port,...`); required for Kafka in or out")
    topic: str = setting("DMP_KAFKA_TOPIC", "events",
                          matching(r"[A-Za-z0-9._-]{1,249}", "a Kafka topic name is 1-249 characters of letters, "
                                   "digits, '.', '_' and '-'"),
                          "Topic the events are read from")
    start: Literal["earliest", "latest"] = setting("DMP_KAFKA_START", "earliest", choice("earliest", "latest"),
                                                    "Where a partition starts when there is no snapshot to resume from")
    bounded: bool = setting("DMP_KAFKA_BOUNDED", "false", boolean,
                             "Stop at the end of every partition (partition EOF; for replays and tests)")
    end_offsets: tuple[tuple[int, int], ...] = setting(
        "DMP_KAFKA_END_OFFSETS", "", _end_offsets,
        "Bounded mode with explicit ends, `partition:offset,...` (stop before each offset)", unset=())
    batch_messages: int = setting("DMP_KAFKA_BATCH_MESSAGES", "50000", integer,
                                   "Most messages a partition hands over as one batch", at_least(1))
    output_prefix: str = setting("DMP_KAFKA_OUTPUT_PREFIX", "dmp.", text,
                                  "Output topics are `<prefix><stream>`, e.g. `dmp.trends`, `dmp.dead_letters`")
    output_partitions: int = setting("DMP_KAFKA_OUTPUT_PARTITIONS", "3", integer,
                                      "Partitions of output topics created at start-up when they do not exist",
                                      at_least(1))
    connect_timeout_ms: int = setting("DMP_KAFKA_CONNECT_TIMEOUT", "5s", duration,
                                       "How long start-up waits for the brokers' first answer before it stops, "
                                       "naming `DMP_KAFKA_BROKERS`", positive)
    unavailable_timeout_ms: int = setting("DMP_KAFKA_UNAVAILABLE_TIMEOUT", "2m", duration,
                                           "A source or sink that hears nothing from the brokers this long stops the "
                                           "run, naming them and the last offsets (one log line per retry meanwhile)",
                                           positive)
    on_missing_offset: Literal["fail", "earliest", "latest"] = setting(
        "DMP_KAFKA_ON_MISSING_OFFSET", "fail", choice("fail", "earliest", "latest"),
        "A resumed partition whose snapshotted offset is no longer on the broker (topic recreated or truncated): "
        "`fail`, or read it from its `earliest` or `latest` offset")
    message_max_bytes: int = setting("DMP_KAFKA_MESSAGE_MAX_BYTES", "1000000", integer,
                                      "Largest message the sinks send (the producer's `message.max.bytes`); a dead "
                                      "letter over it is truncated, with its original size and SHA-256 in headers",
                                      at_least(10_000))
    security_protocol: str | None = setting("DMP_KAFKA_SECURITY_PROTOCOL", "", text,
                                             "`security.protocol` (e.g. `SASL_SSL`)")
    sasl_mechanism: str | None = setting("DMP_KAFKA_SASL_MECHANISM", "", text,
                                          "`sasl.mechanism` (e.g. `SCRAM-SHA-512`)")
    sasl_username: str | None = setting("DMP_KAFKA_SASL_USERNAME", "", text, "`sasl.username`")
    sasl_password: str | None = setting("DMP_KAFKA_SASL_PASSWORD", "", text, "`sasl.password` (never logged)",
                                         secret=True)
    ssl_ca_location: str | None = setting("DMP_KAFKA_SSL_CA_LOCATION", "", text, "`ssl.ca.location`")
    ssl_certificate_location: str | None = setting("DMP_KAFKA_SSL_CERTIFICATE_LOCATION", "", text,
                                                    "`ssl.certificate.location`")
    ssl_key_location: str | None = setting("DMP_KAFKA_SSL_KEY_LOCATION", "", text, "`ssl.key.location`")
    ssl_key_password: str | None = setting("DMP_KAFKA_SSL_KEY_PASSWORD", "", text,
                                            "`ssl.key.password` (never logged)", secret=True)

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by consumers and producers (secrets included)."""
        config = {"bootstrap.servers": self.brokers or ""}
        for key, value in (
            ("security.protocol", self.security_protocol),
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
            ("sasl.password", self.sasl_password),
            ("ssl.ca.location", self.ssl_ca_location),
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
            ("ssl.key.password", self.ssl_key_password),
        ):
            if value:
                config[key] = value
        return config


def _url_problem(url: DbUrl) -> str | None:
    return url.problem


@dataclass(frozen=True)
class DbSettings(Group):
    """The results database (``DMP_SINK`` containing ``db``; ``python -m flows.tools.query`` reads it)."""

    title = "Results database"

    url: DbUrl = setting("DMP_DB_URL", "sqlite:///$DMP_OUT_DIR/dmp.sqlite", DbUrl.parse,
                         "`sqlite:///path/to/file.sqlite` (four slashes for an absolute path; `$DMP_OUT_DIR` is the "
                         "outputs' directory) or `postgresql://user:password@host:5432/database` (percent-encode "
                         "special characters; the password is never logged)", _url_problem, secret=True)
    retry_ms: int = setting("DMP_DB_RETRY", "2m", duration,
                            "How long a write keeps retrying while the database is unreachable before the run stops "
                            "with an error (nothing unwritten is acknowledged meanwhile)", positive)
    commit_ms: int = setting("DMP_DB_COMMIT", "1s", duration,
                             "A stream's table commits at most this often: batches arriving sooner after a commit "
                             "go in with the next one, at the epoch's end (10 s) or at the end of input; `0` "
                             "commits every batch")


@dataclass(frozen=True, init=False)
class Settings(Group):
    """Everything a flow needs to know, validated.

    Build it with :meth:`from_env` (what ``python -m bytewax.run`` does) or
    directly in tests, e.g. ``Settings(window_ms=60_000, top_n=3)``: any
    setting of any group can be given by its field name.
    """

    title = "Engine"

    source: SourceKind = setting("DMP_SOURCE", "sim", choice("sim", "file", "kafka"),
                                  "`sim` (built-in shop simulator), `file` (JSON Lines / REES46 CSV files) or `kafka`")
    input: str | None = setting("DMP_INPUT", "", text,
                                 "For `file`: a path or glob, or several separated by commas; `.gz` is read too")
    input_format: InputFormat = setting("DMP_INPUT_FORMAT", "auto", choice("auto", "jsonl", "csv"),
                                         "`auto` picks by extension (`.csv` vs `.jsonl`/`.ndjson`/`.json`)")
    out_dir: Path = setting("DMP_OUT_DIR", "out", Path,
                             "Directory of the file outputs, one sub-directory per stream; a fresh run replaces "
                             "the files it writes")
    out_format: OutputFormat = setting("DMP_OUT_FORMAT", "jsonl", choice("jsonl", "parquet"),
                                        "File format of the outputs")
    out_rotate_bytes: int = setting("DMP_OUT_ROTATE", "256MB", size,
                                     "A JSON Lines output file this large is closed and the next one begun "
                                     "(`part-0000.jsonl`, `part-0000-000001.jsonl`, ...; at a batch's end, so "
                                     "a file may pass it by one batch); `0` never rotates")
    sinks: tuple[SinkKind, ...] = setting("DMP_SINK", "files,db", choices(SINK_KINDS, SINK_EXAMPLE),
                                           "Where outputs go, any of `files`, `kafka` and `db` (the results database "
                                           "at `DMP_DB_URL`), e.g. `files`, `kafka,db`, `files,kafka,db`")
    analytics: tuple[str, ...] = setting("DMP_ANALYTICS", _all_analytics, choices(_analytic_names),
                                          "Analytics `flows.dmp` runs (`trends` includes the leaderboard)")
    allowed_lateness_ms: int = setting("DMP_ALLOWED_LATENESS", "30s", duration,
                                        "How far behind its partition's newest event an event may be and still count")
    idle_timeout_ms: int = setting("DMP_IDLE_TIMEOUT", "0", duration,
                                    "A source partition silent this long (wall clock) stops holding windows back "
                                    "until it delivers again; `0` never (fully deterministic replays)")
    future_tolerance_ms: int = setting("DMP_FUTURE_TOLERANCE", "30m", duration,
                                       "An event this far ahead of its partition's newest event is held, and "
                                       "quarantined unless the partition's next event follows it (a jump); `0` off",
                                       at_least(0))
    earliest_event_ms: int | None = setting("DMP_EARLIEST_EVENT_TIME", "2000-01-01T00:00:00Z", optional(instant),
                                            "Events before this are quarantined (empty: no limit)")
    clock_tolerance_ms: int = setting("DMP_CLOCK_TOLERANCE", "1h", duration,
                                      "Live sources (Kafka, a paced simulator): events this far ahead of the wall "
                                      "clock are quarantined; `0` off", at_least(0))
    max_price: float = setting("DMP_MAX_PRICE", "1000000000", number,
                               "A price above this (currency units) makes the record a dead letter", positive)
    max_quantity: int = setting("DMP_MAX_QUANTITY", "1000000", integer,
                                "A quantity above this makes the record a dead letter", at_least(1))
    max_line_value: float = setting("DMP_MAX_LINE_VALUE", "1000000000", number,
                                    "A price x quantity above this makes the record a dead letter", positive)
    duplicate_fields: Literal["first", "reject"] = setting(
        "DMP_DUPLICATE_FIELDS", "first", choice("first", "reject"),
        "A JSON record with a field given twice: `first` (the first wins) or `reject` (a dead letter; decoding "
        "costs ~1.6x)")
    dedup: bool = setting("DMP_DEDUP", "true", boolean,
                           "Drop events whose `event_id` their partition delivered before (within the allowed "
                           "lateness plus the longest window of the analytics that run), counted in `quality`")
    monitor_interval_ms: int = setting("DMP_MONITOR_INTERVAL", "10s", duration,
                                        "Wall-clock interval of the `monitoring` stream and metrics refresh; `0` "
                                        "turns monitoring off")
    shards: int = setting("DMP_SHARDS", "8", integer,
                           "Keyed state shards spread over the workers; fixed for the life of a recovery store",
                           at_least(1))
    batch_bytes: int = setting("DMP_BATCH_BYTES", str(16 << 20), integer,
                                "Bytes read from a file per batch (whole lines)", at_least(4096))
    read_ahead: int = setting("DMP_READ_AHEAD", "2", integer,
                               "Batches each source partition reads and decodes ahead on another thread; `0` disables",
                               at_least(0))
    summary: bool = setting("DMP_SUMMARY", "true", boolean,
                             "Print a run summary and write `summary.json` at the end of a bounded run")
    max_dead_letter_share: float = setting("DMP_MAX_DEAD_LETTER_SHARE", "0.5", number,
                                           "An input (a file, a Kafka partition) whose dead letters are more than "
                                           "this share of its records is reported at the end of a bounded run, on "
                                           "stderr and in the summary: a wrong `DMP_INPUT_FORMAT`, or not events at "
                                           "all; `1` never", _share)
    on_dead_letter_share: Literal["warn", "fail"] = setting(
        "DMP_ON_DEAD_LETTER_SHARE", "warn", choice("warn", "fail"),
        "Such an input is a `warn`ing, or makes the run `fail` (exit status 1, after the summary)")
    progress: Literal["auto", "lines", "off"] = setting(
        "DMP_PROGRESS", "auto", choice("auto", "lines", "off"),
        "Progress on stderr once a run has gone 5 s (events read, events/s, event time reached; for files percent "
        "done and time left): `auto` refreshes one line in place on a terminal and prints a line every 10 s "
        "otherwise, `lines` always prints lines, `off` none")
    sim: SimSettings = dataclasses.field(default_factory=SimSettings)
    kafka: KafkaSettings = dataclasses.field(default_factory=KafkaSettings)
    db: DbSettings = dataclasses.field(default_factory=DbSettings)
    groups: tuple[Group, ...] = dataclasses.field(default_factory=lambda: tuple(g() for g in _analytic_groups()))

    def __init__(self, **values: Any) -> None:
        own = {f.name: f for f in dataclasses.fields(self)}
        grouped: dict[type[Group], dict[str, Any]] = {}
        for name, value in values.items():
            if name in own:
                continue
            owner = _group_of(name)
            if owner is None:
                known = [*own, *(a for g in _analytic_groups() for a in _field_names(g))]
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise TypeError(f"Settings has no setting {name!r}{hint}")
            grouped.setdefault(owner, {})[name] = value
        for name, f in own.items():
            if name in values:
                value = values[name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, name, value)
        if grouped:
            groups = [dataclasses.replace(g, **grouped[type(g)]) if type(g) in grouped else g for g in self.groups]
            object.__setattr__(self, "groups", tuple(groups))
        if not isinstance(self.out_dir, Path):
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        self.__post_init__()

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a setting of an analytic's group.
        if name.startswith("__") or name == "groups":
            raise AttributeError(name)
        for group in self.groups:
            if hasattr(type(group), name) or name in _field_names(type(group)):
                return getattr(group, name)
        raise AttributeError(f"Settings has no setting {name!r}")

    def check(self) -> None:
        uses_kafka = self.source == "kafka" or "kafka" in self.sinks
        if uses_kafka and not self.kafka.brokers:
            raise ConfigError("DMP_KAFKA_BROKERS: is required when DMP_SOURCE=kafka or DMP_SINK includes kafka "
                              "(host:port,...)")
        if not self.sinks or any(kind not in SINK_KINDS for kind in self.sinks):
            raise ConfigError(f"DMP_SINK: expected {SINK_EXAMPLE}; got {self.sinks!r}")
        if self.source == "file" and not self.input:
            raise ConfigError("DMP_INPUT: is required when DMP_SOURCE=file (a path or glob of .jsonl/.csv files)")
        known = _analytic_names()
        if not self.analytics or any(name not in known for name in self.analytics):
            raise ConfigError(f"DMP_ANALYTICS: expected some of {', '.join(known)}; got {self.analytics!r}")
        for name in ("allowed_lateness_ms", "idle_timeout_ms", "monitor_interval_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{_env_of(type(self), name)}: must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, ignore: tuple[str, ...] = ()) -> Settings:
        """Read every ``DMP_*`` variable but ``ignore``; raise :class:`ConfigError` naming the bad one."""
        env = os.environ if env is None else env
        env = {name: value for name, value in env.items() if name not in ignore}
        known = {s.env for s in declared()}
        for name in sorted(env):
            if name.startswith("DMP_") and name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"{name} is not a known setting{hint} (see the README's table)")
        own = {s.attr: s.read(env[s.env]) for s in cls.declared() if s.env in env}
        return cls(
            **own,
            sim=SimSettings.read(env),
            kafka=KafkaSettings.read(env),
            db=DbSettings.read(env),
            groups=tuple(group.read(env) for group in _analytic_groups()),
        )

    def group(self, kind: type[G]) -> G:
        """The settings group of type ``kind`` (an analytic's, the simulator's, Kafka's or the database's)."""
        for group in (self.sim, self.kafka, self.db, *self.groups):
            if isinstance(group, kind):
                return group
        raise KeyError(f"no settings group {kind.__name__}")

    @property
    def db_url(self) -> DbUrl:
        """``DMP_DB_URL``, with ``$DMP_OUT_DIR`` made the outputs' directory."""
        return self.db.url.resolve(self.out_dir)

    @property
    def dedup_horizon_ms(self) -> int | None:
        """How far back event ids are remembered (``None``: no de-duplication).

        The allowed lateness plus the longest window of the analytics that
        run (a session's extent: its gap): an older repeat is late for them
        anyway. Windows an analytic leaves out (the 24 h spend windows of
        ``high_value_customer``) do not count, so the horizon stays small.
        """
        if not self.dedup:
            return None
        from flows.engine.analytics.registry import dedup_extent_ms

        return self.allowed_lateness_ms + dedup_extent_ms(self)

    @property
    def bounds(self) -> Bounds:
        """The decoder's limits on an event's numbers (:mod:`flows.engine.bounds`)."""
        try:
            return Bounds(max_price=self.max_price, max_quantity=self.max_quantity,
                          max_line_value=self.max_line_value)
        except ValueError as ex:
            raise ConfigError(f"DMP_MAX_PRICE / DMP_MAX_QUANTITY / DMP_MAX_LINE_VALUE: {ex}") from None

    @property
    def live(self) -> bool:
        """Whether events arrive as they happen (Kafka, or a simulator paced to the wall clock)."""
        return self.source == "kafka" or (self.source == "sim" and self.sim.speed > 0)

    @property
    def screen(self) -> Screen:
        """The event-time rules of the stamping step (:mod:`flows.engine.screen`)."""
        return Screen(
            tolerance_ms=self.future_tolerance_ms or None,
            earliest_ms=self.earliest_event_ms,
            clock_ms=self.clock_tolerance_ms if self.live and self.clock_tolerance_ms else None,
        )

    def runs(self, analytic: str) -> bool:
        """Whether ``DMP_ANALYTICS`` asks for ``analytic``."""
        return analytic in self.analytics

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (of any group, by field name; validated again)."""
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Settings(**{**current, **changes})


def _analytic_groups() -> tuple[type[Group], ...]:
    from flows.engine.analytics.registry import setting_groups

    return setting_groups()


def _field_names(group: type[Group]) -> set[str]:
    return {f.name for f in dataclasses.fields(group)}


def _group_of(name: str) -> type[Group] | None:
    return next((g for g in _analytic_groups() if name in _field_names(g)), None)


def _env_of(group: type[Group], attr: str) -> str:
    return next(s.env for s in group.declared() if s.attr == attr)


def groups() -> tuple[type[Group], ...]:
    """Every settings group, in the README's order: the engine's, each analytic's, the database's, Kafka's, the
    simulator's, the dashboard's (``python -m flows.dashboard``: not a flow's, but a flow beside it knows its
    names)."""
    from flows.dashboard.settings import DashboardSettings

    return (Settings, *_analytic_groups(), DbSettings, KafkaSettings, SimSettings, DashboardSettings)


def declared() -> list[Setting]:
    """Every ``DMP_*`` setting, declared once each."""
    return [s for group in groups() for s in group.declared()]


def markdown_table() -> str:
    """The README's configuration table, generated from the declarations."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for s in declared():
        default = s.default_text
        rows.append(f"| `{s.env}` | {f'`{default}`' if default else '(none)'} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
