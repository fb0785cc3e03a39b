"""Admission control: at most N requests run, at most Q wait; the rest get 429/503 with Retry-After.

AdmissionMiddleware applies the limit before a request's body is read, so the number of slots
bounds how many bodies (each up to --max-upload-mb) are in memory at once."""

from __future__ import annotations

import asyncio

from service import metrics
from service.errors import APIError


class ConcurrencyLimiter:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float):
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._sem = asyncio.Semaphore(max_concurrency)
        self.waiting = 0

    async def acquire(self) -> None:
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise APIError(429, "the server is at capacity and its queue is full; retry later",
                           type="rate_limit_error", code="queue_full", headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), self.queue_timeout_s)
        except TimeoutError:
            raise APIError(503, f"no capacity within {self.queue_timeout_s:g} s; retry later",
                           type="server_busy", code="queue_timeout", headers={"Retry-After": "5"}) from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._sem.release()


class AdmissionMiddleware:
    """Every POST to /v1/ (the routes that run the model) holds a slot from before its body is read
    until its response is done with. FastAPI reads and parses a body before a route runs, so a limit
    taken in the route would let any number of bodies pile up in memory first. The slot is given back
    when the app returns, which for a streamed response is after its last chunk or its client's
    disconnect (ClosingStream): one place, once per request, however it ends."""

    def __init__(self, app, limiter: ConcurrencyLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        try:
            await self.limiter.acquire()
        except APIError as refused:  # outside FastAPI's exception handlers: answer here
            metrics.ERRORS.labels(refused.code).inc()
            return await refused.response()(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release()
