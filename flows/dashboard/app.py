"""The dashboard's HTTP routes (Starlette): the page, its static files, ``/healthz`` and the JSON API.

In: GET requests. Out: ``/`` (the page), ``/static/*`` (its script, styles and SVG charts, all served
from here: it works offline), ``/healthz`` (the process is up; it never waits on the database, so a
slow database cannot get the pod restarted), ``/api/`` (the endpoints, their parameters and meaning)
and one JSON endpoint per panel (:data:`~flows.dashboard.panels.ENDPOINTS`). A bad parameter is a 400
and an unreachable database a 503, each ``{"error": "..."}``; nothing answers with a traceback.

Handlers are plain functions: Starlette runs them on its thread pool, where the blocking database
drivers belong. ``/api/status`` is computed at most every :data:`STATUS_TTL_S` whatever the number of
pages polling it, so many open pages cost the database one small query set per half second.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.dashboard.database import Database, Session
from flows.dashboard.errors import DatabaseUnavailableError, ParameterError
from flows.dashboard.panels import ENDPOINTS, Endpoint, status
from flows.dashboard.params import REQUIRED, parse_query

STATIC = Path(__file__).parent / "static"
STATUS_TTL_S = 0.5
# The page loads nothing from elsewhere, and these headers say so to the browser too.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class JSON(Response):
    """JSON without NaN (values are finite or null already), compact, never cached."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200):
        super().__init__(content, status_code, headers={"cache-control": "no-store"})

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()


class _SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
            await send(message)

        await self.app(scope, receive, with_headers)


class _Status:
    """``status()`` shared by every poller for :data:`STATUS_TTL_S`."""

    def __init__(self, db: Database):
        self.db = db
        self.lock = threading.Lock()
        self.at = -1.0
        self.value: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        with self.lock:
            if self.value is None or time.monotonic() - self.at >= STATUS_TTL_S:
                with self.db.session() as s:
                    self.value = {"database": self.db.url, "exists": self.db.exists(), **status(s)}
                self.at = time.monotonic()
            return self.value


def _handler(db: Database, endpoint: Endpoint, shared: _Status) -> Callable[[Request], Response]:
    def handle(request: Request) -> Response:
        query = {name: request.query_params.getlist(name) for name in request.query_params}
        params = parse_query(query, endpoint.params)
        if endpoint.path == "/api/status":
            return JSON(shared.get())
        s: Session
        with db.session() as s:
            return JSON(endpoint.read(s, params))

    return handle


def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


def _healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


def _api_index(request: Request) -> Response:
    return JSON({"endpoints": [{
        "path": e.path, "summary": e.summary, "streams": list(e.streams),
        "params": [{"name": p.name, "help": p.help, "required": p.default is REQUIRED} for p in e.params],
    } for e in ENDPOINTS]})


async def _bad_parameter(request: Request, ex: Exception) -> Response:
    return JSON({"error": str(ex)}, 400)


async def _unavailable(request: Request, ex: Exception) -> Response:
    return JSON({"error": str(ex)}, 503)


async def _http_error(request: Request, ex: Exception) -> Response:
    assert isinstance(ex, HTTPException)
    return JSON({"error": f"{ex.detail}: {request.url.path}"}, ex.status_code)


def create_app(db: Database) -> Starlette:
    """The dashboard over ``db`` (closed when the app shuts down)."""
    shared = _Status(db)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        db.close()

    routes = [
        Route("/", _index, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/api/", _api_index, methods=["GET"]),
        *(Route(e.path, _handler(db, e, shared), methods=["GET"]) for e in ENDPOINTS),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        ParameterError: _bad_parameter, DatabaseUnavailableError: _unavailable, HTTPException: _http_error})
    app.add_middleware(_SecurityHeaders)
    return app
