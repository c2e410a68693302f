"""create_app(): the FastAPI application — console, REST API, WeCom callback endpoint, health.

Routers are discovered, not listed: every `siyu.<domain>.router` and `siyu.<domain>.<part>_router`
module (REST, under /api) and every `siyu.console.routes.<page>` module (HTML) that defines `router`
is included.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

import siyu
from siyu.console.deps import SignInRequired
from siyu.core.errors import error_body, install_error_handlers
from siyu.core.tasks import configure_queue

PACKAGE = Path(siyu.__file__).parent


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse(error_body("invalid", f"{where}: {first.get('msg')}"), status_code=422)


async def _sign_in(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/login?next={exc.next_url}", status_code=303)


def discover_routers() -> list[APIRouter]:
    """Domain REST routers (siyu/<domain>/router.py, *_router.py), then console pages (siyu/console/routes/*.py)."""
    names = [
        f"siyu.{p.parent.name}.{p.stem}"
        for domain in sorted(PACKAGE.iterdir())
        if domain.is_dir()
        for p in sorted(domain.glob("*router.py"))
        if p.stem == "router" or p.stem.endswith("_router")
    ]
    routes_pkg = importlib.import_module("siyu.console.routes")
    names += [f"siyu.console.routes.{m.name}" for m in pkgutil.iter_modules(routes_pkg.__path__)]
    routers = []
    for name in names:
        router = getattr(importlib.import_module(name), "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers


def create_app(*, configure: bool = True) -> FastAPI:
    """configure=False leaves the queue as the caller set it (tests)."""
    if configure:
        configure_queue()
    app = FastAPI(title="siyu", version=siyu.__version__, description="私域 SCRM for WeCom — REST API")
    install_error_handlers(app)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.mount("/static", StaticFiles(directory=PACKAGE / "console" / "static"), name="static")
    for router in discover_routers():
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
