"""create_app(): the FastAPI application — REST API, the WeCom callback endpoint, health."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

import siyu
from siyu.callbacks.router import router as callback_router
from siyu.core.errors import error_body, install_error_handlers
from siyu.core.tasks import configure_queue
from siyu.corp.router import router as corp_router


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse(error_body("invalid", f"{where}: {first.get('msg')}"), status_code=422)


def create_app(*, configure: bool = True) -> FastAPI:
    """configure=False leaves the queue as the caller set it (tests)."""
    if configure:
        configure_queue()
    app = FastAPI(title="siyu", version=siyu.__version__, description="私域 SCRM for WeCom")
    install_error_handlers(app)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(callback_router)
    app.include_router(corp_router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
