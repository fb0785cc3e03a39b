"""HTTP routes. Protocol shapes live in protocol.py; the request paths in pipeline.py."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile as StarletteUpload

from service import transcript
from service.errors import APIError, bad_request, not_found
from service.pipeline import AudioInput, ChatJob, ChatResult, Pipeline, Prepared, engine_dead, engine_failure
from service.protocol import (
    AUDIO_FORMATS,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    SpeechChatResponse,
)
from service.state import ServerState

T = TypeVar("T")
public = APIRouter()
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def get_state(request: Request) -> ServerState:
    return request.app.state.server


def ready_pipeline(request: Request) -> Pipeline:
    state = get_state(request)
    if not state.ready or state.pipeline is None:
        raise APIError(503, "the model is still loading; see GET /ready", type="server_busy", code="not_ready",
                       headers={"Retry-After": "5"})
    if dead := state.dead_engines():
        # Checked before any work, so a streamed request gets the 503 too rather than a 200 and an error event.
        raise engine_dead(dead)
    return state.pipeline


# Bearer keys (service.middleware.ApiKeyMiddleware) and the concurrency limit (service.limits.AdmissionMiddleware)
# are applied before any body is read.
v1 = APIRouter(prefix="/v1")
PipelineDep = Annotated[Pipeline, Depends(ready_pipeline)]


# ---------------------------------------------------------------- running a job


def _set_mode(request: Request, mode: str) -> None:
    request.state.mode = mode  # read by the access-log / metrics middleware


async def _watch_disconnect(request: Request, task: asyncio.Task, client_left: asyncio.Event) -> None:
    while not task.done():
        if await request.is_disconnected():
            client_left.set()
            task.cancel()
            return
        await asyncio.sleep(0.1)


async def run_to_completion(request: Request, work: Awaitable[T]) -> T:
    """Run non-streamed work (a job, a transcription); a client that goes away cancels it, which
    aborts its engine requests."""
    task = asyncio.ensure_future(work)
    client_left = asyncio.Event()
    watcher = asyncio.ensure_future(_watch_disconnect(request, task, client_left))
    try:
        return await task
    except asyncio.CancelledError:
        if client_left.is_set():
            raise APIError(499, "client closed the request", code="client_closed") from None
        raise  # the server is cancelling this request (shutting down): not the client's doing
    except APIError:
        raise
    except Exception as e:
        raise engine_failure(e) from e
    finally:
        watcher.cancel()


async def stream_events(state: ServerState, prepared: Prepared, render) -> AsyncIterator[str]:
    """The SSE events' data; `render(kind, payload)` shapes them. When the client disconnects,
    ClosingStream closes this generator, which closes the pipeline's and the engine's streams in turn
    (aclosing at each level) and so aborts the engine request at once."""
    try:
        for first in render("start", None):
            yield json.dumps(first)
        async with contextlib.aclosing(state.pipeline.generate(prepared)) as deltas:
            async for delta in deltas:
                for event in render("delta", delta):
                    yield json.dumps(event)
        for event in render("done", prepared.result):
            yield json.dumps(event)
    except Exception as e:  # the response has started: report the failure in the stream
        yield json.dumps(engine_failure(e).body())
    yield "[DONE]"


class ClosingStream(EventSourceResponse):
    """Server-sent events (sse-starlette: the framing, and a keep-alive comment every
    --sse-ping-seconds, so that proxies and clients do not time out while a request waits for its
    first token) whose body is closed however the response ends. When the client disconnects, the
    sending task is cancelled: if that lands while an event is being sent, the body generator is left
    suspended, and if the client was gone before the body started, the body never runs at all
    (closing an unstarted generator runs none of its code). Either way only this finally aborts the
    engine request. The request's slot is given back when this returns (AdmissionMiddleware)."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # this task may be being cancelled: the close must still run
                await self.body_iterator.aclose()


async def sse_stream(state: ServerState, job: ChatJob, render) -> ClosingStream:
    """Prepares the job before the response starts, so bad input is still a 4xx, then streams it."""
    prepared = await state.pipeline.prepare(job)
    return ClosingStream(stream_events(state, prepared, render), ping=state.settings.sse_ping_seconds, sep="\n")


def _request_id(request: Request) -> str:
    return request.state.request_id


async def _read_upload(upload: UploadFile | None, param: str) -> AudioInput:
    if not isinstance(upload, StarletteUpload):
        raise bad_request(f"'{param}' must be an uploaded file", param=param)
    return AudioInput(await upload.read(), param)


# ---------------------------------------------------------------- /v1/speech-chat


@v1.post("/speech-chat", response_model=SpeechChatResponse,
         responses={400: {"description": "bad input (OpenAI error shape)"}, 413: {}, 429: {}, 503: {}})
