"""vLLM's AsyncLLM in this process (its engine core runs in a child process vLLM spawns)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from anyio import to_thread

from service.engines.base import EngineDead, EngineRequest, TokenDelta

log = logging.getLogger("aura.engine")


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def engine_dtype(dtype: str) -> str:
    """'auto' means the checkpoint's dtype, except on a CPU without native bf16 (no AVX512-BF16 or
    AMX), where bf16 matmuls are emulated: there float32 is the fast choice (measured here, on an
    AVX2-only EPYC: Gemma 3 270M bf16 took ~1.1 s to first token at c=1)."""
    if dtype != "auto":
        return dtype
    import torch

    if torch.cuda.is_available() or cpu_has_native_bf16():
        return dtype
    return "float32"


# The LoRA ranks vLLM can reserve room for (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

class InProcessEngine:
    """`adapters` (name → (PEFT directory, rank)) are LoRAs a request may name (EngineRequest.adapter):
    one engine of the base LLM then serves AuRA (its LoRA, per request), the cascade and text (none),
    with one copy of the weights and one KV cache."""

    def __init__(self, model_dir: str, *, name: str, max_model_len: int, gpu_memory_utilization: float,
                 dtype: str = "auto", enforce_eager: bool = True, prompt_embeds: bool = True, log_stats: bool = True,
                 adapters: dict[str, tuple[str, int]] | None = None):
        self.model_dir = model_dir
        self.name = name
        self.max_model_len = max_model_len
        self.adapters = adapters or {}
        self._args = dict(
            model=model_dir, served_model_name=name, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, dtype=engine_dtype(dtype), enforce_eager=enforce_eager,
            enable_prompt_embeds=prompt_embeds, disable_log_stats=not log_stats,
        )
        if self.adapters:
            rank = max(r for _, r in self.adapters.values())
            # Requests without a LoRA share batches with AuRA's: on CPU, correct only with the kernels of
            # service/engines/cpu_lora.py, a vLLM plugin this package installs.
            self._args |= dict(enable_lora=True, max_loras=len(self.adapters),
                               max_lora_rank=next((k for k in VLLM_LORA_RANKS if k >= rank), rank))
        self._llm = None
        self._lora_requests: dict = {}

    def serve_args(self) -> list[str]:
        """This engine's settings as `vllm serve` flags: benchmarks.raw_vllm starts a plain vLLM server
        with them to measure what the gateway adds."""
        flags = []
        for key, value in self._args.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                flags.append(flag)
            elif value is not False:
                flags += [flag, str(value)]
        return flags

    async def start(self) -> None:
        log.info("starting in-process vLLM engine", extra={"model": self.model_dir, "engine_name": self.name,
                                                            "adapters": sorted(self.adapters)})
        # Importing vLLM and building the engine (which starts its engine-core process and waits for
        # the weights) block for tens of seconds: in a thread, the event loop answers /health and
        # /ready meanwhile. vLLM starts its output handler on the loop at the first request.
        self._llm = await to_thread.run_sync(self._load)

    def _load(self):
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if self.adapters:
            from vllm.lora.request import LoRARequest

            self._lora_requests = {name: LoRARequest(name, i, path) for i, (name, (path, _)) in enumerate(self.adapters.items(), 1)}
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**self._args))

    async def stop(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None

    def alive(self) -> bool:
        """False once vLLM's engine core process has died: AsyncLLM never recovers from that."""
        return self._llm is not None and not self._llm.errored

    async def generate(self, req: EngineRequest) -> AsyncIterator[TokenDelta]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        params = SamplingParams(
            max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, seed=req.seed, ignore_eos=req.ignore_eos,
            stop=req.stop,
            output_kind=RequestOutputKind.DELTA,
        )
        prompt = {"prompt_embeds": req.prompt_embeds} if req.prompt_embeds is not None else {"prompt_token_ids": req.prompt_token_ids}
        total = 0
        # Closing this generator early (client gone) closes vLLM's, which aborts the request: at once
        # (aclosing), not whenever the garbage collector reaches it.
        try:
            lora = self._lora_requests[req.adapter] if req.adapter else None
            async with contextlib.aclosing(self._llm.generate(prompt, params, req.request_id, lora_request=lora)) as outputs:
                async for out in outputs:
                    c = out.outputs[0]
                    total += len(c.token_ids)
                    yield TokenDelta(c.text, total, c.finish_reason)
        except EngineDeadError as e:
            raise EngineDead(self.name) from e
