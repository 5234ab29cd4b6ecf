"""The live dashboard: a read-only web view of the results database (``python -m flows.dashboard``).

In: the results database a flow writes with ``DMP_SINK`` including ``db``
(``DMP_DB_URL``: SQLite or PostgreSQL; one table per output stream, as
:mod:`flows.engine.streams` declares it). Out: one page of panels at ``/``,
the same data as JSON under ``/api/`` and ``GET /healthz``.

- :mod:`~flows.dashboard.settings`: where it listens, what it reads;
- :mod:`~flows.dashboard.database`: read-only connections, rows as JSON values;
- :mod:`~flows.dashboard.panels`: one query per panel;
- :mod:`~flows.dashboard.params`: request parameters, checked (a 400, never a traceback);
- :mod:`~flows.dashboard.app`: the HTTP routes; ``static/``: the page and its SVG charts.

Nothing here imports the web stack at package import, so the settings
are known to every flow without it.
"""
