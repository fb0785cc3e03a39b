"""A remote `vllm serve --enable-prompt-embeds`, reached through its streamed Completions API."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator

import httpx
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
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_s, connect=10.0))

    async def start(self) -> None:
        r = await self._client.get("/v1/models")
        r.raise_for_status()
        models = r.json()["data"]
        self.served_model = models[0]["id"]
        remote_len = models[0].get("max_model_len")
        if remote_len:
            self.max_model_len = min(self.max_model_len, int(remote_len))
        log.info("remote vLLM engine ready", extra={"url": self.base_url, "served_model": self.served_model})

    async def stop(self) -> None:
        await self._client.aclose()

    def alive(self) -> bool:
        # A remote vLLM that is down may come back (its own orchestrator restarts it); until then each
        # request gets a 502, and restarting this gateway would not help.
        return True

    async def generate(self, req: EngineRequest) -> AsyncIterator[TokenDelta]:
        body = {
            "model": self.served_model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        if req.ignore_eos:
            body["ignore_eos"] = True  # a vLLM extension of the Completions API
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            body["stop"] = req.stop
        if req.prompt_embeds is not None:
            # torch.save + base64 of a few MB: off the event loop, which serves every other request
            body["prompt_embeds"] = await to_thread.run_sync(tensor_to_base64, req.prompt_embeds)
        else:
            body["prompt"] = req.prompt_token_ids
        try:
            # aclosing: a client that goes away closes this generator, and must close the inner one (and
            # so the connection) now, not when it is garbage-collected.
            async with contextlib.aclosing(self._stream(body, req.request_id)) as deltas:
                async for delta in deltas:
                    yield delta
        except httpx.TransportError as e:
            raise RemoteEngineError(f"cannot reach the remote vLLM at {self.base_url}: {e!r}") from e

    async def _stream(self, body: dict, request_id: str) -> AsyncIterator[TokenDelta]:
        # Leaving this block early closes the connection; vLLM aborts the request on disconnect.
        async with self._client.stream("POST", "/v1/completions", json=body, headers={"X-Request-Id": request_id}) as r:
            if r.status_code != 200:
                detail = (await r.aread()).decode(errors="replace")[:500]
                try:
                    message = json.loads(detail).get("error", {}).get("message") or detail
                except (ValueError, AttributeError):
                    message = detail
                raise RemoteEngineError(f"remote vLLM answered {r.status_code}: {detail}", r.status_code, str(message)[:300])
            total = 0
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RemoteEngineError(f"remote vLLM error: {chunk['error']}")
                usage = chunk.get("usage") or {}
                total = usage.get("completion_tokens", total)
                for choice in chunk.get("choices", []):
                    yield TokenDelta(choice.get("text", ""), total, choice.get("finish_reason"))
