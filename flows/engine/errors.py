"""Exceptions raised by the platform, all under one base class.

Bad *data* never raises: it becomes a dead letter. These are for bad
configuration (raised at start-up, naming the setting) and for broken
invariants that mean the pipeline cannot go on safely.
"""


class DmpError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigError(DmpError, ValueError):
    """A setting is missing, malformed or inconsistent.

    The message always names the environment variable (or argument) at
    fault and what was expected.
    """


class SourceError(DmpError):
    """A source cannot be opened or read (missing file, bad header)."""


class StateError(DmpError):
    """Snapshotted state cannot be used by this build (e.g. shard count changed)."""
