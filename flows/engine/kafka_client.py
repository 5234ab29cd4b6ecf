"""librdkafka clients as our sources, sinks and tools use them: quiet, watched, stopped in one line.

In: :class:`~flows.engine.config.KafkaSettings`. Out: client configurations
(:func:`client_config`) whose librdkafka logs and errors go to one
:class:`Brokers` per broker list and process instead of to stderr;
:func:`connect`, the start-up metadata request, which gives up after
``DMP_KAFKA_CONNECT_TIMEOUT``; :class:`Silence`, how long one client has
heard nothing from the brokers; and :func:`stop`, the one way out for a
Kafka error at run time.

What this is for, measured against Tansu frozen (SIGSTOP) or killed:

- librdkafka writes its logs to stderr, ~3,400 lines in a 90 s outage and
  ~290 at start-up for one unreachable address. Here they are kept (the
  latest becomes the "last error" of the messages below), ``log_level`` 4
  drops its notices, and at most one line per interval says what goes on.
- A frozen broker keeps its TCP connections open, so librdkafka reports
  nothing for 60 s (``socket.timeout.ms``) and "all brokers down" only
  after ~75 s. Silence is what tells: a live broker answers a consumer's
  fetches every ``fetch.wait.max.ms`` (the consumer statistics'
  ``rxidle``), and a producer's queue shrinks while it has one.
- An exception raised in a Bytewax partition comes out of Bytewax's Rust
  runtime as a panic, a backtrace and a Python traceback; one raised by a
  sink's ``close`` (called from a destructor while unwinding) aborts the
  process (rc 134). So under ``python -m bytewax.run`` :func:`stop` prints
  ``dmp: <message>`` (and a hint) and exits at once, 2 for an error the
  user fixes with a setting, 1 otherwise; anywhere else (tests, a program
  calling ``run_main``) it raises the error.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from flows.engine.config import KafkaSettings
from flows.engine.errors import ConfigError, DmpError

log = logging.getLogger("flows.kafka")

F = TypeVar("F", bound=Callable[..., Any])

# librdkafka's own level: warnings and errors (its notices, e.g. every idle
# disconnect, are noise); connection closes are reported through errors anyway.
QUIET = {"log_level": 4, "log.connection.close": False}
STATISTICS_MS = 1000  # how often a consumer learns how long its brokers have been silent


class KafkaUnavailableError(DmpError):
    """The brokers did not answer for ``DMP_KAFKA_UNAVAILABLE_TIMEOUT``."""

    hint = "check the brokers; a run resumed from its recovery store (-r) continues from its last snapshot"


class MissingOffsetError(ConfigError):
    """A partition's next offset is no longer on the broker (topic recreated or truncated, partition gone)."""

    hint = ("DMP_KAFKA_ON_MISSING_OFFSET=earliest reads such a partition from its start (latest: from its end); "
            "or start over with an empty recovery store")


