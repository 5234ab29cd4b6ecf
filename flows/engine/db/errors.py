"""Exceptions of the results database, under one base class (itself a :class:`~flows.engine.errors.DmpError`).

Every message is one line that names ``DMP_DB_URL`` (with the password
masked) or the table, column, stream and batch at fault.
"""

from __future__ import annotations

from flows.engine.errors import DmpError


class DbError(DmpError):
    """Base class of the results database's errors."""


class DbUnavailableError(DbError):
    """The database cannot be reached or opened (bad address, no such database, refused login).

    ``reason`` is the driver's message alone, without the URL.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class SchemaMismatchError(DbError):
    """An existing table does not have the columns its stream declares; nothing is written to it."""


class DbWriteError(DbError):
    """A batch could not be written: the database refused it, or stayed away longer than ``DMP_DB_RETRY``."""
