"""One setting, declared once: its ``DMP_*`` name, default, parser, range and help.

A group of settings is a frozen dataclass (subclass :class:`Group`) whose
fields are declared with :func:`setting`::

    @dataclass(frozen=True)
    class FunnelSettings(Group):
        funnel_window_ms: int = setting("DMP_FUNNEL_WINDOW", "1h", duration, "Tumbling window of the funnel",
                                        positive, whole_seconds)

The default is written once, as a user would write it in the environment,
and parsed for the field's default, so the README's table, the parser and
the dataclass can never disagree. Range checks run on every instance,
however it was built (from the environment or in a test), and fail with a
:class:`~flows.engine.errors.ConfigError` naming the variable. Cross-field
rules go in a group's :meth:`Group.check`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

from flows.engine.errors import ConfigError

T = TypeVar("T")
Parser = Callable[[str], Any]
Check = Callable[[Any], "str | None"]  # a problem with the value, or None


@dataclass(frozen=True)
class Setting:
    """One ``DMP_*`` variable: where it goes, its default as text, how it parses and what it means."""

    env: str
    default: str | Callable[[], str]
    parse: Parser
    help: str
    checks: tuple[Check, ...] = ()
    secret: bool = False
    attr: str = ""  # the field it fills (set by the group)

    @property
    def default_text(self) -> str:
        return self.default() if callable(self.default) else self.default

    def read(self, text: str) -> Any:
        """Parse a value from the environment; :class:`ConfigError` names the variable (never a secret)."""
        try:
            return self.parse(text)
        except ValueError as ex:
            shown = "(hidden)" if self.secret else repr(text)
            raise ConfigError(f"{self.env}={shown}: {'invalid value' if self.secret else ex}") from None

    def problem(self, value: Any) -> str | None:
        for check in self.checks:
            found = check(value)
            if found:
                return found
        return None


_SETTING = "dmp_setting"


def setting(env: str, default: str | Callable[[], str], parse: Parser, help: str, *checks: Check,
            secret: bool = False, unset: Any = None) -> Any:
    """A dataclass field for one setting; its default is ``parse(default)``, or ``unset`` when that is empty."""
    declared = Setting(env, default, parse, help, checks, secret)

    def factory() -> Any:
        text = declared.default_text
        return parse(text) if text else unset

    return dataclasses.field(default_factory=factory, repr=not secret, metadata={_SETTING: declared})


@dataclass(frozen=True)
class Group:
    """A frozen group of settings; range checks and :meth:`check` run on every instance."""

    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for declared in self.declared():
            value = getattr(self, declared.attr)
            if value is None:
                continue
            problem = declared.problem(value)
            if problem:
                raise ConfigError(f"{declared.env}: {problem}")
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise :class:`ConfigError` naming a variable."""

    @classmethod
    def declared(cls) -> Iterator[Setting]:
        for f in dataclasses.fields(cls):
            if _SETTING in f.metadata:
                yield dataclasses.replace(f.metadata[_SETTING], attr=f.name)

    @classmethod
    def read(cls: type[T], env: Mapping[str, str]) -> T:
        """The group from ``env`` (variables not given keep their defaults)."""
        values = {s.attr: s.read(env[s.env]) for s in cls.declared() if s.env in env}  # type: ignore[attr-defined]
        return cls(**values)


# -- parsers: text -> value (ValueError says what was expected) ------------------------

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")


def duration(text: str) -> int:
    """``500ms``, ``30s``, ``1m``, ``1h30m``, ``2d`` or ``0`` -> milliseconds.

    >>> duration("1h30m")
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


def instant(text: str) -> int:
    """An ISO-8601 instant (``Z`` or an offset; naive means UTC), or ``now`` -> epoch milliseconds."""
    if text.strip().lower() == "now":
        return int(datetime.now(timezone.utc).timestamp() * 1000)
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = f"expected true or false; got {text!r}"
    raise ValueError(msg)


def integer(text: str) -> int:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        msg = f"expected an integer; got {text!r}"
        raise ValueError(msg) from None


_UNITS_BYTES = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
_SIZE = re.compile(r"(\d+)\s*([a-z]*)")


def size(text: str) -> int:
    """``1000000``, ``500kB``, ``256MB``, ``1GiB`` or ``0`` -> bytes.

    >>> size("256MB"), size("1GiB"), size("0")
    (256000000, 1073741824, 0)
    """
    match = _SIZE.fullmatch(text.strip().lower().replace("_", ""))
    if match is None or match.group(2) not in _UNITS_BYTES:
        msg = f"expected a size in bytes, like 256MB, 1GiB or 0; got {text!r}"
        raise ValueError(msg)
    return int(match.group(1)) * _UNITS_BYTES[match.group(2)]


def number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        msg = f"expected a number; got {text!r}"
        raise ValueError(msg) from None
    if not math.isfinite(value):
        msg = f"expected a finite number; got {text!r}"
        raise ValueError(msg)
    return value


def text(value: str) -> str:
    return value.strip()


def choice(*allowed: str) -> Parser:
    def parse(value: str) -> str:
        chosen = value.strip().lower()
        if chosen not in allowed:
            msg = f"expected one of {', '.join(allowed)}; got {value!r}"
            raise ValueError(msg)
        return chosen

    return parse


def choices(allowed: Callable[[], tuple[str, ...]] | tuple[str, ...], example: str = "") -> Parser:
    """A comma-separated list of some of ``allowed``, in the order given, each once."""

    def parse(value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
        known = allowed() if callable(allowed) else allowed
        if not names or any(name not in known for name in names):
            msg = f"expected {example or 'a comma-separated list of ' + ', '.join(known)}; got {value!r}"
            raise ValueError(msg)
        return names

    return parse


def optional(parse: Parser) -> Parser:
    """An empty value means "not set" (``None``)."""

    def parse_optional(value: str) -> Any:
        return None if not value.strip() else parse(value)

    return parse_optional


def matching(pattern: str, description: str) -> Parser:
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value.strip()):
            msg = f"{description}; got {value!r}"
            raise ValueError(msg)
        return value.strip()

    return parse


# -- range checks: value -> problem or None ------------------------------------------


def at_least(minimum: float) -> Check:
    return lambda value: None if value >= minimum else f"must be >= {minimum}; got {value!r}"


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0; got {value!r}"


def whole_seconds(ms: int) -> str | None:
    return None if ms % 1000 == 0 else f"must be a whole number of seconds; got {ms} ms"


def fraction(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else f"expected a fraction in [0, 1); got {value!r}"
