"""Parity through a real vLLM engine: prompt embeddings from prompt assembly give the same greedy
tokens as the token ids of the same text, for a Qwen2-style model and for Gemma 3, which scales
its input embeddings inside its embedding module."""

import gc

import pytest

from adapters.runtime.bundle import Bundle

pytestmark = pytest.mark.vllm

CHATS = [
    [{"role": "user", "content": "what is the weather tomorrow"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "play some music"}],
]


@pytest.mark.parametrize("arch", ["qwen2", "gemma3"])
def test_prompt_embeds_match_token_ids(arch, request):
    from vllm import LLM, SamplingParams

    paths = request.getfixturevalue("tiny" if arch == "qwen2" else "tiny_gemma")
    bundle = Bundle.load(paths["bundle"])
    llm = LLM(model=bundle.llm_dir, enforce_eager=True, enable_prompt_embeds=True, gpu_memory_utilization=0.15,
              max_model_len=512, seed=0)
    try:
        sp = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
        for chat in CHATS:
            ids = bundle.text_prompt_ids(chat)
            embeds = bundle.prompt(chat, []).embeds
            by_ids = llm.generate([{"prompt_token_ids": ids}], sp, use_tqdm=False)[0].outputs[0].token_ids
            by_embeds = llm.generate([{"prompt_embeds": embeds}], sp, use_tqdm=False)[0].outputs[0].token_ids
            assert list(by_embeds) == list(by_ids), f"{arch}: {chat}"
            assert len(set(by_ids)) > 1 or arch == "gemma3", "a constant output would make the comparison weak"
    finally:
        del llm
        gc.collect()
