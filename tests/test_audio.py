import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import encode_pyav, tone, wav_bytes

from adapters.runtime.audio import _decode_pyav, _decode_soundfile, decode_audio
from adapters.runtime.errors import AudioError


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_resampled_to_16k(rate):
    wave = decode_audio(wav_bytes(tone(1.0, rate), rate))
    assert wave.dtype == np.float32
    assert abs(wave.shape[0] - 16000) <= 2


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_int_and_float_samples(subtype):
    wave = decode_audio(wav_bytes(tone(0.5), subtype=subtype))
    assert 0.2 < np.abs(wave).max() < 0.4  # the 0.3 amplitude survives every sample format


def test_stereo_is_downmixed():
    left_right = np.stack([tone(0.5), -tone(0.5)], axis=1)  # cancels out when averaged
    wave = decode_audio(wav_bytes(left_right))
    assert np.abs(wave).max() < 1e-3


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III")])
def test_soundfile_formats(fmt, subtype):
    rate = 48000 if subtype == "OPUS" else 16000
    wave = decode_audio(wav_bytes(tone(1.0, rate), rate, subtype=subtype, fmt=fmt))
    assert abs(wave.shape[0] / 16000 - 1.0) < 0.1


@pytest.mark.parametrize("container,codec", [("webm", "libopus"), ("ipod", "aac")])
def test_pyav_containers(container, codec):
    data = encode_pyav(tone(1.0, 48000), 48000, container, codec)
    wave = decode_audio(data)
    assert abs(wave.shape[0] / 16000 - 1.0) < 0.1
    assert np.abs(wave).max() > 0.1


def test_one_resampler_whichever_library_reads_the_container():
    # The same stereo 44.1 kHz WAV read by libsndfile and by FFmpeg must give the same 16 kHz wave:
    # downmix and resampling happen in one place (soxr), not in FFmpeg's swresample for some formats.
    rng = np.random.default_rng(0)
    stereo = np.stack([tone(1.0, 44100), 0.2 * rng.standard_normal(44100).astype(np.float32)], axis=1)
    data = wav_bytes(stereo, 44100, subtype="FLOAT")
    by_soundfile = _decode_soundfile(data, None)
    by_ffmpeg = _decode_pyav(data, None)
    assert by_soundfile.shape == by_ffmpeg.shape
    assert np.abs(by_soundfile - by_ffmpeg).max() < 1e-6


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"this is not audio at all" * 10, "not a readable audio file"),
        (wav_bytes(tone(1.0))[:30], "readable"),
        (wav_bytes(np.zeros(0, np.float32)), "no samples"),
        (wav_bytes(tone(0.02)), "at least"),
    ],
)
def test_bad_audio_is_a_clear_error(data, message):
    with pytest.raises(AudioError, match=message):
        decode_audio(data, name="clip.wav")


def test_duration_limit():
    with pytest.raises(AudioError, match="limit is 2 s"):
        decode_audio(wav_bytes(tone(3.0)), max_seconds=2)


def _peak_bytes(fn) -> int:
    """Peak memory that Python and numpy allocate while fn runs (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _refused(data: bytes, max_seconds: float = 30):
    def run():
        with pytest.raises(AudioError, match=f"the limit is {max_seconds:g} s"):
            decode_audio(data, max_seconds=max_seconds)
    return run


def test_a_decompression_bomb_is_refused_from_its_header():
    # A minute of 8-channel 192 kHz digital silence: a few hundred KB as FLAC, 370 MB as float32 samples.
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=192_000, channels=8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(60):
            f.write(np.zeros((192_000, 8), np.int16))
    data = buf.getvalue()
    assert len(data) < 2_000_000
    assert _peak_bytes(_refused(data)) < 4 * len(data)  # the header is read, not the samples


def test_a_file_without_a_declared_length_is_bounded_by_what_it_decodes():
    from benchmarks.bomb import erase_declared_length

    # A FLAC that declares no length (streaming encoders write them) is read like any other...
    buf = io.BytesIO()
    sf.write(buf, tone(2.0), 16000, format="FLAC")
    assert decode_audio(erase_declared_length(buf.getvalue()), max_seconds=30).shape[0] == 32000
    # ...and a bomb that hides its length is stopped by the decoded length, a block past the limit.
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=192_000, channels=8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(60):
            f.write(np.zeros((192_000, 8), np.int16))
    assert _peak_bytes(_refused(erase_declared_length(buf.getvalue()), max_seconds=10)) < 40 * 2**20


def test_many_channels_are_downmixed_a_block_at_a_time():
    # 20 s at 8 channels, 192 kHz (within the limit): decoded whole it would be 123 MB of float32.
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=192_000, channels=8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(20):
            f.write(np.zeros((192_000, 8), np.int16))
    peak = _peak_bytes(lambda: decode_audio(buf.getvalue(), max_seconds=30))
    assert peak < 60 * 2**20  # the mono signal at 192 kHz (15 MB) and its resampling, not 8 channels of it


def test_pyav_stops_decoding_at_the_limit():
    # Five minutes in a container libsndfile cannot read: 19 MB of samples decoded whole, twice that
    # with the final concatenation; stopped at 30 s, about a tenth.
    data = encode_pyav(tone(300.0, 16000), 16000, "webm", "libopus")
    assert _peak_bytes(_refused(data)) < 8 * 2**20
