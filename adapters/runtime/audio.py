"""Audio decoding to the one waveform format AuRA uses: mono float32 at 16 kHz.

soundfile (libsndfile) reads wav/flac/ogg-vorbis/opus/mp3 quickly; containers it cannot read
(webm, m4a/mp4, some ogg-opus) go through PyAV (FFmpeg).
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from adapters import SAMPLE_RATE
from adapters.runtime.errors import AudioError

# Below this the student sees fewer than a handful of audio tokens; nothing useful can be said.
MIN_SECONDS = 0.1


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix (frames, channels) or (frames,) samples of any dtype and resample to 16 kHz float32."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioError(f"expected 1-D or 2-D samples, got shape {x.shape}")
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}")
    if sample_rate != SAMPLE_RATE and x.size:
        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise AudioError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(x)


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


def _decode_pyav(data: bytes) -> tuple[np.ndarray, int]:
    import av  # imported lazily: FFmpeg is only needed for containers libsndfile cannot read

    chunks: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros((0, 1), np.float32), SAMPLE_RATE
    return np.concatenate(chunks).astype(np.float32)[:, None], SAMPLE_RATE


def decode_audio(data: bytes, *, max_seconds: float | None = None, name: str = "audio") -> np.ndarray:
    """Decode any supported file's bytes to mono 16 kHz float32; raise AudioError naming `name`."""
    if not data:
        raise AudioError(f"{name}: the file is empty")
    try:
        samples, rate = _decode_soundfile(data)
    except Exception:
        try:
            samples, rate = _decode_pyav(data)
        except AudioError as e:
            raise AudioError(f"{name}: {e}") from None
        except Exception as e:
            raise AudioError(f"{name}: not a readable audio file ({type(e).__name__})") from None
    wave = to_mono_16k(samples, rate)
    check_duration(wave, max_seconds=max_seconds, name=name)
    return wave


def check_duration(wave: np.ndarray, *, max_seconds: float | None, name: str = "audio") -> None:
    seconds = wave.shape[0] / SAMPLE_RATE
    if wave.shape[0] == 0:
        raise AudioError(f"{name}: the audio has no samples")
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: the audio is {seconds:.3f} s long; at least {MIN_SECONDS} s is needed")
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"{name}: the audio is {seconds:.1f} s long; the limit is {max_seconds:g} s")


def load_audio(path: str, *, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file from disk as mono 16 kHz float32."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror})") from None
    return decode_audio(data, max_seconds=max_seconds, name=path)