def duration_text(ms: int) -> str:
    """``120000`` -> ``2m``, ``1500`` -> ``1500ms``: a duration as the settings write it."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _text(message: str) -> str:
    """A librdkafka log line or error without its facility and thread prefixes, nor its misleading guess."""
    return message.rpartition("]: ")[2].split(": probably due to broker version")[0]


class Brokers:
    """What every client of one broker list in this process hears, and the few lines it becomes.

    It is librdkafka's ``logger`` (confluent-kafka calls :meth:`log`) and
    ``error_cb`` (:meth:`error`) for all those clients, so a source's
    partitions and every stream's sink together log one line per interval,
    not one each. Use :func:`brokers_of` for the process's shared one.
    """

    def __init__(self, settings: KafkaSettings, clock: Callable[[], float] = time.monotonic):
        self.name = settings.brokers or "(none)"
        self.timeout_ms = settings.unavailable_timeout_ms
        self.timeout = self.timeout_ms / 1000
        self.every = min(10.0, max(1.0, self.timeout / 4))  # seconds between two lines
        self.clock = clock
        self.last_error: str | None = None
        self.fatal: str | None = None
        self.outage = False  # an outage line was said and no client has heard the brokers since
        self._silent_since = 0.0  # when the outage said began
        self._unsaid = 0  # client messages since the last line
        self._said_at = -self.every
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """librdkafka's log lines (``logger``): kept, not printed; :meth:`tick` sums them up."""
        if level >= logging.WARNING:
            self.heard_of(_text(fmt % args))

    def error(self, error: KafkaError) -> None:
        """librdkafka's errors (``error_cb``); "all brokers down" says less than the error before it."""
        if error.fatal():
            self.fatal = error.str()
        if error.code() != KafkaError._ALL_BROKERS_DOWN:
            self.heard_of(_text(error.str()))

    def heard_of(self, text: str) -> None:
        """A client message: kept as the last error, counted, and summed up by :meth:`tick`."""
        with self._lock:
            self.last_error = text
            self._unsaid += 1

    def _say(self, line: str) -> bool:
        """Log ``line`` unless a line was logged less than an interval ago."""
        with self._lock:
            now = self.clock()
            if now - self._said_at < self.every:
                return False
            self._said_at, self._unsaid = now, 0
        log.warning("%s", line)
        return True

    def tick(self) -> None:
        """Sum up the client messages of the last interval in one line, if there were any."""
        if self._unsaid and not self.outage:
            count = self._unsaid
            more = f" (+{count - 1} more client messages)" if count > 1 else ""
            self._say(f"Kafka {self.name}: {self.last_error}{more}")

    def silent(self, seconds: float, doing: Callable[[], str]) -> None:
        """A client has heard nothing for ``seconds``: a line per interval, then :class:`KafkaUnavailableError`."""
        if self.fatal:
            msg = f"Kafka client error ({self.name}): {self.fatal}; {doing()}"
            raise DmpError(msg)
        last = f"; last error: {self.last_error}" if self.last_error else ""
        if seconds >= self.timeout:
            msg = (f"Kafka brokers {self.name} unreachable: no answer for {seconds:.0f}s "
                   f"(DMP_KAFKA_UNAVAILABLE_TIMEOUT={duration_text(self.timeout_ms)}){last}; {doing()}")
            raise KafkaUnavailableError(msg)
        if seconds >= self.every and self._say(
            f"Kafka brokers {self.name}: no answer for {int(seconds)}s{last}; retrying, stopping after "
            f"{duration_text(self.timeout_ms)} (DMP_KAFKA_UNAVAILABLE_TIMEOUT)"
        ):
            self.outage = True
            self._silent_since = self.clock() - seconds

    def back(self, at: float) -> None:
        """A client heard the brokers at ``at``: after an outage line, and since it began, say so once."""
        with self._lock:
            if not self.outage or at <= self._silent_since:
                return
            self.outage = False
        log.warning("Kafka brokers %s: answering again", self.name)


_SHARED: dict[tuple[str, int], Brokers] = {}
_SHARED_LOCK = threading.Lock()


def brokers_of(settings: KafkaSettings) -> Brokers:
    """The process's one :class:`Brokers` for these settings' broker list (and timeout)."""
    key = (settings.brokers or "", settings.unavailable_timeout_ms)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Brokers(settings)
        return _SHARED[key]


def client_config(settings: KafkaSettings, brokers: Brokers | None = None) -> dict[str, Any]:
    """librdkafka settings of any client: connection and security, logs and errors to ``brokers``."""
    brokers = brokers if brokers is not None else brokers_of(settings)
    return {**settings.client_config(), **QUIET, "logger": brokers, "error_cb": brokers.error}


