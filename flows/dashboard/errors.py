"""The dashboard's exceptions, under the platform's :class:`~flows.engine.errors.DmpError`."""

from __future__ import annotations

from flows.engine.errors import DmpError


class DashboardError(DmpError):
    """Base class of the dashboard's errors."""


class ParameterError(DashboardError, ValueError):
    """A request parameter is unknown or malformed: the client's mistake, answered with a 400 and this message."""


class DatabaseUnavailableError(DashboardError):
    """The results database cannot be reached or read (answered with a 503; never shows a password)."""
