from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class EngineRequest:
    request_id: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks: fixed-length completions
    prompt_embeds: torch.Tensor | None = None  # (positions, hidden); AuRA prompts
    prompt_token_ids: list[int] | None = field(default=None)  # text prompts (cascade, text-only)
    stop: list[str] | None = None  # stop sequences: the text ends before the first one generated
    adapter: str | None = None  # a LoRA the engine applies to this request alone (an engine's `adapters`)

    @property
    def prompt_len(self) -> int:
        return self.prompt_embeds.shape[0] if self.prompt_embeds is not None else len(self.prompt_token_ids or [])


class EngineDead(RuntimeError):
    """The engine has stopped and will not come back (its process died): only a restart helps, so
    requests get 503 and GET /health fails, which is what tells an orchestrator to restart us."""

    def __init__(self, engine: str):
        super().__init__(engine)
        self.engine = engine


@dataclass
class TokenDelta:
    text: str
    completion_tokens: int  # cumulative
    finish_reason: str | None = None


class Engine(Protocol):
    """Streams deltas; closing the iterator early aborts the request in the engine."""

    name: str
    max_model_len: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def alive(self) -> bool: ...

    def generate(self, req: EngineRequest) -> AsyncIterator[TokenDelta]: ...
