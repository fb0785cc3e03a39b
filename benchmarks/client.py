"""One streamed request, timed from the client's side.

Targets:
  speech-chat   this project's POST /v1/speech-chat (multipart audio; server stage timings come back)
  chat          any OpenAI-compatible POST /v1/chat/completions: audio as an input_audio part, or
                text only (for a plain `vllm serve` fed the reference transcript)
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass, field

import httpx


@dataclass
class Record:
    mode: str  # aura | cascade | text | a label of the caller's choosing
    ok: bool
    status: int = 0
    error: str | None = None
    start: float = 0.0  # seconds since the run began
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    audio_tokens: int = 0
    completion_tokens: int = 0
    audio_seconds: float = 0.0
    server_ms: dict[str, float] = field(default_factory=dict)
    text: str = ""
    clip: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Target:
    base_url: str
    api: str = "speech-chat"  # or "chat"
    model: str | None = None  # chat: the model name (the cascade is MODEL-cascade on this server)
    api_key: str | None = None
    max_tokens: int = 32
    temperature: float = 0.0
    prompt: str = "Answer the request in one sentence."
    ignore_eos: bool = False  # fixed-length completions (a vLLM extension; this project's server has it)

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _events(line: str):
    if line.startswith("data: "):
        payload = line[6:]
        return None if payload == "[DONE]" else json.loads(payload)
    return None


async def send(http: httpx.AsyncClient, target: Target, mode: str, audio: bytes | None, *, text: str | None = None,
               clip: str = "", t_run0: float = 0.0, max_tokens: int | None = None) -> Record:
    """Send one streamed request. mode: aura | cascade (audio), or text (audio=None, `text` as prompt)."""
    rec = Record(mode=mode, ok=False, clip=clip, start=time.perf_counter() - t_run0)
    max_tokens = max_tokens or target.max_tokens
    if target.api == "speech-chat" and audio is not None:
        req = dict(method="POST", url=target.base_url + "/v1/speech-chat", files={"audio": (clip or "clip.wav", audio)},
                   data={"mode": mode, "prompt": target.prompt, "max_tokens": str(max_tokens),
                         "temperature": str(target.temperature), "stream": "true", "ignore_eos": str(target.ignore_eos).lower()})
    else:
        content: list[dict] | str
        if audio is not None:
            content = [{"type": "text", "text": target.prompt},
                       {"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(), "format": "wav"}}]
        else:
            content = text if text is not None else target.prompt
        model = target.model if mode != "cascade" else f"{target.model}-cascade"
        req = dict(method="POST", url=target.base_url + "/v1/chat/completions",
                   json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                         "temperature": target.temperature, "stream": True, "stream_options": {"include_usage": True},
                         **({"ignore_eos": True} if target.ignore_eos else {})})
    t0 = time.perf_counter()
    last = None
    finished = False
    try:
        async with http.stream(headers=target.headers(), **req) as r:
            rec.status = r.status_code
            if r.status_code != 200:
                rec.error = (await r.aread()).decode(errors="replace")[:300]
                return rec
            async for line in r.aiter_lines():
                event = _events(line)
                if event is None:
                    continue
                if "error" in event:
                    rec.error = str(event["error"])[:300]
                    return rec
                delta = _delta_text(event)
                if delta:
                    now = time.perf_counter()
                    if rec.ttft_s is None:
                        rec.ttft_s = now - t0
                    elif last is not None:
                        rec.itl_s.append(now - last)
                    last = now
                    rec.text += delta
                finished = _read_final(event, rec) or finished
        rec.e2e_s = time.perf_counter() - t0
        rec.ok = finished
        if not finished:
            rec.error = "the stream ended without its final usage event"
    except httpx.HTTPError as e:
        rec.error = f"{type(e).__name__}: {e}"[:300]
    return rec


def _delta_text(event: dict) -> str:
    if event.get("type") == "delta":
        return event["text"]
    choices = event.get("choices") or []
    if choices and isinstance(choices[0].get("delta"), dict):
        return choices[0]["delta"].get("content") or ""
    return ""


def _read_final(event: dict, rec: Record) -> bool:
    """Fill usage and server timings from the final event; True if this was it."""
    usage = event.get("usage")
    if event.get("type") == "done" or (usage and not event.get("choices")):
        usage = usage or {}
        rec.prompt_tokens = usage.get("prompt_tokens", 0)
        rec.audio_tokens = usage.get("audio_tokens", 0)
        rec.completion_tokens = usage.get("completion_tokens", 0)
        rec.server_ms = event.get("timings_ms") or {}
        rec.audio_seconds = event.get("audio_seconds", 0.0)
        return True
    return False