async def speech_chat(
    request: Request,
    pipeline: PipelineDep,
    audio: Annotated[UploadFile, File(description="audio file: wav, flac, ogg/opus, mp3, webm, m4a; any rate")],
    prompt: Annotated[str, Form(description="text sent after the audio")] = "",
    system: Annotated[str | None, Form()] = None,
    mode: Annotated[str, Form(pattern="^(aura|cascade)$")] = "aura",
    model: Annotated[str | None, Form(description="with mode=aura, one of this server's AuRA models (default: its first)")] = None,
    max_tokens: Annotated[int | None, Form(ge=1)] = None,
    temperature: Annotated[float, Form(ge=0.0, le=2.0)] = 0.0,
    top_p: Annotated[float, Form(gt=0.0, le=1.0)] = 1.0,
    seed: Annotated[int | None, Form(ge=-(2**63), le=2**63 - 1)] = None,
    stream: Annotated[bool, Form()] = False,
    ignore_eos: Annotated[bool, Form(description="vLLM extension: always generate max_tokens tokens")] = False,
):
    state = get_state(request)
    _set_mode(request, mode)
    _check_ignore_eos(state, ignore_eos)
    if mode == "aura" and model is not None and _resolve_model(state, model) != "aura":
        raise bad_request(f"{model!r} is not an AuRA model; for the cascade send mode=cascade", param="model")
    content = [{"type": "audio"}] + ([{"type": "text", "text": prompt}] if prompt else [])
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    job = ChatJob(mode, messages, [await _read_upload(audio, "audio")], _request_id(request), max_tokens, temperature, top_p, seed,
                  ignore_eos, model=_aura_model(state, model) if mode == "aura" else None)
    name = (model or state.model_name) if mode == "aura" else state.cascade_model_name

    def reply(r: ChatResult) -> dict:
        return SpeechChatResponse(id=job.request_id, model=name, mode=mode, text=r.text, transcript=r.transcript,
                                  finish_reason=r.finish_reason, usage=r.usage(), timings_ms=r.timings_ms,
                                  audio_seconds=r.audio_seconds).model_dump()

    if not stream:
        return reply(await run_to_completion(request, state.pipeline.complete(job)))

    def render(kind, payload):
        if kind == "delta":
            yield {"type": "delta", "text": payload}
        elif kind == "done":
            yield {"type": "done", **reply(payload)}

    return await sse_stream(state, job, render)


# ---------------------------------------------------------------- /v1/chat/completions


def _decode_b64(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("input_audio.data is not valid base64", param=param, code="invalid_base64") from None


def _check_ignore_eos(state: ServerState, ignore_eos: bool) -> None:
    if ignore_eos and not state.settings.allow_ignore_eos:
        raise bad_request("ignore_eos is off on this server (it lets a client force full-length generations); "
                          "start it with --allow-ignore-eos for benchmarks", param="ignore_eos", code="ignore_eos_disabled")


def chat_messages(req: ChatCompletionRequest, max_audio_parts: int) -> tuple[list[dict], list[AudioInput]]:
    """OpenAI messages → pipeline messages (audio parts as placeholders) and the audio, in order.
    The number of audio parts is checked first, before any of them is decoded."""
    count = sum(1 for m in req.messages if not isinstance(m.content, str) for p in m.content if p.type == "input_audio")
    if count > max_audio_parts:
        raise bad_request(f"the request has {count} audio parts; at most {max_audio_parts} are accepted per request",
                          param="messages", code="too_many_audio_parts")
    messages, audio = [], []
    for i, m in enumerate(req.messages):
        role = "system" if m.role == "developer" else m.role
        if isinstance(m.content, str):
            messages.append({"role": role, "content": m.content})
            continue
        parts = []
        for j, part in enumerate(m.content):
            if part.type == "text":
                parts.append({"type": "text", "text": part.text})
                continue
            param = f"messages[{i}].content[{j}].input_audio"
            if role != "user":
                raise bad_request("audio is accepted in user messages only", param=param)
            fmt = part.input_audio.format.lower()
            if fmt not in AUDIO_FORMATS:
                raise bad_request(f"unknown audio format {part.input_audio.format!r}; use one of {', '.join(AUDIO_FORMATS)}",
                                  param=param + ".format", code="invalid_audio_format")
            audio.append(AudioInput(_decode_b64(part.input_audio.data, param + ".data"), param))
            parts.append({"type": "audio"})
        messages.append({"role": role, "content": parts})
    return messages, audio


def _resolve_model(state: ServerState, name: str) -> str:
    mode = state.models().get(name)
    if mode is None:
        raise not_found(f"the model {name!r} does not exist; available: {', '.join(state.models())}", param="model",
                        code="model_not_found")
    return mode


def _aura_model(state: ServerState, name: str | None) -> str | None:
    """The pipeline's key of an AuRA model: None for the server's default one."""
    return None if name in (None, state.model_name, state.cascade_model_name) else name


@v1.post("/chat/completions", responses={400: {}, 404: {}, 413: {}, 429: {}, 503: {}})
async def chat_completions(request: Request, body: ChatCompletionRequest, pipeline: PipelineDep):
    state = get_state(request)
    mode = _resolve_model(state, body.model)
    _set_mode(request, mode)
    _check_ignore_eos(state, body.ignore_eos)
    messages, audio = chat_messages(body, state.settings.max_audio_parts)
    job = ChatJob(mode, messages, audio, _request_id(request), body.max_completion_tokens or body.max_tokens,
                  body.temperature, body.top_p, body.seed, body.ignore_eos, body.stop, model=_aura_model(state, body.model))
    cid, created = f"chatcmpl-{job.request_id}", int(time.time())

    if not body.stream:
        r = await run_to_completion(request, state.pipeline.complete(job))
        return {
            "id": cid, "object": "chat.completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r.text}, "finish_reason": r.finish_reason}],
            "usage": r.usage(), "timings_ms": r.timings_ms, "audio_seconds": r.audio_seconds, "transcript": r.transcript,
        }
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def render(kind, payload):
        if kind == "start":
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "delta":
            yield chunk({"content": payload})
        else:
            yield chunk({}, payload.finish_reason or "stop")
            if include_usage:
                yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                       "choices": [], "usage": payload.usage(), "timings_ms": payload.timings_ms,
                       "audio_seconds": payload.audio_seconds}

    return await sse_stream(state, job, render)


