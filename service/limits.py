"""Admission control: at most N requests run, at most Q wait; the rest get 429/503 with Retry-After."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

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

    @asynccontextmanager
    async def slot(self):
        await self.acquire()
        try:
            yield
        finally:
            self.release()