class Silence:
    """How long one client has heard nothing from its brokers (since it last did, or was made).

    A client hears through its statistics (:meth:`statistics`, its
    ``stats_cb``: a queue that shrinks, or messages that come, may be from
    before the brokers went quiet). It is :meth:`busy` while it has messages
    (a consumer's may come from its prefetch queue), and from the moment an
    idle producer has something to send.
    """

    def __init__(self, brokers: Brokers):
        self.brokers = brokers
        self.heard_at = brokers.clock()

    def heard(self, at: float | None = None) -> None:
        """The brokers answered (at ``at``, default now)."""
        at = self.brokers.clock() if at is None else at
        self.heard_at = max(self.heard_at, at)
        if self.brokers.outage:
            self.brokers.back(at)

    def busy(self) -> None:
        """Not stuck, though the brokers may not have answered (local messages; a wait begins): count from now."""
        self.heard_at = max(self.heard_at, self.brokers.clock())

    def statistics(self, text: str) -> None:
        """librdkafka's statistics: ``rxidle`` is how long before ``ts`` each broker connection last received.

        A client polled seldom gets its statistics late, so they count from
        when they were made (``ts``, librdkafka's monotonic clock, which is
        Python's on Linux), not from when they are read.
        """
        stats = json.loads(text)
        idle = [broker["rxidle"] for broker in stats.get("brokers", {}).values()
                if broker.get("nodeid", -1) >= 0 and broker.get("rxidle", -1) >= 0]
        if not idle:
            return
        now = self.brokers.clock()
        made = stats.get("ts", 0) / 1e6
        if not 0 <= now - made < 600:  # another clock after all: take them as fresh
            made = now
        self.heard(made - min(idle) / 1e6)

    @property
    def seconds(self) -> float:
        return self.brokers.clock() - self.heard_at

    def check(self, doing: Callable[[], str]) -> None:
        """Log or raise as :meth:`Brokers.silent` says; ``doing`` describes the client for the error."""
        self.brokers.silent(self.seconds, doing)
        self.brokers.tick()


def connect(settings: KafkaSettings) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client and the cluster's metadata; within ``DMP_KAFKA_CONNECT_TIMEOUT`` or a clear error.

    The client logs to a :class:`Brokers` of its own, never served (nothing
    is printed), and read only to say why the brokers did not answer.
    """
    heard = Brokers(settings)
    admin = AdminClient(client_config(settings, heard))
    seconds = settings.connect_timeout_ms / 1000
    try:
        return admin, admin.list_topics(timeout=seconds)
    except KafkaException as ex:
        admin.poll(0)  # what it logged meanwhile, e.g. "Connect to ... failed: Connection refused"
        why = heard.last_error or ex.args[0].str()
        msg = (f"DMP_KAFKA_BROKERS={settings.brokers!r}: no Kafka broker answered within "
               f"{duration_text(settings.connect_timeout_ms)} ({why}); is the address right and the broker up? "
               "(DMP_KAFKA_CONNECT_TIMEOUT waits longer)")
        raise ConfigError(msg) from None


def _under_bytewax_run() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == "bytewax.run"


_STOPPING = threading.Lock()


def stop(error: DmpError) -> NoReturn:
    """The one way out for a Kafka error at run time: one line and an exit code, or ``raise error``.

    Under ``python -m bytewax.run`` the process exits at once (``os._exit``:
    Bytewax's runtime would turn the exception into a panic and a traceback,
    and a sink's destructor could abort), with 2 for an error a setting
    fixes and 1 otherwise. The first error of any thread is the one said.
    """
    if not _under_bytewax_run():
        raise error
    with _STOPPING:  # a second thread waits here until the first has exited the process
        sys.stdout.flush()
        hint = getattr(error, "hint", None)
        print(f"dmp: {error}" + (f"\ndmp: hint: {hint}" if hint else ""), file=sys.stderr, flush=True)
        os._exit(2 if isinstance(error, ConfigError) else 1)


def stops_cleanly(method: F) -> F:
    """A partition method whose :class:`DmpError` goes to :func:`stop`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DmpError as error:
            stop(error)

    return wrapper  # type: ignore[return-value]
