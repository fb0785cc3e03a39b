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


# What libsndfile reports for a file that does not declare its length (SF_COUNT_MAX), e.g. a FLAC
# written by a streaming encoder: not a length to refuse, only the decoded length can tell.
UNKNOWN_FRAMES = 2**63 - 1

# Blocks of this many frames are read and downmixed one at a time, so a file's many channels or high
# sample rate never sit in memory all at once.
BLOCK_FRAMES = 1 << 16


def _too_long(seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"the audio is {seconds:.1f} s long; the limit is {max_seconds:g} s")


class _To16k:
    """Takes decoded blocks as they come: downmixes each (a plain mean of its channels), resamples it
    to 16 kHz (soxr HQ, streaming) and checks the length so far. One place for both readers, so the
    same audio gives the same wave whichever library reads its container; and memory holds only the
    16 kHz result, never the file's own rate and channels (48 times more for 8 channels at 192 kHz,
    which a file hiding its length would otherwise make the server hold up to the limit)."""

    def __init__(self, rate: int, max_seconds: float | None):
        if rate <= 0:
            raise AudioError(f"invalid sample rate {rate}")
        self.rate, self.max_seconds, self.frames = rate, max_seconds, 0
        self._stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._out: list[np.ndarray] = []

    def add(self, block: np.ndarray, channel_axis: int) -> None:
        mono = block.mean(axis=channel_axis, dtype=np.float32)
        self.frames += mono.shape[0]
        _too_long(self.frames / self.rate, self.max_seconds)
        self._out.append(self._stream.resample_chunk(mono) if self._stream else mono)

    def wave(self) -> np.ndarray:
        if self._stream is not None:
            self._out.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.concatenate(self._out) if self._out else np.zeros(0, np.float32)


def _decode_soundfile(data: bytes, max_seconds: float | None) -> np.ndarray:
    """The 16 kHz mono wave. The declared length is checked before anything is decoded, and the decoded
    length as it grows (a header can lie, or say nothing): a small file of long multichannel silence
    (a decompression bomb) is refused for the few bytes of its header, not after gigabytes of samples."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        if 0 < f.frames < UNKNOWN_FRAMES:
            _too_long(f.frames / f.samplerate, max_seconds)
        out = _To16k(f.samplerate, max_seconds)
        for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):  # (frames, channels)
            out.add(block, channel_axis=1)
    return out.wave()


def _decode_pyav(data: bytes, max_seconds: float | None) -> np.ndarray:
    """The 16 kHz mono wave through FFmpeg, with the same bounds: the container's declared duration
    first, then the decoded length, frame by frame. FFmpeg only decodes: downmixing and resampling
    are _To16k's, as for libsndfile (swresample's downmix matrix and filter differ from ours)."""
    import av  # imported lazily: FFmpeg is only needed for containers libsndfile cannot read

    out = None
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        if container.duration:  # microseconds, when the container declares it
            _too_long(container.duration / 1e6, max_seconds)
        # Planar float32 at the stream's own layout and rate: a sample-format conversion only.
        to_float = av.AudioResampler(format="fltp")
        for frame in container.decode(audio=0):
            out = out or _To16k(frame.sample_rate, max_seconds)
            for planar in to_float.resample(frame):
                out.add(planar.to_ndarray(), channel_axis=0)  # (channels, samples)
        for planar in to_float.resample(None) if out else []:
            out.add(planar.to_ndarray(), channel_axis=0)
    return out.wave() if out else np.zeros(0, np.float32)


def decode_audio(data: bytes, *, max_seconds: float | None = None, name: str = "audio") -> np.ndarray:
    """Decode any supported file's bytes to mono 16 kHz float32; raise AudioError naming `name`.
    With max_seconds, work is bounded before it is done: see _decode_soundfile."""
    if not data:
        raise AudioError(f"{name}: the file is empty")
    try:
        try:
            wave = _decode_soundfile(data, max_seconds)
        except AudioError:
            raise
        except Exception:
            wave = _decode_pyav(data, max_seconds)
    except AudioError as e:
        raise AudioError(f"{name}: {e}") from None
    except Exception as e:
        raise AudioError(f"{name}: not a readable audio file ({type(e).__name__})") from None
    if not np.isfinite(wave).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
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
