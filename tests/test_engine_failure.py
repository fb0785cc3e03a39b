"""When an engine fails: an in-process vLLM whose engine-core process dies, and a remote vLLM that
cannot be reached. The gateway keeps answering, with errors in OpenAI's shape that say what to do."""

from __future__ import annotations

import asyncio
import signal

import httpx
import openai
import psutil
import pytest
from helpers import audio_part, speech_chat

from benchmarks.server_process import aura_serve, free_port
from service.engines.base import EngineRequest
from service.engines.remote import RemoteEngine, RemoteEngineError


def engine_core(pid: int) -> psutil.Process:
    """vLLM's engine-core child of the server process (it names itself VLLM::EngineCore)."""
    cores = [p for p in psutil.Process(pid).children(recursive=True) if "EngineCore" in " ".join(p.cmdline()) + p.name()]
    assert len(cores) == 1, [(p.pid, p.name(), p.cmdline()) for p in psutil.Process(pid).children(recursive=True)]
    return cores[0]


@pytest.mark.vllm
def test_dead_engine_core_gives_503_and_fails_health(tiny, speech_wav, model):
    server = aura_serve("--bundle", tiny["bundle"], "--cascade", "off", "--max-model-len", "512",
                        "--gpu-memory-utilization", "0.15").wait_ready()
    try:
        assert speech_chat(server, speech_wav, max_tokens=2).status_code == 200
        assert httpx.get(server.url + "/health").status_code == 200

        engine_core(server.proc.pid).send_signal(signal.SIGKILL)
        # The first request after the kill may be the one that finds the engine dead; every one after
        # it is refused up front.
        for _ in range(3):
            r = speech_chat(server, speech_wav, max_tokens=2)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "engine_dead" and "restart" in r.json()["error"]["message"]
        streamed = speech_chat(server, speech_wav, max_tokens=2, stream="true")
        assert streamed.status_code == 503 and streamed.json()["error"]["code"] == "engine_dead"
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model=model, max_tokens=2, messages=[{"role": "user", "content": [audio_part(speech_wav)]}])
        assert err.value.status_code == 503

        health = httpx.get(server.url + "/health")
        assert health.status_code == 503 and health.json() == {"status": "engine_dead", "engines": [model]}
        assert httpx.get(server.url + "/ready").status_code == 503
        assert server.proc.poll() is None, "the gateway itself must keep running and answering"
        assert httpx.get(server.url + "/metrics").status_code == 200
    finally:
        server.stop()


def test_unreachable_remote_vllm_is_a_remote_engine_error():
    async def run():
        engine = RemoteEngine(f"http://127.0.0.1:{free_port()}", name="m", max_model_len=64)
        try:
            async for _ in engine.generate(EngineRequest(request_id="r", max_tokens=2, prompt_token_ids=[1, 2])):
                pass
        finally:
            await engine.stop()

    with pytest.raises(RemoteEngineError, match="cannot reach the remote vLLM"):
        asyncio.run(run())
