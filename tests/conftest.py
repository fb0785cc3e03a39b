"""Shared fixtures: tiny models are built once per test session (real code paths, random weights)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import av
import numpy as np
import openai
import pytest
import soundfile as sf

# Limits the shared test server runs with (tests send inputs just past them).
MAX_AUDIO_S = 10
MAX_UPLOAD_MB = 1
MAX_MODEL_LEN = 512
MAX_REQUEST_AUDIO_S = 20
SSE_PING_S = 0.2  # keep-alive comments often enough that every streaming test reads some

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, str]:
    from adapters.weights.tiny import make_tiny

    return make_tiny(str(tmp_path_factory.mktemp("tiny")), arch="qwen2")


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory) -> dict[str, str]:
    from adapters.weights.tiny import make_tiny

    return make_tiny(str(tmp_path_factory.mktemp("tiny_gemma")), arch="gemma3")


def tone(seconds: float = 1.0, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def encode_pyav(samples: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory) -> str:
    """~20 clips of real synthetic speech (espeak-ng), as a manifest."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make setup` installs it")
    from adapters.data.synth import synth_corpus

    root = tmp_path_factory.mktemp("speech")
    lines = [
        "turn on the kitchen lights", "what is the weather tomorrow", "play some music please",
        "set an alarm for seven", "call my mother now", "how far is the moon", "stop the timer",
        "read me the news", "open the front door", "what time is it", "add milk to the list",
        "the quick brown fox jumps", "send a message to john", "turn the volume down",
        "is it going to rain", "book a table for two", "remind me at nine", "close the window",
        "where is my phone", "tell me a short story",
    ]
    text = root / "lines.txt"
    text.write_text("\n".join(lines) + "\n")
    return synth_corpus(str(text), str(root / "corpus"), progress=False)


@pytest.fixture(scope="session")
def speech_wav(speech_corpus) -> bytes:
    clip = os.path.join(os.path.dirname(speech_corpus), "clips", "000000.wav")
    with open(clip, "rb") as f:
        return f.read()


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    import sys

    proc = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"aura {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def server(tiny):
    """One `aura serve` (AuRA + cascade, in-process engines) for the whole session."""
    from benchmarks.server_process import aura_serve

    proc = aura_serve("--bundle", tiny["bundle"], "--max-audio-seconds", str(MAX_AUDIO_S), "--max-upload-mb", str(MAX_UPLOAD_MB),
                      "--max-request-audio-seconds", str(MAX_REQUEST_AUDIO_S), "--allow-ignore-eos",
                      "--max-model-len", str(MAX_MODEL_LEN), "--gpu-memory-utilization", "0.15",
                      "--sse-ping-seconds", str(SSE_PING_S)).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def model(tiny) -> str:
    from adapters.runtime.bundle import Bundle

    return Bundle.load(tiny["bundle"]).cfg.name


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def real_speech(tmp_path_factory) -> list[dict]:
    """Real human recordings (Asterisk's prompts, from Debian) with their transcripts."""
    import json

    from benchmarks.real_speech import fetch

    manifest = fetch(str(tmp_path_factory.mktemp("real-speech")))
    base = os.path.dirname(manifest)
    rows = [json.loads(line) for line in open(manifest)]
    for r in rows:
        r["path"] = os.path.join(base, r["audio"])
    return rows
