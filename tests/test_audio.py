import numpy as np
import pytest
from conftest import encode_pyav, tone, wav_bytes

from adapters.runtime.audio import decode_audio
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
