"""Request parameters, declared per endpoint and checked: a bad one is a :class:`ParameterError` (a 400).

In: a request's query string (name -> values). Out: a dict with every declared parameter, parsed or
defaulted. An unknown name, a repeated one, a missing required one or a value that does not parse
is an error whose message names the parameter and says what was expected.

>>> window = Param("window", instant, None, "a window's start")
>>> parse_query({"window": ["2024-01-01T00:05:00Z"]}, (window,))["window"].isoformat()
'2024-01-01T00:05:00+00:00'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flows.dashboard.errors import ParameterError

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One query parameter: its name, parser (``ValueError`` says what it expected), default and meaning."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str


def parse_query(query: Mapping[str, Sequence[str]], declared: Sequence[Param]) -> dict[str, Any]:
    """Every declared parameter, parsed from ``query`` or defaulted; :class:`ParameterError` otherwise."""
    known = {p.name: p for p in declared}
    for name in query:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            accepted = f" (accepted: {', '.join(known)})" if known else " (it takes none)"
            raise ParameterError(f"unknown parameter {name!r}{hint}{accepted}")
    values: dict[str, Any] = {}
    for param in declared:
        given = query.get(param.name, ())
        if len(given) > 1:
            raise ParameterError(f"{param.name}: given {len(given)} times; give it once")
        if not given:
            if param.default is REQUIRED:
                raise ParameterError(f"{param.name}: required ({param.help})")
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parse(given[0])
        except ValueError as ex:
            raise ParameterError(f"{param.name}={given[0][:100]!r}: {ex}") from None
    return values


def instant(text: str) -> datetime:
    """ISO-8601 with ``Z`` or an offset (naive: UTC) -> an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        msg = "expected an ISO-8601 time such as 2024-01-01T00:05:00Z"
        raise ValueError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def count(low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            msg = f"expected a whole number from {low} to {high}"
            raise ValueError(msg) from None
        if not low <= value <= high:
            msg = f"expected a whole number from {low} to {high}"
            raise ValueError(msg)
        return value

    return parse


def one_of(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            msg = f"expected one of {', '.join(allowed)}"
            raise ValueError(msg)
        return text

    return parse


def name(text: str) -> str:
    """A product id, category or search text: 1-200 printable characters."""
    if not text or len(text) > 200 or not text.isprintable():
        msg = "expected 1-200 printable characters"
        raise ValueError(msg)
    return text
