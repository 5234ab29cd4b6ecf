"""What writing the results database costs: CPU-seconds per million result rows, and in a default run.

    python bench/db_throughput.py                       # 1M rows, and 5 default runs of each sink set
    python bench/db_throughput.py --rows 200000 --runs 1
    python bench/db_throughput.py --pg postgresql://postgres@127.0.0.1:5432/postgres

(a) Writers, side by side in one run: the rows a default ``flows.dmp`` run
writes (every stream, in its proportions: mostly trends and sessions),
replicated with their times shifted a day per copy until there are
``--rows`` of them, written in batches of ``--batch`` rows per stream,
through :class:`~flows.engine.db.database.Database` as the sink does: into
SQLite (``executemany``) and into PostgreSQL by ``COPY`` + merge and by
``executemany`` (pipeline mode). Each writes the rows twice: into empty
tables (inserts), then the same rows again (a replay or a second run:
conflicts, nothing changes). CPU is this process's (every thread: Polars'
too) and, for PostgreSQL, the server backend's (from /proc, so run it on the
server's machine); wall time beside it.

(b) The db sink's cost in a default run: ``python -m bytewax.run flows.dmp``
(the simulator's 300,000 events by default) with ``DMP_SINK=files``,
``files,db`` (the embedded SQLite) and ``files,db`` into PostgreSQL, each in
a fresh process, taking turns, median of ``--runs``: the job's CPU (user + system) and
wall time. The server's CPU for that run is not counted (its backends come
and go with the run).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.engine.analytics.registry import streams  # noqa: E402
from flows.engine.db.database import Database  # noqa: E402
from flows.engine.db.url import DbUrl  # noqa: E402
from flows.engine.sinks.files import read_stream  # noqa: E402
from flows.engine.streams import TEXT, TIME, TIME_MS, TIMES, OutputStream  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def default_rows(out: Path, events: int) -> dict[OutputStream, pl.DataFrame]:
    """Every stream's rows from one default run (files only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    env.update(DMP_OUT_DIR=str(out), DMP_SINK="files", DMP_SIM_EVENTS=str(events))
    subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return {s: read_stream(out, s) for s in streams() if read_stream(out, s).height}


