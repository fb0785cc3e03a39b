"""The demo corpus: project-written sentences, number handling, augmentation, one rendered clip."""

import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from adapters.data import prose
from adapters.data.corpus import Voice, _render, augment
from adapters.data.sentences import ANSWER_INSTRUCTION, CAPITALS, DAYS, generate
from adapters.runtime.text import normalize, number_words

WORD_VALUE = {number_words(n): n for n in range(100)}


def test_sentences_are_distinct_deterministic_and_varied():
    a, b = generate(2000, seed=3), generate(2000, seed=3)
    assert a == b
    assert len({s.text for s in a}) == 2000
    assert {s.kind for s in a} == {"command", "question", "statement", "numbers", "names"}
    assert generate(50, seed=4) != generate(50, seed=3)
    assert not any(re.search(r"\d", s.text) for s in a), "numbers are written as a speaker says them"


def test_answers_are_right():
    answered = [s for s in generate(3000, seed=0) if s.response is not None]
    assert len(answered) > 100 and all(s.instruction == ANSWER_INSTRUCTION for s in answered)
    checked = 0
    for s in answered:
        t = s.text.rstrip("?")
        if m := re.fullmatch(r"What is (.+) plus (.+)", t):
            assert WORD_VALUE[m[1]] + WORD_VALUE[m[2]] == WORD_VALUE[s.response]
        elif m := re.fullmatch(r"What is (.+) minus (.+)", t):
            assert WORD_VALUE[m[1]] - WORD_VALUE[m[2]] == WORD_VALUE[s.response]
        elif m := re.fullmatch(r"What is the capital of (.+)", t):
            assert CAPITALS[m[1]] == s.response
        elif m := re.fullmatch(r"What day comes after (.+)", t):
            assert DAYS[(DAYS.index(m[1]) + 1) % 7] == s.response
        else:
            continue
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("n, words", [(0, "zero"), (13, "thirteen"), (40, "forty"), (415, "four hundred fifteen"),
                                      (2024, "two thousand twenty four")])
def test_number_words(n, words):
    assert number_words(n) == words


def test_normalize_spells_digits_so_asr_and_llm_styles_agree():
    assert normalize("Wake me at 7:30, room 415!") == normalize("wake me at seven thirty room four hundred fifteen")
    assert number_words(1987, year=True) == "nineteen eighty seven"


def test_augment_hits_its_gain_and_noise_ranges():
    rng = np.random.default_rng(0)
    clean = (0.3 * np.sin(np.arange(32000) / 10)).astype(np.float32)
    seen_noise = 0
    for _ in range(40):
        out, info = augment(clean, rng)
        assert out.dtype == np.float32 and out.shape == clean.shape and np.abs(out).max() <= 0.99 + 1e-6
        assert -12 <= info["gain_db"] <= 4
        if "snr_db" in info:
            seen_noise += 1
            assert 10 <= info["snr_db"] <= 35
            scaled = clean * 10 ** (info["gain_db"] / 20)
            noise = out - scaled
            measured = 10 * np.log10(np.mean(scaled**2) / np.mean(noise**2))
            if np.abs(scaled).max() <= 0.99:  # not limited: the SNR is exactly what was asked
                assert abs(measured - info["snr_db"]) < 0.5
    assert 5 < seen_noise < 35


def test_render_speaks_a_16k_clip(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make setup` installs it")
    (tmp_path / "clips").mkdir()
    (s,) = [x for x in generate(400, seed=0) if x.response is not None][:1]
    row = _render((7, s, Voice("espeak", "en-us+f3", 1.1, 60), str(tmp_path), 1))
    wave, rate = sf.read(os.path.join(tmp_path, row["audio"]))
    assert rate == 16000 and wave.ndim == 1 and len(wave) > 8000
    assert row["text"] == s.text and row["response"] == s.response and row["voice"] == "espeak:en-us+f3"


def test_prose_keeps_clean_sentences_and_drops_the_rest(tmp_path):
    (tmp_path / "wisdom").write_text(
        "A journey of a thousand miles begins with a single step.\n"
        "\t\t-- Lao Tzu\n%\n"
        "Call 555 1234 now for a free gift.\n%\n"
        "The NASA budget was cut again this year.\n%\n"
        "We flew to the U.S. on a rainy day in the spring.\n%\n"
        "Too short.\n%\n"
        "Never argue with a fool. Onlookers may not be able to tell the difference.\n"
    )
    (tmp_path / "art").write_text("Pictures are skipped even when they look like sentences.\n")
    (tmp_path / "wisdom.dat").write_text("binary index, not a collection\n")
    assert prose.fortune_sentences(str(tmp_path)) == [
        "A journey of a thousand miles begins with a single step.",
        "Never argue with a fool.",
        "Onlookers may not be able to tell the difference.",
    ]
    assert prose.sample(1, seed=3, directory=str(tmp_path)) == prose.sample(2, seed=3, directory=str(tmp_path))[:1]
    with pytest.raises(prose.ProseError, match="has 3 usable"):
        prose.sample(4, directory=str(tmp_path))
    with pytest.raises(prose.ProseError, match="install the Debian package"):
        prose.fortune_sentences(str(tmp_path / "missing"))
