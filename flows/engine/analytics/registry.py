"""The analytic registry: every analytic declared once, everything else derived from it.

An analytic (:class:`Analytic`) lives in its own module under
``flows/engine/analytics/`` and declares, in a module-level ``ANALYTICS``
tuple: its name, the output streams it writes (each with its natural key
and typed columns, :mod:`flows.engine.streams`), the event fields it needs
decoded, its settings group, the windows its results depend on (for the
de-duplication horizon) and one function that draws its branch of the flow
(:class:`~flows.engine.wiring.Wiring`). ``DMP_ANALYTICS`` and its default,
the output stream list, Kafka message keys, database tables, the decoded
event fields, the dedup horizon and the README's stream table all come
from here. Built-in analytics are found by looking through this package;
:func:`register` adds one of your own (e.g. in a test).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flows.engine.streams import OutputStream

if TYPE_CHECKING:
    from flows.engine.config import Settings
    from flows.engine.setting import Group
    from flows.engine.windows import Window
    from flows.engine.wiring import Wiring


def _no_windows(settings: Settings) -> tuple[Window, ...]:
    return ()


@dataclass(frozen=True)
class Analytic:
    """One analytic, declared: see the module docstring.

    ``order`` places it in ``DMP_ANALYTICS``'s default and the README.
    ``dedup_windows`` gives the windows whose extent bounds how long event
    ids are remembered; ``wire`` draws its branch from the stamped events.
    """

    name: str
    order: int
    summary: str
    streams: tuple[OutputStream, ...]
    wire: Callable[[Wiring], None]
    settings: type[Group] | None = None
    fields: tuple[str, ...] = ()
    dedup_windows: Callable[[Settings], tuple[Window, ...]] = _no_windows


_EXTRA: list[Analytic] = []


@functools.lru_cache(maxsize=1)
def _built_in() -> tuple[Analytic, ...]:
    import flows.engine.analytics as package

    found: list[Analytic] = []
    for module in pkgutil.iter_modules(package.__path__):
        found.extend(getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "ANALYTICS", ()))
    return tuple(found)


def analytics() -> tuple[Analytic, ...]:
    """Every analytic known (built in and registered), in their declared order."""
    found = sorted((*_built_in(), *_EXTRA), key=lambda a: (a.order, a.name))
    names = [a.name for a in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two analytics share a name: {names}")
    return tuple(found)


@contextlib.contextmanager
def register(analytic: Analytic) -> Iterator[Analytic]:
    """Make an analytic of your own known for as long as the ``with`` block lasts."""
    _EXTRA.append(analytic)
    try:
        analytics()  # fail now on a clash
        yield analytic
    finally:
        _EXTRA.remove(analytic)


def names() -> tuple[str, ...]:
    return tuple(a.name for a in analytics())


def named(name: str) -> Analytic:
    return next(a for a in analytics() if a.name == name)


def running(settings: Settings) -> tuple[Analytic, ...]:
    """The analytics ``DMP_ANALYTICS`` asks for, in declared order."""
    return tuple(a for a in analytics() if settings.runs(a.name))


def setting_groups() -> tuple[type[Group], ...]:
    """The settings groups of the analytics, each once, in order."""
    return tuple(dict.fromkeys(a.settings for a in analytics() if a.settings is not None))


def event_fields(settings: Settings) -> tuple[str, ...]:
    """Optional event fields the running analytics use (``event_id`` always: de-duplication); the rest
    are not parsed."""
    wanted = ["event_id", *(f for a in running(settings) for f in a.fields)]
    return tuple(dict.fromkeys(wanted))


def dedup_extent_ms(settings: Settings) -> int:
    """The longest extent of the windows the running analytics' results depend on."""
    extents = [w.extent_ms for a in running(settings) for w in a.dedup_windows(settings)]
    return max(extents, default=0)


def streams(settings: Settings | None = None) -> tuple[OutputStream, ...]:
    """The output streams of the running analytics (of all of them without settings), engine streams included."""
    from flows.engine.monitor import MONITORING
    from flows.engine.present import DEAD_LETTERS, LATE, QUALITY, QUARANTINE

    chosen = analytics() if settings is None else running(settings)
    found = [DEAD_LETTERS, QUARANTINE, LATE, QUALITY, *(s for a in chosen for s in a.streams)]
    if settings is None or settings.monitor_interval_ms:
        found.append(MONITORING)
    unique: dict[str, OutputStream] = {}
    for declared in found:
        unique.setdefault(declared.name, declared)
    return tuple(unique.values())


def stream(name: str) -> OutputStream:
    """The declaration of the output stream ``name``."""
    for declared in streams():
        if declared.name == name:
            return declared
    raise KeyError(f"no output stream {name!r} (known: {', '.join(s.name for s in streams())})")


def markdown_table(extra_rows: Sequence[str] = ()) -> str:
    """The README's stream table, generated from the declarations."""
    rows = ["| Stream | One row per | Natural key | Fields |", "| --- | --- | --- | --- |"]
    for s in streams():
        key = ", ".join(f"`{k}`" for k in s.key)
        rows.append(f"| `{s.name}` | {s.row} | {key} | {s.fields} |")
    return "\n".join([*rows, *extra_rows])


def topic_table(prefix: str = "dmp.") -> str:
    """README-ops' table of output topics, their message keys and what writes them, from the declarations."""
    rows = ["| Topic | Message key | Written when |", "| --- | --- | --- |"]
    for s in streams():
        key = "the input message's key" if s.original is not None else "`" + "#".join(f"<{k}>" for k in s.key) + "`"
        owners = [a.name for a in analytics() if s in a.streams]
        when = (", ".join(f"`{name}`" for name in owners) + " in `DMP_ANALYTICS`") if owners else (
            "`DMP_MONITOR_INTERVAL` > 0" if s.name == "monitoring" else "always")
        rows.append(f"| `{prefix}{s.name}` | {key} | {when} |")
    return "\n".join(rows)