def replicate(rows: dict[OutputStream, pl.DataFrame], total: int) -> dict[OutputStream, pl.DataFrame]:
    """Copies of the rows with every time a day later per copy (and text-only keys suffixed), ``total`` rows."""
    have = sum(frame.height for frame in rows.values())
    copies = -(-total // have)
    out = {}
    for stream, frame in rows.items():
        kinds = {c.name: c.kind for c in stream.columns}
        timed = any(kinds[k] in (TIME, TIME_MS) for k in stream.key)
        parts = []
        for copy in range(copies):
            shift = timedelta(days=copy)
            parts.append(frame.with_columns(
                [pl.col(c) + shift for c, k in kinds.items() if k in (TIME, TIME_MS)]
                + [pl.col(c).list.eval(pl.element() + shift) for c, k in kinds.items() if k is TIMES]
                + ([pl.col(k) + f"#{copy}" for k in stream.key if kinds[k] is TEXT] if not timed else [])))
        out[stream] = pl.concat(parts).head(round(total * frame.height / have))
    return out


def backend_cpu(database: Database) -> float:
    pid = database.query("SELECT pg_backend_pid()")[1][0][0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def write_all(database: Database, rows: dict[OutputStream, pl.DataFrame], batch: int) -> tuple[float, float, float]:
    """(client CPU s, server CPU s, wall s) to write every row in batches."""
    postgres = database.dialect.name == "PostgreSQL"
    server = backend_cpu(database) if postgres else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for stream, frame in rows.items():
        for start in range(0, frame.height, batch):
            database.write(stream, frame.slice(start, batch))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, (backend_cpu(database) - server) if postgres else 0.0, wall


def writers(args: argparse.Namespace, rows: dict[OutputStream, pl.DataFrame]) -> None:
    total = sum(frame.height for frame in rows.values())
    per = 1_000_000 / total
    admin = Database.open(DbUrl.parse(args.pg))
    name = f"dmp_bench_{uuid.uuid4().hex[:8]}"
    admin.connection.execute(f"CREATE DATABASE {name}")
    pg = args.pg.rsplit("/", 1)[0] + f"/{name}"
    print(f"(a) {total:,} result rows of {len(rows)} streams, batches of {args.batch:,}; per 1M rows:")
    print(f"  {'writer':34} {'pass':8} {'client CPU s':>12} {'server CPU s':>12} {'total CPU s':>11} {'wall s':>8}")
    try:
        fresh = Database.open(DbUrl.parse(pg))
        for schema in ("w_copy", "w_many"):  # the same tables twice, apart
            fresh.connection.execute(f"CREATE SCHEMA {schema}")
        fresh.close()
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("SQLite executemany", f"sqlite:///{tmp}/bench.sqlite", "copy"),
                       ("PostgreSQL COPY + merge", f"{pg}?options=-csearch_path%3Dw_copy", "copy"),
                       ("PostgreSQL executemany (pipeline)", f"{pg}?options=-csearch_path%3Dw_many", "executemany")]
            for label, url, method in targets:
                database = Database.open(DbUrl.parse(url), method=method)
                database.ensure_schema(list(rows))
                for phase in ("insert", "again"):
                    client, server, wall = write_all(database, rows, args.batch)
                    print(f"  {label:34} {phase:8} {client * per:12.2f} {server * per:12.2f} "
                          f"{(client + server) * per:11.2f} {wall * per:8.2f}", flush=True)
                database.close()
    finally:
        admin.connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def job(settings: dict[str, str]) -> tuple[float, float]:
    """(CPU s, wall s) of one ``python -m bytewax.run flows.dmp`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))} | settings
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def default_run_cost(args: argparse.Namespace) -> None:
    print(f"(b) python -m bytewax.run flows.dmp, {args.events:,} simulated events, median of {args.runs} "
          "(the variants take turns, so a change in the machine's load touches all of them):")
    admin = Database.open(DbUrl.parse(args.pg))
    variants = {"DMP_SINK=files": "files", "DMP_SINK=files,db (SQLite)": "sqlite",
                "DMP_SINK=files,db (PostgreSQL)": "postgresql"}
    measured: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
    try:
        for _ in range(args.runs):
            for label, kind in variants.items():
                with tempfile.TemporaryDirectory() as out:
                    settings = {"DMP_SINK": "files" if kind == "files" else "files,db", "DMP_OUT_DIR": out,
                                "DMP_SIM_EVENTS": str(args.events)}
                    if kind == "postgresql":
                        name = f"dmp_bench_{uuid.uuid4().hex[:8]}"
                        admin.connection.execute(f"CREATE DATABASE {name}")
                        settings["DMP_DB_URL"] = args.pg.rsplit("/", 1)[0] + f"/{name}"
                    measured[label].append(job(settings))
                    if kind == "postgresql":
                        admin.connection.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        admin.close()
    base = statistics.median(cpu for cpu, _ in measured["DMP_SINK=files"])
    for label, runs in measured.items():
        cpu, wall = statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs)
        print(f"  {label:32} CPU {cpu:6.2f} s  ({cpu - base:+5.2f} s, {cpu / base - 1:+6.1%})  wall {wall:6.2f} s"
              f"   runs: {', '.join(f'{c:.2f}' for c, _ in runs)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000, help="simulated events of the default run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("writers", "default-run"), help="one of the two parts")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL database whose role may create databases")
    args = parser.parse_args()
    if args.only != "default-run":
        with tempfile.TemporaryDirectory() as out:
            rows = replicate(default_rows(Path(out), args.events), args.rows)
        writers(args, rows)
    if args.only != "writers":
        default_run_cost(args)


if __name__ == "__main__":
    main()
