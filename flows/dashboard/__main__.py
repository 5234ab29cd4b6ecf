"""``python -m flows.dashboard``: serve the dashboard over the results database (``DMP_DB_URL``).

Settings (``DMP_DASHBOARD_HOST``, ``DMP_DASHBOARD_PORT``, ``DMP_DB_URL``; every ``DMP_*`` variable is
checked) and dependencies are checked first: a bad setting or a missing package is one line on stderr
and exit status 2. It listens on 127.0.0.1 unless told otherwise: it has no authentication of its own.
"""

from __future__ import annotations

import os
import sys

from flows.engine.errors import ConfigError


def main() -> int:
    from flows.dashboard.database import open_database
    from flows.dashboard.settings import from_env

    try:
        config = from_env(os.environ)
        db = open_database(config.db_url)
    except ConfigError as ex:
        print(f"dmp: {ex}", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from flows.dashboard.app import create_app
    except ImportError as ex:
        print(f"dmp: the dashboard needs {ex.name}, which is not installed: pip install starlette uvicorn",
              file=sys.stderr)
        return 2
    host, port = config.listen.host, config.listen.port
    shown_host = f"[{host}]" if ":" in host else host
    print(f"dmp dashboard: http://{shown_host}:{port}/ reading {db.url}", flush=True)
    if not config.listen.loopback:
        print(f"dmp dashboard: listening on {host}, beyond this machine, with no authentication of its own: "
              "keep an authenticating proxy in front of it (README-ops.md, \"The dashboard\")", flush=True)
    uvicorn.run(create_app(db), host=host, port=port, access_log=False, log_level="warning",
                timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
