"""Prometheus metrics of the gateway. They live in the default registry, beside vLLM's own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("aura_requests_total", "HTTP requests by route, mode and status code", ["route", "mode", "status"])
ERRORS = Counter("aura_errors_total", "error responses by error code", ["code"])
CANCELLED = Counter("aura_requests_cancelled_total", "requests whose client left before the end (engine request aborted)", ["mode"])
IN_FLIGHT = Gauge("aura_requests_in_flight", "requests being processed", ["mode"])
STAGE_SECONDS = Histogram("aura_stage_seconds", "latency of each pipeline stage", ["mode", "stage"], buckets=_LATENCY_BUCKETS)
AUDIO_SECONDS = Counter("aura_audio_seconds_total", "seconds of audio received", ["mode"])
REAL_TIME_FACTOR = Histogram("aura_real_time_factor", "request time / audio duration", ["mode"],
                             buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10))
TOKENS = Counter("aura_tokens_total", "tokens by kind (prompt includes audio)", ["mode", "kind"])


def observe(mode: str, timings_ms: dict[str, float], audio_seconds: float, prompt: int, audio: int, completion: int) -> None:
    for stage, ms in timings_ms.items():
        STAGE_SECONDS.labels(mode, stage).observe(ms / 1000)
    if audio_seconds > 0:
        AUDIO_SECONDS.labels(mode).inc(audio_seconds)
        REAL_TIME_FACTOR.labels(mode).observe(timings_ms.get("total", 0) / 1000 / audio_seconds)
    TOKENS.labels(mode, "prompt").inc(prompt)
    TOKENS.labels(mode, "audio").inc(audio)
    TOKENS.labels(mode, "completion").inc(completion)
