"""Request and response schemas of the public API (OpenAI-compatible where OpenAI has an equivalent).

Clients can send audio, text and sampling options, never tensors or embeddings (CVE-2025-62164),
and never URLs: the only audio part is `input_audio` with base64 data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "opus", "webm", "m4a", "mp4", "aac", "pcm16")
# vLLM's own API bounds the seed to int64; past it the engine fails, which is the client's fault, not a 500.
SEED = Field(None, ge=-(2**63), le=2**63 - 1, description="sampling seed (a 64-bit integer)")
# OpenAI chat parameters this server does not implement. Each is refused by name (400) rather than
# ignored, so that a client asking for tools, log-probabilities or penalties does not silently
# get an answer without them; a value that asks for nothing (null, false, 0, [], {"type": "text"}) passes.
UNSUPPORTED_CHAT_PARAMETERS = ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logprobs",
                               "top_logprobs", "response_format", "logit_bias", "presence_penalty",
                               "frequency_penalty", "modalities", "audio", "prediction", "web_search_options")


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


# Declared so that each can be refused by name (ChatCompletionRequest._refuse_unsupported).
_WithUnsupported = create_model("_WithUnsupported", __base__=_Strict, **{
    name: (Any, Field(None, description="not supported: refused unless it asks for nothing")) for name in UNSUPPORTED_CHAT_PARAMETERS})


class ChatCompletionRequest(_WithUnsupported):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = SEED
    ignore_eos: bool = Field(False, description="vLLM extension: generate max_tokens tokens whatever the model says")
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        None, max_length=4, description="up to 4 sequences; the text ends before the first one generated")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        if isinstance(value, str):
            if not 1 <= len(value) <= 256:
                raise ValueError("a stop sequence is 1 to 256 characters")
            return [value]
        return value or None
    @field_validator(*UNSUPPORTED_CHAT_PARAMETERS)
    @classmethod
    def _refuse_unsupported(cls, value):
        if value not in (None, False, 0, [], {}, {"type": "text"}, ["text"]):
            raise ValueError("not supported by this server")
        return value


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
