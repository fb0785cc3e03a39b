"""Typed settings: environment variables (AURA_*) and `aura serve` flags, one place for both."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AURA_", env_file=None, extra="ignore")

    bundle: str | None = Field(None, description="AuRA bundle directory (aura.json, audio_embed.safetensors, llm/); "
                               "default: the pretrained Gemma 3 270M adapter, exported to artifacts/bundles/ on first use")
    model_name: str | None = Field(None, description="public model name (default: the name in aura.json, else the bundle's folder name); NAME-cascade is the cascade")
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in containers)")
    port: int = Field(8000, description="port to listen on")

    engine: Literal["inprocess", "remote"] = Field("inprocess", description="in-process vLLM AsyncLLM, or a remote `vllm serve`")
    adapters: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="more AuRA models on the bundle's base LLM, served by the same engine "
        "(--engine-layout single): NAME=BUNDLE_DIR, comma-separated; each NAME is a model of its own")
    engine_layout: Literal["single", "separate"] = Field(
        "single", description="in-process engines. single: one engine of the base LLM serves AuRA (the bundle's LoRA, applied "
        "per request), the cascade and text (the base model); separate: the merged AuRA LLM and the base LLM, "
        "each its own engine (twice the weights and KV cache)")
    remote_url: str | None = Field(None, description="base URL of `vllm serve --enable-prompt-embeds` serving the bundle's llm/")
    remote_timeout_s: float = Field(600.0, gt=0, description="timeout of one remote engine request")

    cascade: Literal["auto", "on", "off"] = Field("auto", description="auto: on when an ASR model is known")
    cascade_asr: str | None = Field(None, description="CTranslate2 Whisper directory for faster-whisper (default: the bundle's asr_model)")
    cascade_llm: str | None = Field(None, description="base (un-merged) LLM directory (default: the bundle's base_llm)")
    cascade_remote_url: str | None = Field(None, description="a `vllm serve` of the base LLM, instead of a second in-process engine")
    asr_compute_type: str = Field("auto", description="CTranslate2 compute type of the ASR (auto: the fastest, int8 on CPU and "
                                  "float16 on GPU; or default (the model's own), float32, int8_float16, ...)")
    asr_threads: int = Field(0, ge=0, description="CPU threads of the ASR (0: CTranslate2 default)")
    frontend_threads: int = Field(1, ge=1, description="torch threads of the gateway's audio front end (log-mel and the audio "
                                  "layer: a few ms per clip); vLLM's engine has its own, so more here mostly takes cores from it")
    asr_beam_size: int = Field(1, ge=1, description="ASR beam size (1: greedy, the fastest)")

    gpu_memory_utilization: float = Field(0.2, gt=0, le=1, description="vLLM: GPU memory fraction (on CPU: fraction of RAM for KV cache)")
    max_model_len: int = Field(2048, gt=0, description="longest prompt + completion, in tokens (audio included)")
    dtype: str = Field("auto", description="vLLM dtype of the weights (auto: the checkpoint's; float32 on a CPU without native bf16)")
    enforce_eager: bool = Field(True, description="skip CUDA graphs / torch.compile (faster start, CPU-friendly)")

    max_audio_seconds: float = Field(30.0, gt=0, description="longest accepted clip")
    max_transcription_seconds: float = Field(600.0, gt=0, description="longest file /v1/audio/transcriptions accepts; "
                                             "one longer than --max-audio-seconds is cut at pauses (VAD) into segments of at most that")
    max_audio_parts: int = Field(4, gt=0, description="audio parts in one chat request")
    max_request_audio_seconds: float = Field(60.0, gt=0, description="audio in one request, all its parts together, in seconds")
    max_upload_mb: float = Field(25.0, gt=0, description="largest accepted request body (multipart or JSON)")
    max_concurrency: int = Field(16, gt=0, description="requests processed at once")
    max_queue: int = Field(64, ge=0, description="requests waiting for a slot; past it: 429")
    queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a slot; past it: 503")
    sse_ping_seconds: float = Field(15.0, gt=0, description="a keep-alive comment on streamed responses this often, "
                                    "so proxies and clients do not time out while a request waits for its first token")
    keep_alive_seconds: float = Field(15.0, gt=0, description="an idle client connection is closed after this long; longer than "
                                      "the pool expiry of httpx and the openai client (5 s), so they never send a request on a "
                                      "connection the server is closing at that moment (uvicorn's own default is 5 s too)")
    default_max_tokens: int = Field(256, gt=0, description="completion length when a request gives none")
    allow_ignore_eos: bool = Field(False, description="let clients set ignore_eos (always generate max_tokens tokens): "
                                   "for benchmarks; off, no client can force full-length generations")

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated bearer keys; empty: no auth")
    api_keys_file: str | None = Field(None, description="file of bearer keys, one per line, added to api_keys: keeps them out of "
                                      "`ps` and the environment")
    log_level: str = Field("info", description="debug, info, warning, error")
    log_json: bool = Field(True, description="JSON log lines (one object per line, with the request id)")

    @field_validator("api_keys", "adapters", mode="before")
    @classmethod
    def _split_commas(cls, v):
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @field_validator("adapters")
    @classmethod
    def _name_equals_dir(cls, v: list[str]) -> list[str]:
        for item in v:
            name, sep, path = item.partition("=")
            if not (sep and name.strip() and path.strip()):
                raise ValueError(f"adapters: {item!r} is not NAME=BUNDLE_DIR")
        return v

    def more_adapters(self) -> dict[str, str]:
        return {name.strip(): path.strip() for name, _, path in (item.partition("=") for item in self.adapters)}

    @model_validator(mode="after")
    def _read_keys_file(self):
        if self.api_keys_file:
            try:
                with open(self.api_keys_file) as f:
                    keys = [k.strip() for k in f if k.strip() and not k.lstrip().startswith("#")]
            except OSError as e:
                raise ValueError(f"api_keys_file {self.api_keys_file}: {e.strerror}") from None
            if not keys:
                raise ValueError(f"api_keys_file {self.api_keys_file} holds no key")
            self.api_keys = [*self.api_keys, *keys]
        return self

    def exposure_warning(self) -> str | None:
        """Serving beyond this machine with no key at all is allowed, but never silently."""
        if self.api_keys or self.host in ("127.0.0.1", "localhost", "::1"):
            return None
        return (f"listening on {self.host}:{self.port} with no API key: anyone who can reach it can use the model; "
                "set --api-keys-file (or AURA_API_KEYS)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
