"""Long audio on /v1/audio/transcriptions: cut at pauses into segments the model takes, both paths,
and OpenAI's response formats (srt and vtt read back by real parsers)."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt
from conftest import MAX_AUDIO_S, wav_bytes

from adapters.runtime.audio import load_audio
from service.transcript import Segment, speech_segments

pytestmark = pytest.mark.vllm
RATE = 16000


@pytest.fixture(scope="module")
def long_speech(speech_corpus) -> tuple[bytes, float]:
    """About 45 s: twenty spoken clips with a second of silence after each (the test server takes 10 s clips)."""
    folder = os.path.join(os.path.dirname(speech_corpus), "clips")
    parts = []
    for name in sorted(os.listdir(folder))[:20]:
        parts += [load_audio(os.path.join(folder, name)), np.zeros(RATE, np.float32)]
    wave = np.concatenate(parts)
    return wav_bytes(wave, fmt="FLAC"), wave.shape[0] / RATE  # FLAC: under the test server's 1 MB body limit


def test_speech_is_cut_into_segments_no_longer_than_the_limit(long_speech):
    data, duration = long_speech
    wave = sf.read(io.BytesIO(data), dtype="float32")[0]
    segments = speech_segments(wave, max_seconds=MAX_AUDIO_S)
    assert len(segments) >= duration / MAX_AUDIO_S
    assert all(0 <= s.start < s.end <= duration + 1e-6 and s.end - s.start <= MAX_AUDIO_S for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False))
    assert sum(s.end - s.start for s in segments) > 0.5 * duration  # the speech is in them
    assert speech_segments(wave[: 5 * RATE], max_seconds=MAX_AUDIO_S) == [Segment(0.0, 5.0)]  # a short clip is one segment
    assert speech_segments(np.zeros(60 * RATE, np.float32), max_seconds=MAX_AUDIO_S) == []


@pytest.mark.parametrize("path", ["aura", "cascade"])
def test_long_audio_is_transcribed_in_segments_with_times(client, model, long_speech, path):
    data, duration = long_speech
    name = model if path == "aura" else model + "-cascade"
    out = client.audio.transcriptions.create(model=name, file=("long.flac", data), response_format="verbose_json")
    segments = out.segments
    assert len(segments) >= duration / MAX_AUDIO_S and out.duration == pytest.approx(duration, abs=0.01)
    assert all(s.end - s.start <= MAX_AUDIO_S for s in segments)
    assert out.text == " ".join(s.text for s in segments if s.text)

    subtitles = list(srt.parse(client.audio.transcriptions.create(model=name, file=("long.flac", data), response_format="srt")))
    assert [round(c.start.total_seconds(), 3) for c in subtitles] == [s.start for s in segments if s.text]
    captions = webvtt.from_buffer(io.StringIO(client.audio.transcriptions.create(model=name, file=("long.flac", data),
                                                                                 response_format="vtt")))
    assert [c.text for c in captions] == [s.text for s in segments if s.text]
    ends = [srt.timedelta_to_srt_timestamp(timedelta(seconds=s.end)).replace(",", ".") for s in segments if s.text]
    assert [c.end for c in captions] == ends


def test_a_file_over_the_transcription_limit_is_refused_before_decoding(server, model):
    import httpx

    silence = io.BytesIO()
    sf.write(silence, np.zeros(11 * 60 * 8000, np.int16), 8000, format="FLAC")  # 11 minutes, a few kB
    r = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("long.flac", silence.getvalue())},
                   data={"model": model}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio" and "600" in r.json()["error"]["message"]
