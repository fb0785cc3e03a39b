"""The two request paths, side by side, with per-stage timings.

    aura:    decode → features → audio embedding layer → prompt assembly → engine (the base LLM with the
             AuRA LoRA applied to this request; or, in the two-engine layout, the merged AuRA LLM)
    cascade: decode → ASR (faster-whisper) → text prompt → engine (the base LLM)

`prepare` does everything before the engine and raises APIError (a 4xx) for bad input, so a
streamed request fails cleanly before its first byte; `generate` streams text deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from anyio import to_thread

from adapters import SAMPLE_RATE
from adapters.runtime.audio import decode_audio
from adapters.runtime.bundle import Bundle
from adapters.runtime.errors import AudioError
from adapters.runtime.prompt import PromptError
from service import metrics
from service.asr import ASR
from service.engines.base import Engine, EngineDead, EngineRequest
from service.engines.remote import RemoteEngineError
from service.errors import APIError, bad_request
from service.transcript import Segment, joined, speech_segments

log = logging.getLogger("aura.server")

Mode = Literal["aura", "cascade"]


@dataclass
class AudioInput:
    data: bytes
    param: str  # where it came from, for error messages: "audio", "messages[1].content[0]"


@dataclass
class ChatJob:
    mode: Mode
    messages: list[dict]  # content parts {"type": "text", ...} and {"type": "audio"}, audio in order
    audio: list[AudioInput]
    request_id: str
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
    stop: list[str] | None = None
    model: str | None = None  # which AuRA model (Pipeline.models); None: the server's default


@dataclass
class ChatResult:
    text: str = ""
    transcript: str | None = None
    prompt_tokens: int = 0
    audio_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    audio_seconds: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "audio_tokens": self.audio_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.prompt_tokens + self.completion_tokens}


@dataclass
class Prepared:
    job: ChatJob
    request: EngineRequest
    engine: Engine
    result: ChatResult
    t0: float


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _engine_request(job: ChatJob, **prompt) -> EngineRequest:
    """The engine request of a job, either path; max_tokens is set once the prompt's length is known."""
    return EngineRequest(job.request_id, 0, job.temperature, job.top_p, job.seed, job.ignore_eos, stop=job.stop, **prompt)


@dataclass
class AuraModel:
    bundle: Bundle  # its audio layer, prompt format and transcription instruction
    adapter: str | None  # the engine's name of its LoRA when the engine is the base LLM; None: the engine is its merged LLM


