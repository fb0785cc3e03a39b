"""The gateway in this process, through httpx's ASGI transport, with no engine: what it decides before
a request's body is read (its key, a slot), which routes need a key, what /ready tells a client, and
that it answers while an engine loads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from service.app import create_app
from service.settings import Settings

KEY = "key-1"


def gateway(tiny, **settings):
    return create_app(Settings(bundle=tiny["bundle"], **settings))


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway")


class Body:
    """A request body that records whether the server read any of it."""

    def __init__(self, data: bytes = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'):
        self.data = data
        self.read = False

    async def chunks(self):
        self.read = True
        yield self.data


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
                assert not body.read, f"{path}: the body was read although the request got no slot"
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
