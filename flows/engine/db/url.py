"""``DMP_DB_URL``: where the results database is, parsed once and never shown with its password.

In: the setting's text. Out: a :class:`DbUrl` that knows its dialect, its
SQLite file or PostgreSQL connection string, and a masked form for every
message. Parsing never raises: a bad URL carries its :attr:`DbUrl.problem`,
which the settings check reports as ``DMP_DB_URL: ...`` without echoing
the raw text (it may hold a password).

SQLite URLs follow SQLAlchemy's convention: three slashes and a relative
path, four for an absolute one. ``$DMP_OUT_DIR`` at the start of the path
is the file outputs' directory (the default, ``sqlite:///$DMP_OUT_DIR/dmp.sqlite``,
so the database sits beside the files):

>>> DbUrl.parse("sqlite:///$DMP_OUT_DIR/dmp.sqlite").resolve("/srv/out").path
'/srv/out/dmp.sqlite'
>>> DbUrl.parse("postgresql://dmp:s3cret@db.example.com:5432/dmp")
DbUrl('postgresql://dmp:***@db.example.com:5432/dmp')
>>> DbUrl.parse("mysql://root@db/dmp").problem
"expected sqlite:///path/to/file.sqlite or postgresql://user:password@host:5432/database; got 'mysql://root@db/dmp'"
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

Dialect = Literal["sqlite", "postgresql"]
OUT_DIR = "$DMP_OUT_DIR"
EXPECTED = "expected sqlite:///path/to/file.sqlite or postgresql://user:password@host:5432/database"
_SCHEMES: dict[str, Dialect] = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


@dataclass(frozen=True)
class DbUrl:
    """A parsed ``DMP_DB_URL``; ``str()`` and ``repr()`` show it with the password masked."""

    text: str = field(repr=False)
    dialect: Dialect | None = None
    path: str | None = None
    """SQLite: the database file (may start with ``$DMP_OUT_DIR`` until :meth:`resolve`)."""
    problem: str | None = None
    masked: str = ""
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> DbUrl:
        text = text.strip()
        try:
            parts = urlsplit(text)
            dialect = _SCHEMES.get(parts.scheme.lower())
            password = parts.password
            masked = _masked(parts, text)
            port = parts.port if dialect == "postgresql" else None  # ValueError on a bad port
        except ValueError as ex:
            return cls(text, problem=f"{EXPECTED} ({ex})", masked="(unparseable URL)")
        shown = f"; got {masked!r}"
        if dialect is None:
            return cls(text, problem=f"{EXPECTED}{shown}", masked=masked, password=password)
        if dialect == "sqlite":
            path = parts.path[1:] if parts.path.startswith("/") else ""
            if parts.netloc or not path or parts.query or path == ":memory:":
                problem = ("a SQLite URL is sqlite:/// and a file path (four slashes for an absolute one), "
                           f"shared by every worker, so not :memory:{shown}")
                return cls(text, problem=problem, masked=masked)
            return cls(text, "sqlite", path=path, masked=masked)
        if port == 0 or not parts.path.strip("/"):
            problem = f"a PostgreSQL URL names its database: postgresql://user:password@host:5432/database{shown}"
            return cls(text, problem=problem, masked=masked, password=password)
        return cls(text, "postgresql", masked=masked, password=password)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"DbUrl({self.masked!r})"

    def resolve(self, out_dir: Path | str) -> DbUrl:
        """The URL with ``$DMP_OUT_DIR`` replaced by ``out_dir``."""
        if self.path is None or not self.path.startswith(OUT_DIR):
            return self
        path = str(Path(out_dir) / self.path[len(OUT_DIR):].lstrip("/"))
        text = f"sqlite:///{path}"  # an absolute path makes the four slashes
        return replace(self, text=text, path=path, masked=text)

    def hide(self, message: str) -> str:
        """``message`` with the password masked (drivers' messages may quote the connection string)."""
        if self.password:
            for secret in {self.password, unquote(self.password)}:
                message = message.replace(secret, "***")
        return message


def _masked(parts: SplitResult, text: str) -> str:
    if parts.password is None:
        return text
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return text.replace(parts.netloc, f"{user}:***@{netloc[2]}", 1)
