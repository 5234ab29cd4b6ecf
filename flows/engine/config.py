"""Settings: one frozen, validated object read from ``DMP_*`` variables.

In: a mapping of environment variables (``os.environ`` by default).
Out: a :class:`Settings`, or a :class:`~flows.engine.errors.ConfigError`
whose message names the variable at fault. Unknown ``DMP_*`` variables
are errors too, so a typo never silently falls back to a default.

Every variable is declared once in :data:`VARIABLES`; the README's table
is printed from it (``python -m flows.engine.config``). Bytewax's own
knobs (workers, recovery, snapshots) stay ``BYTEWAX_*``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal, Mapping

from flows.engine.errors import ConfigError
from flows.engine.windows import FixedWindow, SlidingWindow, TumblingWindow

SourceKind = Literal["sim", "file", "kafka"]
ANALYTICS = ("trends", "sessions", "funnel", "recommendations", "triggers", "timeseries", "anomalies")
SinkKind = Literal["files", "kafka"]
InputFormat = Literal["auto", "jsonl", "csv"]
OutputFormat = Literal["jsonl", "parquet"]

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")


def parse_duration_ms(text: str) -> int:
    """Parse ``500ms``, ``30s``, ``1m``, ``1h30m``, ``2d`` or ``0`` into milliseconds.

    >>> parse_duration_ms("1h30m")
    5400000
    """
    text = text.strip().lower()
    if text == "0":
        return 0
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        msg = f"expected a duration such as 500ms, 30s, 1m, 1h30m or 0; got {text!r}"
        raise ValueError(msg)
    return total


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    """A parser that reads an empty value as "not set" (``None``)."""

    def parse_optional(text: str) -> object:
        return None if not text.strip() else parse(text)

    return parse_optional


def format_duration_ms(ms: int) -> str:
    """Inverse of :func:`parse_duration_ms` for display (``90000`` -> ``1m30s``)."""
    if ms == 0:
        return "0"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        amount, ms = divmod(ms, _UNITS_MS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def parse_utc_ms(text: str) -> int:
    """Parse an ISO-8601 instant (``Z`` or offset; naive means UTC) or ``now``."""
    if text.strip().lower() == "now":
        return int(datetime.now(timezone.utc).timestamp() * 1000)
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = f"expected true or false; got {text!r}"
    raise ValueError(msg)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            msg = f"expected one of {', '.join(allowed)}; got {text!r}"
            raise ValueError(msg)
        return value

    return parse


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip().replace("_", ""))
        if value < minimum:
            msg = f"expected an integer >= {minimum}; got {text!r}"
            raise ValueError(msg)
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        msg = f"expected a fraction in [0, 1); got {text!r}"
        raise ValueError(msg)
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        msg = f"expected a number >= 0; got {text!r}"
        raise ValueError(msg)
    return value


def _sinks(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in ("files", "kafka")]
    if not kinds or unknown:
        msg = f"expected files, kafka or files,kafka; got {text!r}"
        raise ValueError(msg)
    return kinds


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _topic(text: str) -> str:
    if not _TOPIC.fullmatch(text.strip()):
        msg = f"a Kafka topic name is 1-249 characters of letters, digits, '.', '_' and '-'; got {text!r}"
        raise ValueError(msg)
    return text.strip()


def _analytics(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in ANALYTICS]
    if unknown or not names:
        msg = f"expected a comma-separated list of {', '.join(ANALYTICS)}; got {text!r}"
        raise ValueError(msg)
    return names


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0.0 < value < float("inf"):
        msg = f"expected a number > 0; got {text!r}"
        raise ValueError(msg)
    return value


def _money(text: str) -> float:
    value = float(text.strip())
    if not value >= 0 or value == float("inf"):
        msg = f"expected an amount >= 0; got {text!r}"
        raise ValueError(msg)
    return value


def _end_offsets(text: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        partition, _, offset = part.partition(":")
        if not partition.isdigit() or not offset.isdigit():
            msg = f"expected partition:offset pairs such as 0:1200,1:980; got {part!r}"
            raise ValueError(msg)
        pairs.append((int(partition), int(offset)))
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class SimSettings:
    """The built-in shop simulator (``DMP_SOURCE=sim``)."""

    events: int = 300_000
    seed: int = 42
    partitions: int = 4
    users: int = 20_000
    products: int = 2_000
    events_per_second: float = 100.0
    start_ms: int = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    speed: float = 0.0
    disorder_ms: int = 20_000
    straggler_rate: float = 0.0005
    malformed_rate: float = 0.0005
    plant: bool = True
    anomalies: bool = False
    anomaly_after_ms: int = 4 * 86_400_000 + 6 * 3_600_000


@dataclass(frozen=True)
class KafkaSettings:
    """Kafka in (``DMP_SOURCE=kafka``) and out (``DMP_SINK`` containing ``kafka``)."""

    brokers: str | None = None
    topic: str = "events"
    start: Literal["earliest", "latest"] = "earliest"
    bounded: bool = False
    end_offsets: tuple[tuple[int, int], ...] = ()
    batch_messages: int = 50_000
    output_prefix: str = "dmp."
    output_partitions: int = 3
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

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


@dataclass(frozen=True)
class Settings:
    """Everything a flow needs to know, validated.

    Build it with :meth:`from_env` (what ``python -m bytewax.run`` does) or
    directly in tests, e.g. ``Settings(window_ms=60_000, top_n=3)``.
    """

    source: SourceKind = "sim"
    input: str | None = None
    input_format: InputFormat = "auto"
    out_dir: Path = Path("out")
    out_format: OutputFormat = "jsonl"
    window_ms: int = 60_000
    window_slide_ms: int | None = None
    allowed_lateness_ms: int = 30_000
    idle_timeout_ms: int = 0
    dedup: bool = True
    top_n: int = 10
    shards: int = 8
    batch_bytes: int = 16 << 20
    read_ahead: int = 2
    summary: bool = True
    sinks: tuple[SinkKind, ...] = ("files",)
    analytics: tuple[str, ...] = ANALYTICS
    session_gap_ms: int = 30 * 60_000
    funnel_window_ms: int = 3_600_000
    reco_half_life_ms: int = 7 * 86_400_000
    reco_interval_ms: int = 3_600_000
    reco_top_k: int = 10
    reco_neighbours: int = 50
    reco_basket_limit: int = 20
    high_value_threshold: float = 3_000.0
    high_value_window_ms: int = 86_400_000
    high_value_slide_ms: int = 3_600_000
    trigger_cooldown_ms: int = 86_400_000
    ts_bucket_ms: int = 60_000
    ts_ma: int = 15
    ts_period: int = 1440
    ts_seasons: int = 3
    ts_acf_window: int = 2880
    anomaly_z: float = 5.0
    anomaly_window: int = 60
    anomaly_min_events: int = 5
    monitor_interval_ms: int = 10_000
    sim: SimSettings = field(default_factory=SimSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.out_dir, Path):
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        _validate(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, ignore: tuple[str, ...] = ()) -> Settings:
        """Read every ``DMP_*`` variable but ``ignore``; raise :class:`ConfigError` naming the bad one."""
        env = os.environ if env is None else env
        env = {name: value for name, value in env.items() if name not in ignore}
        known = {var.name for var in VARIABLES}
        for name in sorted(env):
            if name.startswith("DMP_") and name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                msg = f"{name} is not a known setting{hint} (see the README's table)"
                raise ConfigError(msg)

        values: dict[str, dict[str, object]] = {"": {}, "sim": {}, "kafka": {}}
        for var in VARIABLES:
            if var.name not in env:
                continue
            raw = env[var.name]
            try:
                value = var.parse(raw)
            except ValueError as ex:
                shown = "(hidden)" if var.secret else repr(raw)
                msg = f"{var.name}={shown}: {ex if not var.secret else 'invalid value'}"
                raise ConfigError(msg) from None
            group, _, attr = var.attr.rpartition(".")
            values[group][attr] = value
        return cls(
            **values[""],  # type: ignore[arg-type]
            sim=SimSettings(**values["sim"]),  # type: ignore[arg-type]
            kafka=KafkaSettings(**values["kafka"]),  # type: ignore[arg-type]
        )

    @property
    def window(self) -> FixedWindow:
        """The trend windows: tumbling, or sliding when ``DMP_WINDOW_SLIDE`` is set."""
        slide = self.window_slide_ms
        if slide is None or slide == self.window_ms:
            return TumblingWindow(self.window_ms)
        return SlidingWindow(self.window_ms, slide)

    @property
    def dedup_horizon_ms(self) -> int | None:
        """How far back event ids are remembered (``None``: no de-duplication).

        The allowed lateness plus the longest window of the trends, funnel
        and sessions (a session's extent: its gap): an older repeat is late
        for them anyway. The spend windows of ``high_value_customer`` are
        longer and take purchases only; they are not counted in.
        """
        if not self.dedup:
            return None
        longest = [self.window_ms]
        if "funnel" in self.analytics:
            longest.append(self.funnel_window_ms)
        if {"sessions", "recommendations", "triggers"} & set(self.analytics):
            longest.append(self.session_gap_ms)
        if {"timeseries", "anomalies"} & set(self.analytics):
            longest.append(self.ts_bucket_ms)
        return self.allowed_lateness_ms + max(longest)

    def runs(self, analytic: str) -> bool:
        """Whether ``DMP_ANALYTICS`` asks for ``analytic``."""
        return analytic in self.analytics

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Variable:
    """One ``DMP_*`` environment variable: where it goes and what it means."""

    name: str
    attr: str
    parse: Callable[[str], object]
    default: str
    doc: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("DMP_SOURCE", "source", _choice("sim", "file", "kafka"), "sim",
             "`sim` (built-in shop simulator), `file` (JSON Lines / REES46 CSV files) or `kafka`"),
    Variable("DMP_INPUT", "input", str, "",
             "For `file`: a path or glob, or several separated by commas; `.gz` is read too"),
    Variable("DMP_INPUT_FORMAT", "input_format", _choice("auto", "jsonl", "csv"), "auto",
             "`auto` picks by extension (`.csv` vs `.jsonl`/`.ndjson`/`.json`)"),
    Variable("DMP_OUT_DIR", "out_dir", Path, "out",
             "Directory of the file outputs, one sub-directory per stream; a fresh run replaces the files it writes"),
    Variable("DMP_OUT_FORMAT", "out_format", _choice("jsonl", "parquet"), "jsonl",
             "File format of the outputs"),
    Variable("DMP_SINK", "sinks", _sinks, "files",
             "Where outputs go: `files`, `kafka`, or both (`files,kafka`)"),
    Variable("DMP_WINDOW", "window_ms", parse_duration_ms, "1m",
             "Event-time window length of trends and the leaderboard, aligned to the Unix epoch (whole seconds)"),
    Variable("DMP_WINDOW_SLIDE", "window_slide_ms", _optional(parse_duration_ms), "",
             "Start a window every this often (sliding windows; must divide `DMP_WINDOW`); "
             "unset: tumbling windows"),
    Variable("DMP_ALLOWED_LATENESS", "allowed_lateness_ms", parse_duration_ms, "30s",
             "How far behind its partition's newest event an event may be and still count"),
    Variable("DMP_IDLE_TIMEOUT", "idle_timeout_ms", parse_duration_ms, "0",
             "A source partition silent this long (wall clock) stops holding windows back until it "
             "delivers again; `0` never (fully deterministic replays)"),
    Variable("DMP_DEDUP", "dedup", _bool, "true",
             "Drop events whose `event_id` their partition delivered before (within the allowed "
             "lateness plus the longest window of trends, funnel and sessions), counted in `quality`"),
    Variable("DMP_TOP_N", "top_n", _int(1), "10", "Rows per window in the leaderboard"),
    Variable("DMP_ANALYTICS", "analytics", _analytics, ",".join(ANALYTICS),
             "Analytics `flows.dmp` runs (`trends` includes the leaderboard)"),
    Variable("DMP_SESSION_GAP", "session_gap_ms", parse_duration_ms, "30m",
             "A user's session ends after this long without events"),
    Variable("DMP_FUNNEL_WINDOW", "funnel_window_ms", parse_duration_ms, "1h", "Tumbling window of the funnel"),
    Variable("DMP_RECO_HALF_LIFE", "reco_half_life_ms", parse_duration_ms, "7d",
             "Half-life of co-purchase counts (event time)"),
    Variable("DMP_RECO_INTERVAL", "reco_interval_ms", parse_duration_ms, "1h",
             "Recommendations advance by intervals of this much event time"),
    Variable("DMP_RECO_TOP_K", "reco_top_k", _int(1), "10", "Related products listed per product"),
    Variable("DMP_RECO_NEIGHBOURS", "reco_neighbours", _int(1), "50",
             "Related products tracked per product (heavy-hitters capacity; >= `DMP_RECO_TOP_K`)"),
    Variable("DMP_RECO_BASKET_LIMIT", "reco_basket_limit", _int(2), "20",
             "Products of one session that count towards recommendations"),
    Variable("DMP_HIGH_VALUE_THRESHOLD", "high_value_threshold", _money, "3000",
             "`high_value_customer` when a user's purchases in the spend window exceed this"),
    Variable("DMP_HIGH_VALUE_WINDOW", "high_value_window_ms", parse_duration_ms, "24h",
             "Length of the sliding spend window"),
    Variable("DMP_HIGH_VALUE_SLIDE", "high_value_slide_ms", parse_duration_ms, "1h",
             "A spend window starts this often (must divide `DMP_HIGH_VALUE_WINDOW`)"),
    Variable("DMP_TRIGGER_COOLDOWN", "trigger_cooldown_ms", parse_duration_ms, "24h",
             "At most one trigger per user and type within this much event time"),
    Variable("DMP_TS_BUCKET", "ts_bucket_ms", parse_duration_ms, "1m",
             "Bucket of the time series (revenue and orders overall and per category, views overall)"),
    Variable("DMP_TS_MA", "ts_ma", _int(1), "15", "Buckets in the trailing moving average"),
    Variable("DMP_TS_PERIOD", "ts_period", _int(2), "1440",
             "Buckets in one season (1440 at 1m: daily); the trend is the mean of the last period"),
    Variable("DMP_TS_SEASONS", "ts_seasons", _int(1), "3",
             "Past seasons whose median makes the seasonal component"),
    Variable("DMP_TS_ACF_WINDOW", "ts_acf_window", _int(3), "2880",
             "Trailing buckets the autocorrelations are computed over (longer than `DMP_TS_PERIOD`)"),
    Variable("DMP_ANOMALY_Z", "anomaly_z", _positive_float, "5",
             "Alert when a residual's robust score (distance from the median of recent residuals "
             "in scaled MADs) reaches this"),
    Variable("DMP_ANOMALY_WINDOW", "anomaly_window", _int(5), "60",
             "Recent residuals (buckets) whose median and MAD score the next one"),
    Variable("DMP_ANOMALY_MIN_EVENTS", "anomaly_min_events", _int(0), "5",
             "Series averaging fewer events per bucket over the last period are not scored (orders count "
             "for revenue): a sparse series' big order is chance, not an anomaly"),
    Variable("DMP_MONITOR_INTERVAL", "monitor_interval_ms", parse_duration_ms, "10s",
             "Wall-clock interval of the `monitoring` stream and metrics refresh; `0` turns monitoring off"),
    Variable("DMP_SHARDS", "shards", _int(1), "8",
             "Keyed state shards spread over the workers; fixed for the life of a recovery store"),
    Variable("DMP_BATCH_BYTES", "batch_bytes", _int(4096), str(16 << 20),
             "Bytes read from a file per batch (whole lines)"),
    Variable("DMP_READ_AHEAD", "read_ahead", _int(0), "2",
             "Batches each source partition reads and decodes ahead on another thread; `0` disables"),
    Variable("DMP_SUMMARY", "summary", _bool, "true",
             "Print a run summary and write `summary.json` at the end of a bounded run"),
    Variable("DMP_KAFKA_BROKERS", "kafka.brokers", str, "",
             "Bootstrap servers (`host:port,...`); required for Kafka in or out"),
    Variable("DMP_KAFKA_TOPIC", "kafka.topic", _topic, "events", "Topic the events are read from"),
    Variable("DMP_KAFKA_START", "kafka.start", _choice("earliest", "latest"), "earliest",
             "Where a partition starts when there is no snapshot to resume from"),
    Variable("DMP_KAFKA_BOUNDED", "kafka.bounded", _bool, "false",
             "Stop at the end of every partition (partition EOF; for replays and tests)"),
    Variable("DMP_KAFKA_END_OFFSETS", "kafka.end_offsets", _end_offsets, "",
             "Bounded mode with explicit ends, `partition:offset,...` (stop before each offset)"),
    Variable("DMP_KAFKA_BATCH_MESSAGES", "kafka.batch_messages", _int(1), "50000",
             "Most messages a partition hands over as one batch"),
    Variable("DMP_KAFKA_OUTPUT_PREFIX", "kafka.output_prefix", str, "dmp.",
             "Output topics are `<prefix><stream>`, e.g. `dmp.trends`, `dmp.dead_letters`"),
    Variable("DMP_KAFKA_OUTPUT_PARTITIONS", "kafka.output_partitions", _int(1), "3",
             "Partitions of output topics created at start-up when they do not exist"),
    Variable("DMP_KAFKA_SECURITY_PROTOCOL", "kafka.security_protocol", str, "",
             "`security.protocol` (e.g. `SASL_SSL`)"),
    Variable("DMP_KAFKA_SASL_MECHANISM", "kafka.sasl_mechanism", str, "", "`sasl.mechanism` (e.g. `SCRAM-SHA-512`)"),
    Variable("DMP_KAFKA_SASL_USERNAME", "kafka.sasl_username", str, "", "`sasl.username`"),
    Variable("DMP_KAFKA_SASL_PASSWORD", "kafka.sasl_password", str, "", "`sasl.password` (never logged)",
             secret=True),
    Variable("DMP_KAFKA_SSL_CA_LOCATION", "kafka.ssl_ca_location", str, "", "`ssl.ca.location`"),
    Variable("DMP_KAFKA_SSL_CERTIFICATE_LOCATION", "kafka.ssl_certificate_location", str, "",
             "`ssl.certificate.location`"),
    Variable("DMP_KAFKA_SSL_KEY_LOCATION", "kafka.ssl_key_location", str, "", "`ssl.key.location`"),
    Variable("DMP_KAFKA_SSL_KEY_PASSWORD", "kafka.ssl_key_password", str, "", "`ssl.key.password` (never logged)",
             secret=True),
    Variable("DMP_SIM_EVENTS", "sim.events", _int(0), "300000",
             "Events the simulator emits over all partitions; `0` runs forever"),
    Variable("DMP_SIM_SEED", "sim.seed", _int(0), "42", "Seed; the same seed gives the same events"),
    Variable("DMP_SIM_PARTITIONS", "sim.partitions", _int(1), "4",
             "Source partitions (users are spread over them, like a topic keyed by user)"),
    Variable("DMP_SIM_USERS", "sim.users", _int(1), "20000", "Distinct shoppers"),
    Variable("DMP_SIM_PRODUCTS", "sim.products", _int(1), "2000", "Catalog size"),
    Variable("DMP_SIM_EVENTS_PER_SECOND", "sim.events_per_second", _non_negative_float, "100",
             "Average event rate in event time (follows a daily cycle)"),
    Variable("DMP_SIM_START", "sim.start_ms", parse_utc_ms, "2024-01-01T00:00:00Z",
             "Event time of the simulation's start (ISO-8601, or `now`)"),
    Variable("DMP_SIM_SPEED", "sim.speed", _non_negative_float, "0",
             "Event-time seconds per wall-clock second; `0` is as fast as possible, `1` is live"),
    Variable("DMP_SIM_DISORDER", "sim.disorder_ms", parse_duration_ms, "20s",
             "Largest delivery delay of ordinary events (bounded out-of-order delivery)"),
    Variable("DMP_SIM_STRAGGLER_RATE", "sim.straggler_rate", _fraction, "0.0005",
             "Fraction of events delivered up to 10 minutes late (they show up as `late`)"),
    Variable("DMP_SIM_MALFORMED_RATE", "sim.malformed_rate", _fraction, "0.0005",
             "Fraction of records the simulator corrupts (they show up as `dead_letters`)"),
    Variable("DMP_SIM_PLANT", "sim.plant", _bool, "true",
             "Plant known behaviour for the analytics to find: products bought together, "
             "cart abandoners, big spenders (see the simulator's docstring)"),
    Variable("DMP_SIM_ANOMALIES", "sim.anomalies", _bool, "false",
             "Plant traffic anomalies with known labels: spikes, drops and one level shift "
             "(see the simulator's docstring)"),
    Variable("DMP_SIM_ANOMALY_AFTER", "sim.anomaly_after_ms", parse_duration_ms, "4d6h",
             "Planted anomalies begin this long after the start (the detector's warm-up: "
             "`DMP_TS_SEASONS`+1 periods and `DMP_ANOMALY_WINDOW`)"),
)


def _validate(settings: Settings) -> None:
    def fail(name: str, problem: str) -> None:
        raise ConfigError(f"{name}: {problem}")

    if settings.source not in ("sim", "file", "kafka"):
        fail("DMP_SOURCE", f"expected sim, file or kafka; got {settings.source!r}")
    uses_kafka = settings.source == "kafka" or "kafka" in settings.sinks
    if uses_kafka and not settings.kafka.brokers:
        fail("DMP_KAFKA_BROKERS", "is required when DMP_SOURCE=kafka or DMP_SINK includes kafka (host:port,...)")
    if not settings.sinks or any(kind not in ("files", "kafka") for kind in settings.sinks):
        fail("DMP_SINK", f"expected files, kafka or files,kafka; got {settings.sinks!r}")
    if settings.source == "file" and not settings.input:
        fail("DMP_INPUT", "is required when DMP_SOURCE=file (a path or glob of .jsonl/.csv files)")
    if settings.window_ms <= 0 or settings.window_ms % 1000:
        fail("DMP_WINDOW", f"must be a positive whole number of seconds; got {settings.window_ms} ms")
    slide = settings.window_slide_ms
    if slide is not None and (slide <= 0 or slide % 1000 or settings.window_ms % slide):
        fail("DMP_WINDOW_SLIDE", f"must be a whole number of seconds dividing DMP_WINDOW "
             f"({settings.window_ms} ms); got {slide} ms")
    if settings.allowed_lateness_ms < 0:
        fail("DMP_ALLOWED_LATENESS", "must be >= 0")
    if settings.idle_timeout_ms < 0:
        fail("DMP_IDLE_TIMEOUT", "must be >= 0")
    if settings.top_n < 1:
        fail("DMP_TOP_N", "must be >= 1")
    unknown = [name for name in settings.analytics if name not in ANALYTICS]
    if unknown or not settings.analytics:
        fail("DMP_ANALYTICS", f"expected some of {', '.join(ANALYTICS)}; got {settings.analytics!r}")
    positive = {
        "DMP_SESSION_GAP": settings.session_gap_ms,
        "DMP_FUNNEL_WINDOW": settings.funnel_window_ms,
        "DMP_RECO_INTERVAL": settings.reco_interval_ms,
        "DMP_RECO_HALF_LIFE": settings.reco_half_life_ms,
    }
    for name, value in positive.items():
        if value <= 0:
            fail(name, f"must be a positive duration; got {value} ms")
    if settings.trigger_cooldown_ms < 0:
        fail("DMP_TRIGGER_COOLDOWN", "must be >= 0")
    if settings.funnel_window_ms % 1000:
        fail("DMP_FUNNEL_WINDOW", f"must be a whole number of seconds; got {settings.funnel_window_ms} ms")
    if settings.reco_neighbours < settings.reco_top_k:
        fail("DMP_RECO_NEIGHBOURS", f"must be >= DMP_RECO_TOP_K ({settings.reco_top_k})")
    if settings.reco_basket_limit < 2:
        fail("DMP_RECO_BASKET_LIMIT", "must be >= 2 (a pair)")
    spend, slide = settings.high_value_window_ms, settings.high_value_slide_ms
    if spend <= 0 or spend % 1000 or slide <= 0 or slide % 1000 or spend % slide:
        fail("DMP_HIGH_VALUE_SLIDE", f"must be a whole number of seconds dividing DMP_HIGH_VALUE_WINDOW "
             f"({spend} ms); got {slide} ms")
    if not settings.high_value_threshold >= 0:
        fail("DMP_HIGH_VALUE_THRESHOLD", f"must be >= 0; got {settings.high_value_threshold!r}")
    if settings.ts_bucket_ms <= 0 or settings.ts_bucket_ms % 1000:
        fail("DMP_TS_BUCKET", f"must be a positive whole number of seconds; got {settings.ts_bucket_ms} ms")
    for name, value, least in (("DMP_TS_MA", settings.ts_ma, 1), ("DMP_TS_PERIOD", settings.ts_period, 2),
                               ("DMP_TS_SEASONS", settings.ts_seasons, 1),
                               ("DMP_ANOMALY_WINDOW", settings.anomaly_window, 5)):
        if value < least:
            fail(name, f"must be >= {least}; got {value}")
    if settings.ts_acf_window <= settings.ts_period:
        fail("DMP_TS_ACF_WINDOW", f"must be longer than DMP_TS_PERIOD ({settings.ts_period} buckets) "
             f"to give an autocorrelation at the period; got {settings.ts_acf_window}")
    if not 0 < settings.anomaly_z < float("inf"):
        fail("DMP_ANOMALY_Z", f"must be > 0; got {settings.anomaly_z!r}")
    if settings.monitor_interval_ms < 0:
        fail("DMP_MONITOR_INTERVAL", "must be >= 0")
    if settings.shards < 1:
        fail("DMP_SHARDS", "must be >= 1")
    if settings.batch_bytes < 4096:
        fail("DMP_BATCH_BYTES", "must be >= 4096")
    sim = settings.sim
    if sim.partitions < 1:
        fail("DMP_SIM_PARTITIONS", "must be >= 1")
    if sim.users < sim.partitions:
        fail("DMP_SIM_USERS", f"must be at least DMP_SIM_PARTITIONS ({sim.partitions})")
    if sim.products < 1:
        fail("DMP_SIM_PRODUCTS", "must be >= 1")
    if sim.events_per_second <= 0:
        fail("DMP_SIM_EVENTS_PER_SECOND", "must be > 0")
    if not isinstance(sim.plant, bool):
        fail("DMP_SIM_PLANT", f"expected true or false; got {sim.plant!r}")
    if sim.anomaly_after_ms < 0:
        fail("DMP_SIM_ANOMALY_AFTER", "must be >= 0")


def markdown_table() -> str:
    """The README's configuration table, generated from :data:`VARIABLES`."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default else "(none)"
        rows.append(f"| `{var.name}` | {default} | {var.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
