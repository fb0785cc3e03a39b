"""HTTP helpers shared by the gateway tests."""

from __future__ import annotations

import base64
import json

import httpx


def speech_chat(server, audio: bytes, filename: str = "clip.wav", **form) -> httpx.Response:
    data = {k: str(v) for k, v in form.items()}
    return httpx.post(server.url + "/v1/speech-chat", files={"audio": (filename, audio)}, data=data, timeout=120)


def sse_events(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def audio_part(data: bytes, fmt: str = "wav") -> dict:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}
