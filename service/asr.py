"""The cascade's ASR stage: faster-whisper (CTranslate2) on a 16 kHz waveform."""

from __future__ import annotations

import numpy as np


def fastest_compute_type() -> str:
    """The cascade is the baseline AuRA is measured against, so it runs as fast as the device
    allows: int8 weights on CPU (CTranslate2's quantised kernels), float16 on a GPU."""
    import ctranslate2

    return "float16" if ctranslate2.get_cuda_device_count() > 0 else "int8"


class ASR:
    def __init__(self, model_dir: str, *, compute_type: str = "auto", cpu_threads: int = 0, beam_size: int = 1, workers: int = 2):
        from faster_whisper import WhisperModel

        self.model_dir = model_dir
        self.beam_size = beam_size
        self.compute_type = fastest_compute_type() if compute_type == "auto" else compute_type
        # num_workers lets that many transcriptions run at once (each from its own thread).
        self.model = WhisperModel(model_dir, device="auto", compute_type=self.compute_type, cpu_threads=cpu_threads, num_workers=workers)

    def transcribe(self, wave: np.ndarray) -> str:
        segments, _ = self.model.transcribe(
            wave, language="en", beam_size=self.beam_size, without_timestamps=True, vad_filter=False,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()