# ---------------------------------------------------------------- /v1/audio/transcriptions


@v1.post("/audio/transcriptions", responses={400: {}, 404: {}, 413: {}})
async def transcriptions(
    request: Request,
    pipeline: PipelineDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    response_format: Annotated[str, Form(pattern=f"^({'|'.join(transcript.RESPONSE_FORMATS)})$")] = "json",
    prompt: Annotated[str | None, Form()] = None,
    language: Annotated[str | None, Form()] = None,
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
):
    """Files longer than --max-audio-seconds (up to --max-transcription-seconds) are cut into segments
    at pauses and transcribed all at once; verbose_json, srt and vtt give each segment's times."""
    state = get_state(request)
    mode = _resolve_model(state, model)
    _set_mode(request, mode)
    audio = await _read_upload(file, "file")
    work = pipeline.transcribe(mode, audio, _request_id(request), temperature, model=_aura_model(state, model))
    result, segments = await run_to_completion(request, work)
    if response_format == "text":
        return PlainTextResponse(result.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(transcript.srt(segments), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(transcript.vtt(segments), media_type="text/vtt")
    if response_format == "verbose_json":
        return transcript.verbose_json(segments, result.audio_seconds, temperature)
    return {"text": result.text, "usage": {"type": "duration", "seconds": result.audio_seconds}}


# ---------------------------------------------------------------- models, health, metrics


@v1.get("/models", response_model=ModelList)
async def list_models(request: Request, pipeline: PipelineDep):
    state = get_state(request)
    data = []
    for name, path in state.models().items():
        engine = pipeline.engine if path == "aura" else pipeline.cascade_engine
        data.append(ModelCard(id=name, created=state.created, max_model_len=engine.max_model_len, path=path))
    return ModelList(data=data)


@public.get("/", include_in_schema=False)
async def playground():
    """The web playground: record or upload audio, both paths side by side (static, no build step)."""
    return FileResponse(os.path.join(STATIC_DIR, "index.html"))


def dead_engines_reply(state: ServerState) -> JSONResponse | None:
    """/health's and /ready's answer while an engine is dead (None while all are alive)."""
    if dead := state.dead_engines():
        return JSONResponse({"status": "engine_dead", "engines": dead}, status_code=503)
    return None


@public.get("/health")
async def health(request: Request):
    """Liveness: fails only when an engine has died, the one failure a restart fixes."""
    return dead_engines_reply(get_state(request)) or {"status": "ok"}


@public.get("/ready")
async def ready(request: Request):
    state = get_state(request)
    if dead := dead_engines_reply(state):
        return dead
    if state.ready:
        return {"status": "ready", "models": state.models(), "engine_layout": state.layout}
    # Why a start failed stays in the server log: the exception's text can name paths and hosts.
    return JSONResponse({"status": "failed" if state.failed else "loading"}, status_code=503)


@public.get("/metrics")
async def prometheus_metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
