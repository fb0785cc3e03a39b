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


# Blocks of this many frames are read and downmixed one at a time, so a file's many channels or high
# sample rate never sit in memory all at once.
BLOCK_FRAMES = 1 << 16


def _too_long(seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"the audio is {seconds:.1f} s long; the limit is {max_seconds:g} s")


def _decode_soundfile(data: bytes, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Mono samples and their rate. The declared length is checked before anything is decoded, and
    the decoded length as it grows (a header can lie): a small file of long multichannel silence (a
    decompression bomb) is refused for the few bytes of its header, not after gigabytes of samples."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        rate = f.samplerate
        if f.frames > 0:
            _too_long(f.frames / rate, max_seconds)
        limit = None if max_seconds is None else int(max_seconds * rate) + 1
        mono, frames = [], 0
        for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
            frames += block.shape[0]
            if limit is not None and frames > limit:
                _too_long(frames / rate, max_seconds)
            mono.append(block.mean(axis=1))
    return (np.concatenate(mono) if mono else np.zeros(0, np.float32)), rate


def _decode_pyav(data: bytes, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Mono samples and their rate through FFmpeg, with the same bounds: the container's declared
    duration first, then the decoded length, frame by frame. FFmpeg only decodes: downmixing (a plain
    mean) and resampling (soxr) are left to to_mono_16k, as for libsndfile, so the same audio gives
    the same features whichever library reads its container (swresample's downmix matrix and
    resampling filter differ from ours)."""
    import av  # imported lazily: FFmpeg is only needed for containers libsndfile cannot read

    mono: list[np.ndarray] = []
    frames = 0
    rate = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        if container.duration:  # microseconds, when the container declares it
            _too_long(container.duration / 1e6, max_seconds)
        # Planar float32 at the stream's own layout and rate: a sample-format conversion only.
        to_float = av.AudioResampler(format="fltp")
        for frame in container.decode(audio=0):
            rate = rate or frame.sample_rate
            for out in to_float.resample(frame):
                mono.append(out.to_ndarray().mean(axis=0))  # (channels, samples) -> samples
                frames += mono[-1].shape[0]
            _too_long(frames / rate, max_seconds)
        for out in to_float.resample(None):
            mono.append(out.to_ndarray().mean(axis=0))
    if not mono:
        return np.zeros(0, np.float32), SAMPLE_RATE
    return np.concatenate(mono).astype(np.float32, copy=False), rate


def decode_audio(data: bytes, *, max_seconds: float | None = None, name: str = "audio") -> np.ndarray:
    """Decode any supported file's bytes to mono 16 kHz float32; raise AudioError naming `name`.
    With max_seconds, work is bounded before it is done: see _decode_soundfile."""
    if not data:
        raise AudioError(f"{name}: the file is empty")
    try:
        try:
            samples, rate = _decode_soundfile(data, max_seconds)
        except AudioError:
            raise
        except Exception:
            samples, rate = _decode_pyav(data, max_seconds)
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
