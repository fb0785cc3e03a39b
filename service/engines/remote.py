"""A remote `vllm serve --enable-prompt-embeds`, reached through its streamed Completions API with
the official `openai` client."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Iterator

import openai
import torch
from anyio import to_thread

from service.engines.base import EngineRequest, TokenDelta

log = logging.getLogger("aura.engine")


class RemoteEngineError(RuntimeError):
    """The remote vLLM failed, could not be reached, or (with `status` 4xx) refused the request."""

    def __init__(self, message: str, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail  # vLLM's own message, for a refusal that is the client's to fix


def tensor_to_base64(x: torch.Tensor) -> str:
    """The encoding vLLM's Completions API expects for `prompt_embeds` (torch.save, then base64)."""
    buf = io.BytesIO()
    torch.save(x.contiguous(), buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class RemoteEngine:
    def __init__(self, base_url: str, *, name: str, max_model_len: int, timeout_s: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.max_model_len = max_model_len
        self.served_model: str | None = None
        # max_retries=0: a retried generation would run twice on the remote GPU; the gateway reports the
        # failure instead. The key is explicit so that an OPENAI_API_KEY in our environment is never
        # sent; a vLLM started without --api-key ignores it.
        self._client = openai.AsyncOpenAI(base_url=self.base_url + "/v1", api_key="EMPTY", max_retries=0,
                                          timeout=openai.Timeout(timeout_s, connect=10.0))

    async def start(self) -> None:
        with self._errors():
            models = (await self._client.models.list()).data
        self.served_model = models[0].id
        remote_len = (models[0].model_extra or {}).get("max_model_len")  # a vLLM extension of the model entry
        if remote_len:
            self.max_model_len = min(self.max_model_len, int(remote_len))
        log.info("remote vLLM engine ready", extra={"url": self.base_url, "served_model": self.served_model})

    async def stop(self) -> None:
        await self._client.close()

    def alive(self) -> bool:
        # A remote vLLM that is down may come back (its own orchestrator restarts it); until then each
        # request gets a 502, and restarting this gateway would not help.
        return True

    async def generate(self, req: EngineRequest) -> AsyncIterator[TokenDelta]:
        extra: dict = {"ignore_eos": True} if req.ignore_eos else {}  # vLLM extensions of the Completions API
        if req.prompt_embeds is not None:
            # torch.save + base64 of a few MB: off the event loop, which serves every other request
            extra["prompt_embeds"] = await to_thread.run_sync(tensor_to_base64, req.prompt_embeds)
        with self._errors():
            stream = await self._client.completions.create(
                model=self.served_model,
                # None (JSON null), not the "" of vLLM's example: vLLM makes a text prompt sent beside
                # prompt_embeds a second prompt, and "" is then refused as empty (the stream's error) or,
                # where the tokenizer adds a BOS, generates a second completion.
                prompt=None if req.prompt_embeds is not None else req.prompt_token_ids,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                seed=req.seed,
                stop=req.stop or None,
                stream=True,
                # continuous_usage_stats (vLLM): every chunk carries the completion tokens so far
                stream_options={"include_usage": True, "continuous_usage_stats": True},
                extra_body=extra,
                extra_headers={"X-Request-Id": req.request_id},
            )
            # Leaving this block early (a client that went away closes this generator, aclosing at each
            # level) closes the HTTP response now, not at garbage collection; vLLM aborts the request
            # on disconnect.
            async with stream:
                total = 0
                async for chunk in stream:
                    if chunk.usage:
                        total = chunk.usage.completion_tokens
                    for choice in chunk.choices:  # none in the final, usage-only chunk
                        yield TokenDelta(choice.text, total, choice.finish_reason)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The openai client's exceptions as RemoteEngineError, which the gateway turns into a response."""
        try:
            yield
        except openai.APIStatusError as e:  # vLLM answered 4xx/5xx; e.body is its {"message", ...} object
            message = e.body.get("message") if isinstance(e.body, dict) else None
            raise RemoteEngineError(f"remote vLLM answered {e.status_code}: {str(e.body)[:500]}", e.status_code,
                                    str(message or e.body)[:300]) from e
        except openai.APIConnectionError as e:  # and APITimeoutError, a subclass
            raise RemoteEngineError(f"cannot reach the remote vLLM at {self.base_url}: {(e.__cause__ or e)!r}") from e
        except openai.APIError as e:  # an error event in the stream, after the 200
            raise RemoteEngineError(f"remote vLLM error: {e.body}") from e
