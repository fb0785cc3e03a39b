"""The cascade's ASR stage: faster-whisper (CTranslate2) on a 16 kHz waveform."""

from __future__ import annotations

import numpy as np


class ASR:
    def __init__(self, model_dir: str, *, compute_type: str = "default", cpu_threads: int = 0, beam_size: int = 1, workers: int = 2):
        from faster_whisper import WhisperModel

        self.model_dir = model_dir
        self.beam_size = beam_size
        # num_workers lets that many transcriptions run at once (each from its own thread).
        self.model = WhisperModel(model_dir, device="auto", compute_type=compute_type, cpu_threads=cpu_threads, num_workers=workers)

    def transcribe(self, wave: np.ndarray) -> str:
        segments, _ = self.model.transcribe(
            wave, language="en", beam_size=self.beam_size, without_timestamps=True, vad_filter=False,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()
