"""The audio a benchmark sends: a directory of audio files, or a manifest (JSONL with audio, text)."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

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


def load_clips(source: str, limit: int | None = None) -> list[Clip]:
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
    clips = []
    for row in rows[:limit]:
        path = row["audio"] if os.path.isabs(row["audio"]) or not base else os.path.join(base, row["audio"])
        with open(path, "rb") as f:
            clips.append(Clip(path, f.read(), row.get("text"), row.get("instruction"), row.get("response")))
    if not clips:
        raise ValueError(f"{source}: no audio found")
    return clips
