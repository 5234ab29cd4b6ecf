"""Ctrl-C and SIGTERM: stop within a moment, say what was done, exit 130 or 143.

In: SIGINT or SIGTERM while ``python -m bytewax.run`` runs a flow of ours
(:func:`install`, called when the flow is built). Out: the flow stops
*without* end of input, so no window is closed early and nothing is
committed as done: with recovery a resumed run ends exactly as an
uninterrupted one (as after ``kill -9``). Then the hooks registered with
:func:`on_stop` run (the run summary of what was processed, marked
interrupted) and the process exits with 128 + the signal's number.

How Bytewax 0.21.1 stops: with one worker, the worker loop itself calls
Python's signal handlers (``PyErr_CheckSignals``) and turns an exception
from them into a Rust panic (a backtrace of 70-100 lines, exit 1). So with
one worker the handler only records the signal, and every source partition
raises :class:`bytewax.inputs.AbortExecution` at its next poll
(:class:`~flows.engine.sources.interruptible.InterruptibleSource`): Bytewax's
own clean abort, which drops the dataflow and returns normally. With
several workers (``-w``, ``-a``) the handlers run on the main thread, which
asks every worker to stop when a handler raises: there the handler raises
:class:`Interrupted`, which ends ``bytewax.run`` quietly. A second signal
exits at once.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

from bytewax.inputs import AbortExecution

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None
_raise_on_signal = False
_hooks: list[Callable[[], None]] = []
_exit_status: int | None = None


class Interrupted(KeyboardInterrupt):
    """Raised on the main thread of a multi-worker run to make Bytewax stop its workers."""


def requested() -> int | None:
    """The signal that asked the run to stop, or ``None``."""
    return _requested


def check() -> None:
    """Raise Bytewax's clean abort if a stop was asked for (a source partition calls this on every poll)."""
    if _requested is not None:
        raise AbortExecution(f"stopped by {signal.Signals(_requested).name}")


def on_stop(hook: Callable[[], None]) -> None:
    """Run ``hook`` once the run has stopped on a signal, before the process exits."""
    _hooks.append(hook)


def exit_with(status: int) -> None:
    """Make the process exit with ``status`` once Bytewax returns (a check at the end of the run failed)."""
    global _exit_status
    _exit_status = status if _exit_status is None else max(_exit_status, status)


def install(*, several_workers: bool) -> None:
    """Handle SIGINT and SIGTERM for this run; ``several_workers``: Bytewax runs ``cluster_main``."""
    global _raise_on_signal
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there; not a command-line run
    _raise_on_signal = several_workers
    for signum in SIGNALS:
        signal.signal(signum, _handle)
    previous = sys.excepthook
    sys.excepthook = lambda kind, value, tb: _excepthook(previous, kind, value, tb)
    atexit.register(_finish)


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:  # a second Ctrl-C: no more waiting
        _flush()
        os._exit(128 + signum)
    _requested = signum
    if _raise_on_signal:
        raise Interrupted


def _excepthook(previous: Callable, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if _requested is not None and issubclass(kind, KeyboardInterrupt):
        return  # the stop we asked for; _finish says the rest
    previous(kind, value, tb)


def _finish() -> None:
    if _requested is not None:
        for hook in _hooks:
            with contextlib.suppress(Exception):
                hook()
        _flush()
        os._exit(128 + _requested)
    if _exit_status is not None:
        _flush()
        os._exit(_exit_status)


def _flush() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
