"""Request and response schemas of the public API (OpenAI-compatible where OpenAI has an equivalent).

Clients can send audio, text and sampling options, never tensors or embeddings (CVE-2025-62164),
and never URLs: the only audio part is `input_audio` with base64 data.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "opus", "webm", "m4a", "mp4", "aac", "pcm16")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputAudio(_Strict):
    data: str = Field(description="base64-encoded audio file")
    format: str = Field(description=f"container/codec: one of {', '.join(AUDIO_FORMATS)}")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | AudioPart, Field(discriminator="type")]


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    ignore_eos: bool = Field(False, description="vLLM extension: generate max_tokens tokens whatever the model says")
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    audio_tokens: int = 0


class SpeechChatResponse(BaseModel):
    id: str
    model: str
    mode: Literal["aura", "cascade"]
    text: str
    transcript: str | None = None
    finish_reason: str | None = None
    usage: Usage
    timings_ms: dict[str, float]
    audio_seconds: float


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "aura-serving"
    max_model_len: int
    path: Literal["aura", "cascade"]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
