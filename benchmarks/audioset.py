"""The audio a benchmark sends: a directory of audio files, or a manifest (JSONL with audio, text)."""

from __future__ import annotations

import glob
import io
import json
import os
import random
from dataclasses import dataclass, replace

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".webm", ".m4a")


@dataclass
class Clip:
    path: str
    data: bytes
    text: str | None = None  # reference transcript, when known
    instruction: str | None = None
    response: str | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def load_clips(source: str, limit: int | None = None, sample_seed: int | None = None) -> list[Clip]:
    """Clips of a directory or manifest: the first `limit`, or with sample_seed a seeded random
    sample of `limit` (spread over the whole set rather than its alphabetical head)."""
    if os.path.isdir(source):
        paths = sorted(p for p in glob.glob(os.path.join(source, "**", "*"), recursive=True) if p.lower().endswith(AUDIO_EXTENSIONS))
        rows = [{"audio": p} for p in paths]
        base = ""
    elif os.path.isfile(source):
        base = os.path.dirname(os.path.abspath(source))
        with open(source, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        raise FileNotFoundError(f"{source}: no such audio directory or manifest")
    if sample_seed is not None and limit is not None and limit < len(rows):
        rows = random.Random(sample_seed).sample(rows, limit)
    clips = []
    for row in rows[:limit]:
        path = row["audio"] if os.path.isabs(row["audio"]) or not base else os.path.join(base, row["audio"])
        with open(path, "rb") as f:
            clips.append(Clip(path, f.read(), row.get("text"), row.get("instruction"), row.get("response")))
    if not clips:
        raise ValueError(f"{source}: no audio found")
    return clips


# What transcode() can write: (container or file format, codec, sample rate); None codec: libsndfile.
FORMATS = {
    "wav": ("WAV", None, None),
    "flac": ("FLAC", None, None),
    "ogg": ("OGG", None, None),  # vorbis
    "mp3": ("mp3", "libmp3lame", 44100),
    "opus": ("ogg", "libopus", 48000),
    "m4a": ("mp4", "aac", 22050),
    "webm": ("webm", "libopus", 48000),
}


def transcode(clip: Clip, fmt: str) -> Clip:
    """The clip re-encoded as `fmt` (see FORMATS), so the server's decoders see real-world containers."""
    import av
    import numpy as np
    import soundfile as sf
    import soxr

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    wave, rate = sf.read(io.BytesIO(clip.data), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    container, codec, target = FORMATS[fmt]
    buf = io.BytesIO()
    if codec is None:
        sf.write(buf, wave, rate, format=container)
    else:
        wave = soxr.resample(wave, rate, target).astype(np.float32)
        with av.open(buf, mode="w", format=container) as out:
            stream = out.add_stream(codec, rate=target)
            stream.layout = "mono"
            frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
            frame.sample_rate = target
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    stem = os.path.splitext(clip.path)[0]
    return replace(clip, path=f"{stem}.{fmt}", data=buf.getvalue())
