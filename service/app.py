"""The FastAPI application: settings → state → routes, middleware and error handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from service import metrics
from service.api import STATIC_DIR, public, v1
from service.errors import APIError
from service.limits import AdmissionMiddleware
from service.middleware import ApiKeyMiddleware, BodyLimitMiddleware, RequestContextMiddleware
from service.settings import Settings
from service.state import ServerState

log = logging.getLogger("aura.server")


def _error(status: int, message: str, *, type: str = "invalid_request_error", param=None, code=None, headers=None) -> JSONResponse:
    return APIError(status, message, type=type, param=param, code=code, headers=headers).response()


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form")]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid request").removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
    return (f"{param}: {msg}" if param else msg), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError):
        metrics.ERRORS.labels(exc.code or exc.type).inc()
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        metrics.ERRORS.labels("invalid_request").inc()
        return _error(400, message, param=param, code="invalid_request")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code, "http_error")
        metrics.ERRORS.labels(code).inc()
        return _error(exc.status_code, str(exc.detail), code=code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        metrics.ERRORS.labels("internal_error").inc()
        return _error(500, "internal server error", type="server_error", code="internal_error")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load in the background so /health answers at once and /ready reports progress.
        async def load():
            try:
                await state.start()
            except Exception:
                state.failed = True
                log.exception("startup failed; shutting down")
                os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.create_task(load())
        yield
        task.cancel()
        await state.stop()

    app = FastAPI(
        title="AuRA serving",
        version="0.1.0",
        description="Speech-language models that follow the AuRA method, behind an OpenAI-compatible API, "
        "with the cascaded Whisper→LLM path beside them for comparison.",
        lifespan=lifespan,
    )
    app.state.server = state
    install_error_handlers(app)
    app.include_router(public)
    app.include_router(v1)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The last added runs first. All three act before the body is read: who (the key), how much (a
    # declared length over the limit is refused without waiting for a slot), then when (a slot).
    app.add_middleware(AdmissionMiddleware, limiter=state.limiter)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    app.add_middleware(RequestContextMiddleware)
    return app
