"""Query the results database and print a table.

    python -m flows.tools.query "SELECT product_id, revenue FROM leaderboard_latest"
    python -m flows.tools.query leaderboard --at 2024-01-01T10:00Z
    python -m flows.tools.query trend --product 1000354
    python -m flows.tools.query top --from 2024-01-01T00:00Z --to 2024-01-01T01:00Z --limit 5
    python -m flows.tools.query conversion --category '*'

In: SQL, or a named query and its options (:mod:`flows.engine.db.queries`);
the database is ``--db`` or else ``DMP_DB_URL`` (which follows
``DMP_OUT_DIR``, as the job's does). Out: the rows on stdout as a table
(``--format csv`` or ``json`` for machines). The connection is read-only.
Errors are one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import polars as pl

from flows.engine.config import Settings
from flows.engine.db.database import Database
from flows.engine.db.errors import DbError
from flows.engine.db.queries import QUERIES, NamedQuery
from flows.engine.db.url import DbUrl
from flows.engine.errors import ConfigError
from flows.engine.setting import instant

PARSERS: dict[str, Callable[[str], object]] = {"time": instant, "text": str, "int": int}


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="a database URL (default: DMP_DB_URL, or sqlite:///$DMP_OUT_DIR/dmp.sqlite)")
    common.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    common.add_argument("--max-rows", type=int, default=200, help="rows a table shows at most (default 200)")
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m flows.tools.query", parents=[_common()],
                                  description="Run SQL or a named query against the results database.",
                                  epilog="named queries: " + "; ".join(f"{q.name}: {q.help}" for q in QUERIES.values()))
    top.add_argument("sql", help="a SELECT statement, or one of: " + ", ".join(QUERIES))
    return top


def named_parser(query: NamedQuery) -> argparse.ArgumentParser:
    named = argparse.ArgumentParser(prog=f"python -m flows.tools.query {query.name}", description=query.help,
                                    parents=[_common()])
    for param in query.params:
        named.add_argument(param.flag or f"--{param.name}", dest=param.name, type=PARSERS[param.kind],
                           metavar=param.kind.upper(),
                           default=param.default, required=param.kind == "text" and param.name == "product",
                           help=param.help + (f" (default {param.default})" if param.default is not None else ""))
    return named


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _, rest = _common().parse_known_args(argv)
    query = QUERIES.get(rest[0]) if rest else None
    try:
        if query is not None:
            argv.remove(query.name)
            options = named_parser(query).parse_args(argv)
        else:
            options = parser().parse_args(argv)
    except ValueError as ex:
        return _fail(str(ex))
    database: Database | None = None
    try:
        url = DbUrl.parse(options.db) if options.db else Settings.from_env().db_url
        if url.problem:
            return _fail(f"{'--db' if options.db else 'DMP_DB_URL'}: {url.problem}")
        database = Database.open(url, read_only=True)
        if query is not None:
            sql, params = query.bind(url.dialect or "", vars(options))
        else:
            sql, params = options.sql, {}
        names_, rows = database.query(sql, params)
    except (DbError, ConfigError) as ex:
        return _fail(str(ex).replace("DMP_DB_URL=", "--db ", 1) if options.db else str(ex))
    except Exception as ex:  # the driver's complaint about the SQL, said in one line
        if database is None or not isinstance(ex, database.dialect.errors):
            raise
        return _fail(f"{url}: {url.hide(' '.join(str(ex).split()))}")
    finally:
        if database is not None:
            database.close()
    print(render(names_, rows, options.format, options.max_rows))
    return 0


def render(names: Sequence[str], rows: Sequence[tuple], fmt: str = "table", max_rows: int = 200) -> str:
    """Rows as a table (Polars' layout), CSV or JSON Lines; the same in both dialects.

    Instants show as the JSON Lines show them (ISO-8601 UTC with ``Z``; SQLite
    holds them so already), PostgreSQL's exact decimals as the nearest float
    (whole ones, such as a ``sum`` of integers, as integers).
    """
    frame = pl.DataFrame([list(r) for r in rows], schema=list(names), orient="row", infer_schema_length=None)
    frame = frame.with_columns(
        [pl.col(name).dt.convert_time_zone("UTC").dt.strftime(_iso(frame[name])) for name, dtype in frame.schema.items()
         if isinstance(dtype, pl.Datetime)]
        + [pl.col(name).cast(pl.Int64 if dtype.scale == 0 else pl.Float64)  # sum(bigint) is a NUMERIC
           for name, dtype in frame.schema.items() if isinstance(dtype, pl.Decimal)])
    if fmt == "csv":
        return frame.write_csv().rstrip("\n")
    if fmt == "json":
        return frame.write_ndjson().rstrip("\n")
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=250,
                   tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, fmt_float="full"):
        shown = str(frame)
    more = f"\n({frame.height:,} rows, {max_rows} shown: --max-rows, or --format csv)" if frame.height > max_rows \
        else ""
    return shown + (more or f"\n({frame.height:,} row{'' if frame.height == 1 else 's'})")


def _iso(times: pl.Series) -> str:
    whole = times.is_null().all() or (times.dt.millisecond().fill_null(0) == 0).all()
    return "%Y-%m-%dT%H:%M:%SZ" if whole else "%Y-%m-%dT%H:%M:%S%.3fZ"


def _fail(message: str) -> int:
    print(f"query: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
