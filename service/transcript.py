"""Long audio for /v1/audio/transcriptions: cut into segments a model takes, and the transcript
rendered in OpenAI's response formats.

A clip no longer than one segment is one segment. A longer one is cut where Silero VAD (shipped
with faster-whisper, run offline) finds speech; consecutive speech chunks are joined while the
segment spans at most `max_seconds`, so a minute of talk costs a few requests, not one per phrase.
Both paths then transcribe the same segments, so their timestamps agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adapters import SAMPLE_RATE

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
SPEECH_PAD_MS = 200  # VAD pads each speech chunk on both sides: words cut at their edges lose letters


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str = ""

    def samples(self, wave: np.ndarray) -> np.ndarray:
        return wave[int(self.start * SAMPLE_RATE) : int(self.end * SAMPLE_RATE)]


def speech_segments(wave: np.ndarray, max_seconds: float) -> list[Segment]:
    """Segments of at most `max_seconds` covering the speech in `wave` (none for silence)."""
    duration = wave.shape[0] / SAMPLE_RATE
    if duration <= max_seconds:
        return [Segment(0.0, duration)]
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    # Chunks are split at max_speech_duration_s before the padding is added to both sides.
    options = VadOptions(max_speech_duration_s=max_seconds - 2 * SPEECH_PAD_MS / 1000, speech_pad_ms=SPEECH_PAD_MS,
                         min_silence_duration_ms=500)
    chunks = [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in get_speech_timestamps(wave, options)]
    segments: list[Segment] = []
    for start, end in chunks:
        if segments and end - segments[-1].start <= max_seconds:
            segments[-1].end = end
        else:
            segments.append(Segment(start, min(end, start + max_seconds)))
    return segments


def joined(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def _clock(seconds: float, decimal: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def srt(segments: list[Segment]) -> str:
    blocks = [f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n"
              for i, s in enumerate((s for s in segments if s.text.strip()), 1)]
    return "\n".join(blocks)


def vtt(segments: list[Segment]) -> str:
    cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n" for s in segments if s.text.strip()]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(segments: list[Segment], duration: float, temperature: float) -> dict:
    """OpenAI's verbose_json, less what these models do not report (token ids, log-probabilities)."""
    return {
        "task": "transcribe", "language": "english", "duration": round(duration, 3), "text": joined(segments),
        "segments": [{"id": i, "seek": 0, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip(),
                      "tokens": [], "temperature": temperature} for i, s in enumerate(segments)],
        "usage": {"type": "duration", "seconds": round(duration, 3)},
    }