class Pipeline:
    def __init__(self, bundle: Bundle, engine: Engine, *, cascade_engine: Engine | None, asr: ASR | None,
                 max_audio_seconds: float, max_request_audio_seconds: float, default_max_tokens: int,
                 aura_adapter: str | None = None, max_transcription_seconds: float | None = None,
                 more_models: dict[str, AuraModel] | None = None):
        self.bundle = bundle  # the default AuRA model's; its tokenizer and chat template also build the cascade's prompts
        self.engine = engine
        # AuRA models by public name; None is the default one. More than one: several LoRAs on one base engine.
        self.models = {None: AuraModel(bundle, aura_adapter), **(more_models or {})}
        self.cascade_engine = cascade_engine
        self.asr = asr
        self.max_audio_seconds = max_audio_seconds
        self.max_request_audio_seconds = max_request_audio_seconds
        self.max_transcription_seconds = max_transcription_seconds or max_audio_seconds
        self.default_max_tokens = default_max_tokens

    @property
    def has_cascade(self) -> bool:
        return self.cascade_engine is not None and self.asr is not None

    def _require_cascade(self) -> None:
        if not self.has_cascade:
            raise bad_request("the cascade path is not configured on this server (start it with --cascade-asr)",
                              param="mode", code="cascade_unavailable")

    async def decode(self, audio: list[AudioInput], result: ChatResult, per_clip: float | None = None,
                     per_request: float | None = None) -> list[np.ndarray]:
        """The clips as 16 kHz waveforms; by default bounded as chat audio is."""
        per_clip, per_request = per_clip or self.max_audio_seconds, per_request or self.max_request_audio_seconds
        t = time.perf_counter()
        waves, seconds = [], 0.0
        for a in audio:  # each clip is bounded, and so is their sum, before any of them is embedded
            try:
                wave = await to_thread.run_sync(lambda a=a: decode_audio(a.data, max_seconds=per_clip, name=a.param))
            except AudioError as e:
                raise bad_request(str(e), param=a.param, code="invalid_audio") from None
            seconds += wave.shape[0] / SAMPLE_RATE
            if seconds > per_request:
                raise bad_request(f"the request's audio is {seconds:.1f} s long in all; the limit is "
                                  f"{per_request:g} s per request", param=a.param, code="audio_too_long")
            waves.append(wave)
        result.timings_ms["decode"] = _ms(t)
        result.audio_seconds = round(sum(w.shape[0] for w in waves) / SAMPLE_RATE, 3)
        return waves

    async def transcribe_cascade(self, waves: list[np.ndarray], result: ChatResult) -> list[str]:
        t = time.perf_counter()
        texts = [await to_thread.run_sync(self.asr.transcribe, w) for w in waves]
        result.timings_ms["asr"] = _ms(t)
        result.transcript = " ".join(texts)
        return texts

    async def prepare(self, job: ChatJob) -> Prepared:
        t0 = time.perf_counter()
        result = ChatResult()
        if job.mode == "cascade":
            self._require_cascade()
        return await self._prepare_waves(job, await self.decode(job.audio, result), result, t0)

    async def _prepare_waves(self, job: ChatJob, waves: list[np.ndarray], result: ChatResult, t0: float) -> Prepared:
        try:
            if job.mode == "aura":
                engine = self.engine
                req = await self._aura_request(job, waves, result)
            else:
                engine = self.cascade_engine
                req = await self._cascade_request(job, waves, result)
        except PromptError as e:
            raise bad_request(str(e), param="messages", code="invalid_prompt") from None
        room = engine.max_model_len - req.prompt_len
        if room <= 0:
            raise bad_request(
                f"the prompt is {req.prompt_len} tokens ({result.audio_tokens} of them audio); this model's maximum "
                f"context length is {engine.max_model_len} tokens", param="messages", code="context_length_exceeded")
        req.max_tokens = min(job.max_tokens or self.default_max_tokens, room)
        result.prompt_tokens = req.prompt_len
        return Prepared(job, req, engine, result, t0)

    async def _aura_request(self, job: ChatJob, waves: list[np.ndarray], result: ChatResult) -> EngineRequest:
        model = self.models[job.model]
        features = embed = 0.0
        audio_embeds = []
        for w in waves:
            tokens, timing = await to_thread.run_sync(model.bundle.embed_audio, w)
            audio_embeds.append(tokens)
            features += timing.features_ms
            embed += timing.embed_ms
        t = time.perf_counter()
        prompt = await to_thread.run_sync(model.bundle.prompt, job.messages, audio_embeds)
        result.timings_ms["features"] = round(features, 2)
        result.timings_ms["embed"] = round(embed + _ms(t), 2)  # audio layer + prompt assembly
        result.audio_tokens = prompt.audio_tokens
        # Without audio there is nothing for the LoRA to hear: text goes to the untouched base model.
        return _engine_request(job, prompt_embeds=prompt.embeds, adapter=model.adapter if waves else None)

    async def _cascade_request(self, job: ChatJob, waves: list[np.ndarray], result: ChatResult) -> EngineRequest:
        texts = iter(await self.transcribe_cascade(waves, result))
        messages = [
            {**m, "content": [{"type": "text", "text": next(texts)} if p.get("type") == "audio" else p for p in m["content"]]}
            if isinstance(m.get("content"), list) else m
            for m in job.messages
        ]
        ids = await to_thread.run_sync(self.bundle.text_prompt_ids, messages)
        return _engine_request(job, prompt_token_ids=ids)

    async def generate(self, p: Prepared) -> AsyncIterator[str]:
        """Stream text deltas; p.result is complete when the iterator ends normally."""
        r = p.result
        metrics.IN_FLIGHT.labels(p.job.mode).inc()
        try:
            async with contextlib.aclosing(p.engine.generate(p.request)) as deltas:
                async for delta in deltas:
                    if "ttft" not in r.timings_ms:
                        r.timings_ms["ttft"] = _ms(p.t0)
                    r.completion_tokens = delta.completion_tokens
                    r.finish_reason = delta.finish_reason or r.finish_reason
                    if delta.text:
                        r.text += delta.text
                        yield delta.text
            r.timings_ms.setdefault("ttft", _ms(p.t0))
            r.timings_ms["total"] = _ms(p.t0)
            metrics.observe(p.job.mode, r.timings_ms, r.audio_seconds, r.prompt_tokens, r.audio_tokens, r.completion_tokens)
        except (GeneratorExit, asyncio.CancelledError):
            # The client left: leaving the engine's stream has aborted the engine request.
            metrics.CANCELLED.labels(p.job.mode).inc()
            raise
        finally:
            metrics.IN_FLIGHT.labels(p.job.mode).dec()

    async def complete(self, job: ChatJob) -> ChatResult:
        p = await self.prepare(job)
        async for _ in self.generate(p):
            pass
        return p.result

    async def transcribe(self, mode: Mode, audio: AudioInput, request_id: str, temperature: float = 0.0,
                         model: str | None = None) -> tuple[ChatResult, list[Segment]]:
        """/v1/audio/transcriptions: a file of up to max_transcription_seconds, cut into segments of
        at most max_audio_seconds (service.transcript), all transcribed at once: AuRA's as one
        concurrent batch of engine requests, the cascade's by its ASR alone (no LLM)."""
        t0 = time.perf_counter()
        if mode == "cascade":
            self._require_cascade()
        result = ChatResult()
        [wave] = await self.decode([audio], result, self.max_transcription_seconds, self.max_transcription_seconds)
        segments = await to_thread.run_sync(speech_segments, wave, self.max_audio_seconds)
        instruction = [{"type": "audio"}, {"type": "text", "text": self.models[model].bundle.cfg.transcribe_instruction}]

        async def aura(i: int, segment: Segment) -> None:
            job = ChatJob("aura", [{"role": "user", "content": instruction}], [], f"{request_id}-{i}", temperature=temperature,
                          model=model)
            p = await self._prepare_waves(job, [segment.samples(wave)], ChatResult(), time.perf_counter())
            async for _ in self.generate(p):
                pass
            segment.text = p.result.text.strip()

        async def cascade(i: int, segment: Segment) -> None:
            segment.text = await to_thread.run_sync(self.asr.transcribe, segment.samples(wave))

        # A TaskGroup: when one segment fails, or the client leaves, the others are cancelled too
        # (which aborts their engine requests), not left running.
        try:
            async with asyncio.TaskGroup() as group:
                for i, segment in enumerate(segments):
                    group.create_task((aura if mode == "aura" else cascade)(i, segment))
        except ExceptionGroup as e:
            raise e.exceptions[0] from None  # the first failure, as a request with one segment would raise it
        result.text = joined(segments)
        result.timings_ms["total"] = _ms(t0)
        if mode == "cascade":
            result.transcript = result.text
            metrics.observe("cascade", result.timings_ms, result.audio_seconds, 0, 0, 0)
        return result, segments


def engine_failure(e: Exception) -> APIError:
    """A failure past admission: 503 when an in-process engine has died (only a restart helps); 400
    when the remote vLLM refused the request as malformed (its message passed on: the client can fix
    it); 502 when the remote vLLM failed or cannot be reached, 500 otherwise. Those last two say
    nothing of the cause to the client (it may name internal hosts); the server log has it, under the
    request id the response carries."""
    if isinstance(e, EngineDead):
        return engine_dead([e.engine])
    if isinstance(e, RemoteEngineError) and e.status in (400, 413, 422):
        return APIError(400, f"the model server refused the request: {e.detail}", code="invalid_request")
    log.error("engine failure", exc_info=e)
    remote = isinstance(e, RemoteEngineError)
    return APIError(502 if remote else 500, f"the {'model server' if remote else 'engine'} failed; the server log has the "
                    "details under this response's X-Request-Id", type="server_error", code="engine_error")


def engine_dead(engines: list[str]) -> APIError:
    return APIError(503, f"the engine process of {', '.join(engines)} has died; the server must be restarted (GET /health fails)",
                    type="server_error", code="engine_dead")
