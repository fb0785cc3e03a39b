"""Pure-ASGI middleware (no BaseHTTPMiddleware: it breaks streaming and disconnect detection)."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar

from fastapi import HTTPException

from service import metrics

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
log = logging.getLogger("aura.access")

_ROUTES = {"/v1/speech-chat", "/v1/chat/completions", "/v1/audio/transcriptions", "/v1/models", "/health", "/ready", "/metrics", "/"}
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestTooLarge(HTTPException):
    """Raised from inside `receive`; an HTTPException so FastAPI's body parsing re-raises it as is."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit / 1048576:g} MiB")


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()), *headers]})
    await send({"type": "http.response.body", "body": raw})


def known_key(token: str, keys) -> bool:
    """Compares with every key in constant time (hmac.compare_digest), so response timing tells an
    attacker nothing about how much of a guess was right."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(token.encode(), key.encode())
    return found


def open_without_key(path: str) -> bool:
    """/health, for liveness probes that carry no key (it says only "ok" or which engine died), and
    the playground's static page and code, which ask the user for the key themselves. Everything else
    needs one: /ready and /metrics describe the deployment, /docs and /openapi.json map the API."""
    return path in ("/health", "/") or path.startswith("/static/")


class ApiKeyMiddleware:
    """Bearer keys, checked from the headers before any of the body is read: a route's dependencies
    run only after FastAPI has read and parsed the whole body, so an unauthenticated 25 MB upload
    would otherwise be taken in full before its 401."""

    def __init__(self, app, keys: list[str]):
        self.app = app
        self.keys = keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.keys or open_without_key(scope["path"]):
            return await self.app(scope, receive, send)
        scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and known_key(token.strip(), self.keys):
            return await self.app(scope, receive, send)
        metrics.ERRORS.labels("invalid_api_key").inc()
        body = {"error": {"message": "missing or invalid API key (send Authorization: Bearer KEY)",
                          "type": "authentication_error", "param": None, "code": "invalid_api_key"}}
        await _send_json(send, 401, body, [(b"www-authenticate", b"Bearer")])


class BodyLimitMiddleware:
    """Refuses bodies over the limit from Content-Length, and counts streamed bytes as they arrive,
    so an upload never buffers more than the limit."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = RequestTooLarge(self.max_bytes)
        body = {"error": {"message": error.detail, "type": "invalid_request_error", "param": None, "code": "request_too_large"}}
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            metrics.ERRORS.labels("request_too_large").inc()
            return await _send_json(send, 413, body)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if not started:
                metrics.ERRORS.labels("request_too_large").inc()
                await _send_json(send, 413, body)


class RequestContextMiddleware:
    """A request id for every request (X-Request-Id, echoed back), an access log line, and the
    requests counter by route, mode and status."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _VALID_ID.match(given) else f"req-{uuid.uuid4().hex[:16]}"
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            route = path if path in _ROUTES or path.startswith("/static/") else "other"
            mode = scope["state"].get("mode", "none")
            metrics.REQUESTS.labels(route, mode, str(status)).inc()
            if route not in ("/health", "/metrics"):
                log.info("request", extra={"method": scope["method"], "path": path, "status": status, "mode": mode,
                                           "duration_ms": round((time.perf_counter() - t0) * 1000, 1)})
            request_id_var.reset(token)
