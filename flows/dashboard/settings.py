"""The dashboard's settings: where it listens, and which results database it reads.

In: ``DMP_*`` environment variables. Out: a :class:`DashboardConfig` (its
own :class:`DashboardSettings` group plus the database URL), or a
:class:`~flows.engine.errors.ConfigError` naming the variable at fault.
Every other ``DMP_*`` variable is checked too (an unknown name is an
error, as for a flow), so a variable set for the flow beside it never
goes unnoticed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from flows.engine.setting import Group, integer, setting, text

LOOPBACK = "127.0.0.1"

def _port(value: str) -> int:
    port = integer(value)
    if not 1 <= port <= 65535:
        msg = f"expected a TCP port, 1-65535; got {value!r}"
        raise ValueError(msg)
    return port


def _host(value: str) -> str:
    host = text(value)
    if not host or any(c.isspace() for c in host) or "/" in host:
        msg = f"expected an address to listen on, such as 127.0.0.1, 0.0.0.0 or ::1; got {value!r}"
        raise ValueError(msg)
    return host


@dataclass(frozen=True)
class DashboardSettings(Group):
    """The dashboard (``python -m flows.dashboard``)."""

    title = "Dashboard"

    host: str = setting("DMP_DASHBOARD_HOST", LOOPBACK, _host,
                        "Address the dashboard listens on; the default is reachable from this machine only "
                        "(`0.0.0.0`: every interface, e.g. in a container)")
    port: int = setting("DMP_DASHBOARD_PORT", "8050", _port, "TCP port of the dashboard")

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


@dataclass(frozen=True)
class DashboardConfig:
    """What ``python -m flows.dashboard`` needs: where to listen and the database to read."""

    listen: DashboardSettings
    db_url: str


def from_env(env: Mapping[str, str]) -> DashboardConfig:
    """Read and check every ``DMP_*`` variable; :class:`~flows.engine.errors.ConfigError` names a bad one."""
    from flows.engine.config import Settings

    engine = Settings.from_env(env)  # DMP_DB_URL is the results database's own setting (DbSettings)
    return DashboardConfig(DashboardSettings.read(env), engine.db_url.text)
