"""Admission control: at most N requests run, at most Q wait; the rest get 429/503 with Retry-After.

AdmissionMiddleware applies the limit before a request's body is read (a queued request reads at
most its first body message, to see its client leave), so the number of slots bounds how many
bodies (each up to --max-upload-mb) are in memory at once."""

from __future__ import annotations

import asyncio
from collections import deque

from service import metrics
from service.errors import APIError


class ConcurrencyLimiter:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float):
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._sem = asyncio.Semaphore(max_concurrency)
        self.waiting = 0

    async def enter(self) -> asyncio.Task | None:
        """Takes a free slot at once (None), refuses with 429 when the queue is full, or takes a place in
        the queue: the task returned ends with the slot, or with a 503 past the timeout, and cancelling
        it gives the place back. Nothing here suspends, so the caller knows which before anything else
        runs (the middleware reads nothing of a refused request), and a free slot the caller saw is its."""
        if not self._sem.locked():
            await self._sem.acquire()  # returns without suspending when a slot is free
            return None
        if self.waiting >= self.max_queue:
            raise APIError(429, "the server is at capacity and its queue is full; retry later",
                           type="rate_limit_error", code="queue_full", headers={"Retry-After": "1"})
        self.waiting += 1
        waiter = asyncio.ensure_future(self._wait())
        # A callback, not a finally in _wait: a task cancelled before its first step never runs its body.
        waiter.add_done_callback(self._leave_queue)
        return waiter

    async def _wait(self) -> None:
        try:
            await asyncio.wait_for(self._sem.acquire(), self.queue_timeout_s)
        except TimeoutError:
            raise APIError(503, f"no capacity within {self.queue_timeout_s:g} s; retry later",
                           type="server_busy", code="queue_timeout", headers={"Retry-After": "5"}) from None

    def _leave_queue(self, _: asyncio.Task) -> None:
        self.waiting -= 1

    async def acquire(self) -> None:
        """A slot, waiting for it if need be (429/503 as enter() says)."""
        waiter = await self.enter()
        if waiter is not None:
            await waiter

    def release(self) -> None:
        self._sem.release()


class AdmissionMiddleware:
    """Every POST to /v1/ (the routes that run the model) holds a slot from before its body is read
    until its response is done with. FastAPI reads and parses a body before a route runs, so a limit
    taken in the route would let any number of bodies pile up in memory first. The slot is given back
    when the app returns, which for a streamed response is after its last chunk or its client's
    disconnect (ClosingStream): one place, once per request, however it ends.

    A request that has to wait watches its client meanwhile: one that leaves gives its queue place
    back at once (a 499 `client_closed_in_queue` in the log and the metrics) rather than holding it,
    and so refusing others with 429, until a slot comes free only to find nobody there. ASGI tells a
    server-side app of a disconnect only through receive(), which also hands over the body; so a
    queued request calls it, and what it returns is replayed to the app once the slot is granted."""

    def __init__(self, app, limiter: ConcurrencyLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        taken: deque[asyncio.Future] = deque()  # receive() calls made while queued, oldest first
        try:
            try:
                waiter = await self.limiter.enter()  # a 429 comes from here, before anything is read
                if waiter is not None:
                    await self._wait_watching(waiter, receive, taken)
            except APIError as refused:  # outside FastAPI's exception handlers: answer here
                metrics.ERRORS.labels(refused.code).inc()
                return await refused.response()(scope, receive, send)

            async def replayed_receive():
                return await taken.popleft() if taken else await receive()

            try:
                await self.app(scope, replayed_receive, send)
            finally:
                self.limiter.release()
        finally:
            for call in taken:  # a watch still pending (the app did not read that far): nobody wants it now
                call.cancel()

    async def _wait_watching(self, slot: asyncio.Task, receive, taken: deque[asyncio.Future]) -> None:
        """Waits for the queued `slot` (raising the limiter's 503, or a 499 if the client leaves first) while
        watching the client through receive(). It reads at most one body message: once that says more
        body follows, watching further would mean taking in the whole body without a slot, so such a
        request (an upload bigger than what the server had buffered) waits unwatched; its app sees the
        disconnect when it runs. Pending receive() calls are handed to the app, never cancelled while
        it may still need them: a server's receive() need not be safe to cancel."""
        watching = True
        try:
            while True:
                if watching and not (taken and not taken[-1].done()):
                    taken.append(asyncio.ensure_future(receive()))
                await asyncio.wait({slot, taken[-1]} if watching else {slot}, return_when=asyncio.FIRST_COMPLETED)
                if slot.done():
                    slot.result()  # the slot, or the limiter's 503
                    return
                message = taken[-1].result()  # or what receive() raised (BodyLimitMiddleware's 413): as the app would
                if message["type"] == "http.disconnect":
                    raise APIError(499, "client closed the request while it waited for a slot", code="client_closed_in_queue")
                watching = message["type"] == "http.request" and not message.get("more_body", False)
        except BaseException:  # the client left, receive() failed, or this request is being cancelled
            self._give_up(slot)
            raise

    def _give_up(self, slot: asyncio.Future) -> None:
        """Leaves the queue. The cancellation lands when the waiting task next runs, and on Python 3.11
        asyncio.wait_for returns a slot granted in that same moment instead of raising: a slot that
        arrives after nobody wants it goes straight back."""
        def settle(task: asyncio.Future) -> None:
            if not task.cancelled() and task.exception() is None:
                self.limiter.release()

        slot.add_done_callback(settle)
        slot.cancel()
