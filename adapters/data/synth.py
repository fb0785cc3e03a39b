"""`aura synth`: speak a text file with espeak-ng into wavs and a manifest, for training and evaluation."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

from tqdm.auto import tqdm

from adapters.data.manifest import write_manifest

DEFAULT_VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3", "en-us+m7", "en-gb-scotland+f2"]


class SynthError(RuntimeError):
    pass


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SynthError("espeak-ng is not installed; install it with `apt-get install espeak-ng` (or `make setup`)")
    return path


def speak(text: str, path: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> None:
    cmd = [espeak_binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", path, "--", text]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(path):
        raise SynthError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.strip() or proc.returncode}")


def synth_corpus(
    text_file: str,
    output: str,
    voices: list[str] | None = None,
    rates: list[int] | None = None,
    pitches: list[int] | None = None,
    per_line: int = 1,
    progress: bool = True,
) -> str:
    """Speak each non-empty line `per_line` times, cycling voice × rate × pitch; returns the manifest path."""
    espeak_binary()
    with open(text_file, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    if not lines:
        raise SynthError(f"{text_file}: no text lines to speak")
    styles = itertools.cycle(itertools.product(voices or DEFAULT_VOICES, rates or [140, 170, 200], pitches or [35, 50, 65]))
    clips = os.path.join(output, "clips")
    os.makedirs(clips, exist_ok=True)
    rows = []
    total = len(lines) * per_line
    with tqdm(total=total, desc="speaking", unit="clip", disable=not progress) as bar:
        for i, line in enumerate(lines):
            for _ in range(per_line):
                voice, rate, pitch = next(styles)
                name = f"{len(rows):06d}.wav"
                speak(line, os.path.join(clips, name), voice, rate, pitch)
                rows.append({"audio": f"clips/{name}", "text": line, "voice": voice, "rate": rate, "pitch": pitch, "line": i + 1})
                bar.update(1)
    manifest = os.path.join(output, "manifest.jsonl")
    write_manifest(manifest, rows)
    return manifest
