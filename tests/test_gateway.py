"""The gateway in this process, through httpx's ASGI transport, with no engine: what it decides before
a request's body is read (its key, a slot), which routes need a key, what /ready tells a client, and
that it answers while an engine loads."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from helpers import metric

from service.app import create_app
from service.settings import Settings

KEY = "key-1"


def gateway(tiny, **settings):
    return create_app(Settings(bundle=tiny["bundle"], **settings))


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway")


class Body:
    """A request body in two chunks that records how many of them the server read."""

    def __init__(self, data: bytes = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'):
        self.parts = [data[:10], data[10:]]
        self.read = 0

    async def chunks(self):
        for part in self.parts:
            self.read += 1
            yield part


@pytest.mark.parametrize("max_queue, status, code", [(0, 429, "queue_full"), (1, 503, "queue_timeout")])
def test_a_request_without_a_slot_is_refused_before_its_body_is_read(tiny, max_queue, status, code):
    async def scenario():
        app = gateway(tiny, max_concurrency=1, max_queue=max_queue, queue_timeout_s=0.2)
        limiter = app.state.server.limiter
        await limiter.acquire()  # the request that is running
        async with client(app) as c:
            bodies = {path: Body() for path in ("/v1/chat/completions", "/v1/speech-chat", "/v1/audio/transcriptions")}
            for path, body in bodies.items():
                r = await c.post(path, content=body.chunks(), headers={"content-type": "application/json"})
                assert r.status_code == status and r.json()["error"]["code"] == code, (path, r.text)
                assert r.headers["retry-after"]
                # Refused outright: nothing read. Queued: at most the first chunk, the one receive() the
                # middleware makes to see the client leave; the rest of the body waits for a slot.
                assert body.read <= (1 if max_queue else 0), f"{path}: the body was read although the request got no slot"
            # GETs run no model: they take no slot.
            assert (await c.get("/v1/models")).status_code == 503  # not loaded: no lifespan here
            assert (await c.get("/health")).status_code == 200
        limiter.release()

    asyncio.run(scenario())


class StubPipeline:
    """A loaded model that answers "hi" (enough of service.pipeline.Pipeline for the chat routes)."""

    has_cascade = False
    models: dict = {None: None}  # the default AuRA model only

    async def prepare(self, job):
        from service.pipeline import ChatResult

        return SimpleNamespace(result=ChatResult(text="hi", finish_reason="stop"))

    async def generate(self, prepared):
        yield "hi"

    async def complete(self, job):
        return (await self.prepare(job)).result


def test_every_request_gives_its_slot_back_once(tiny):
    async def scenario():
        app = gateway(tiny, max_concurrency=1, max_queue=0)
        state = app.state.server
        async with client(app) as c:
            model = state.model_name
            chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            assert (await c.post("/v1/chat/completions", json=chat)).status_code == 503  # refused by the route: not loaded
            state.ready, state.pipeline = True, StubPipeline()
            assert (await c.post("/v1/chat/completions", json={**chat, "messages": []})).status_code == 400
            assert (await c.post("/v1/chat/completions", json=chat)).status_code == 200
            streamed = await c.post("/v1/chat/completions", json={**chat, "stream": True})
            assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        # One slot, given back by each request above and not more: one acquire passes, the next is refused.
        await state.limiter.acquire()
        with pytest.raises(Exception, match="queue is full"):
            await state.limiter.acquire()

    asyncio.run(scenario())


async def until(condition, timeout_s: float = 5.0) -> bool:
    """Polls `condition` (the server runs in this event loop) until it holds or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_a_client_that_leaves_the_queue_gives_its_place_back_at_once(tiny):
    """Over real HTTP (uvicorn in this event loop, so the test can hold the only slot): a client that
    sends its request, is queued behind the running one, and closes its connection must leave the
    queue then, not keep its place (and the queue's only place) until a slot comes free."""
    import uvicorn

    async def scenario():
        app = gateway(tiny, max_concurrency=1, max_queue=1, queue_timeout_s=30)
        state = app.state.server
        state.ready, state.pipeline = True, StubPipeline()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve())
        assert await until(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        chat = {"model": state.model_name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        left = metric((await httpx.AsyncClient().get(url + "/metrics")).text, "aura_errors_total", code="client_closed_in_queue")

        await state.limiter.acquire()  # the request that is running
        try:
            body = json.dumps(chat).encode()
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            assert await until(lambda: state.limiter.waiting == 1), "the first client was not queued"
            writer.close()
            await writer.wait_closed()
            await until(lambda: state.limiter.waiting == 0, timeout_s=2)

            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                second = asyncio.create_task(c.post("/v1/chat/completions", json=chat))
                if await until(second.done, timeout_s=1):  # a full queue answers at once; a queued request waits
                    r = second.result()
                    pytest.fail(f"the client that left kept the queue's only place: the next one got {r.status_code} {r.text}")
                assert await until(lambda: state.limiter.waiting == 1), "the next request was not queued"
                state.limiter.release()  # the running request ends: the queued one runs, its body intact
                r = await second
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi", r.text
                text = (await c.get("/metrics")).text
            assert metric(text, "aura_errors_total", code="client_closed_in_queue") == left + 1
            # Nothing left waiting, the slot given back once: one acquire passes at once.
            assert state.limiter.waiting == 0
            await asyncio.wait_for(state.limiter.acquire(), 1)
        finally:
            server.should_exit = server.force_exit = True  # force: do not wait on a request still queued
            await serving

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_queued_request_gets_the_body_read_while_it_waited(tiny):
    """The first chunk a queued request's watch took is handed to the app before the rest."""
    async def scenario():
        app = gateway(tiny, max_concurrency=1, max_queue=1)
        state = app.state.server
        state.ready, state.pipeline = True, StubPipeline()
        await state.limiter.acquire()  # the request that is running
        body = Body(json.dumps({"model": state.model_name, "messages": [{"role": "user", "content": "hi"}]}).encode())
        async with client(app) as c:
            queued = asyncio.create_task(c.post("/v1/chat/completions", content=body.chunks(),
                                                headers={"content-type": "application/json"}))
            assert await until(lambda: body.read == 1)
            await asyncio.sleep(0.1)
            assert body.read == 1 and not queued.done()  # the first chunk only, while it waits
            state.limiter.release()
            r = await queued
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi", r.text
        assert body.read == 2 and state.limiter.waiting == 0

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_with_keys_only_health_and_the_playground_are_open(tiny):
    async def scenario():
        app = gateway(tiny, api_keys=KEY)
        keyed = {"Authorization": f"Bearer {KEY}"}
        async with client(app) as c:
            for path in ("/health", "/", "/static/app.js"):
                assert (await c.get(path)).status_code == 200, path
            for path in ("/metrics", "/docs", "/redoc", "/openapi.json", "/ready", "/v1/models", "/nowhere"):
                r = await c.get(path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
                assert r.headers["www-authenticate"] == "Bearer"
            for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
                assert (await c.get(path, headers=keyed)).status_code == 200, path
            assert (await c.get("/ready", headers=keyed)).json() == {"status": "loading"}

    asyncio.run(scenario())


def test_ready_keeps_why_a_start_failed_in_the_log(tiny, monkeypatch, caplog):
    async def fail():
        raise RuntimeError("cannot open /srv/secret/bundle on 10.0.0.7")

    async def scenario():
        app = gateway(tiny)
        monkeypatch.setattr(app.state.server, "start", fail)
        async with app.router.lifespan_context(app), client(app) as c:
            for _ in range(100):
                r = await c.get("/ready")
                if r.json()["status"] != "loading":
                    break
                await asyncio.sleep(0.02)
        return r

    monkeypatch.setattr("service.app.os.kill", lambda pid, sig: None)  # a failed start stops the server: not this one
    with caplog.at_level(logging.ERROR, logger="aura.server"):
        r = asyncio.run(scenario())
    assert r.status_code == 503 and r.json() == {"status": "failed"}
    assert "/srv/secret/bundle" in caplog.text


class LoadedLLM:
    """What a loaded AsyncLLM shows the gateway before any request."""

    errored = False

    def shutdown(self) -> None:
        pass


def test_health_answers_while_the_engine_loads(tiny, monkeypatch):
    from vllm.v1.engine.async_llm import AsyncLLM

    loading, loaded = threading.Event(), threading.Event()

    def slow_load(engine_args, **kwargs):  # blocks as vLLM's does: engine-core start, weights
        loading.set()
        time.sleep(3)
        loaded.set()
        return LoadedLLM()

    monkeypatch.setattr(AsyncLLM, "from_engine_args", slow_load)

    async def scenario():
        app = gateway(tiny, cascade="off")
        async with app.router.lifespan_context(app), client(app) as c:
            while not loading.is_set():
                await asyncio.sleep(0.02)
            health, ready = await c.get("/health"), await c.get("/ready")
            answered_while_loading = not loaded.is_set()
            while not loaded.is_set():
                await asyncio.sleep(0.05)
            for _ in range(100):
                if (await c.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            return health, ready, answered_while_loading, (await c.get("/ready")).status_code

    health, ready, answered_while_loading, ready_after = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert health.status_code == 200 and ready.status_code == 503 and ready.json() == {"status": "loading"}
    assert answered_while_loading, "the event loop was blocked while the engine loaded"
    assert ready_after == 200
