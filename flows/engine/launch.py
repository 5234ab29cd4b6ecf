"""Starting a flow from ``python -m bytewax.run``: what the command line says, and failures in one line.

In: a flow module's build function, and Bytewax's own command line and
``BYTEWAX_*`` variables (read with Bytewax's parser, so both agree). Out:
the module's ``__getattr__`` (:func:`flow_attribute`), which builds the
flow when Bytewax asks for ``flow``:

- a :class:`~flows.engine.errors.DmpError` at start-up (a bad setting, an
  output directory that cannot be written, brokers that do not answer, a
  database that cannot be used) is one line on stderr, ``dmp: <message
  naming the setting>``, exit status 2;
- Ctrl-C and SIGTERM stop the run cleanly (:mod:`flows.engine.interrupt`);
- a fresh start (no recovery store, or one without a committed epoch)
  replaces the files of every stream the flow writes, so no stream keeps a
  previous run's rows; a resumed run keeps them (its sinks cut each file
  back to its snapshot).
"""

from __future__ import annotations

import sqlite3
import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow

from flows.engine import interrupt
from flows.engine.errors import DmpError


def command_line() -> Namespace | None:
    """Bytewax's parsed arguments when this process is ``python -m bytewax.run``, else ``None``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name != "bytewax.run":
        return None
    from bytewax.run import _parse_args

    return _parse_args()


def resuming(recovery_directory: Path | None) -> bool:
    """Whether a run with this recovery store resumes: some partition of it has a committed epoch."""
    if recovery_directory is None:
        return False
    for path in sorted(Path(recovery_directory).glob("part-*.sqlite3")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                if db.execute("SELECT count(*) FROM commits").fetchone()[0]:
                    return True
        except sqlite3.Error:
            return True  # Bytewax will say what is wrong with it; never delete outputs on a doubt
    return False


def flow_attribute(build_flow: Callable[..., Dataflow]) -> Callable[[str], Any]:
    """A flow module's ``__getattr__``: ``python -m bytewax.run`` asks for ``flow``.

    The flow is built then, from the environment, not at import; start-up
    failures are reported in one line, exit status 2.
    """

    def module_getattr(name: str) -> Any:
        if name != "flow":
            raise AttributeError(name)
        args = command_line()
        fresh = False
        if args is not None:
            several = (args.workers_per_process or 1) > 1 or args.addresses is not None
            interrupt.install(several_workers=several)
            fresh = not resuming(args.recovery_directory) and not args.process_id  # process 0 (or the only one)
        try:
            return build_flow(fresh_outputs=fresh)
        except DmpError as ex:
            print(f"dmp: {ex}", file=sys.stderr)
            raise SystemExit(2) from None

    return module_getattr
