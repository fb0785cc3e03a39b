"""LLM engines behind one interface: in-process vLLM AsyncLLM, or a remote `vllm serve`."""

from service.engines.base import Engine, EngineRequest, TokenDelta

__all__ = ["Engine", "EngineRequest", "TokenDelta"]
