"""The demo training corpus: project-written sentences, and free-form English prose for a wider
vocabulary (adapters.data.prose), spoken by every offline TTS voice we have.

    python -m adapters.data.corpus artifacts/corpus                 # the default model's corpus: 11,750 clips, ~17 min on 2 cores
    python -m adapters.data.corpus artifacts/corpus --only heldout  # just its 450 held-out clips (for benchmarks)

Voices come from three Debian synthesizers: espeak-ng (formant; accents × variants, random rate
and pitch), MBROLA diphone voices driven by espeak-ng (us1, us2, us3, en1), and Festival (kal
diphone, the CMU SLT HTS voice, rab diphone). Every clip then gets a random gain and, half the
time, background noise at 10-35 dB SNR, and is written as 16 kHz mono wav.

Splits, each a manifest in the output folder:
  train.jsonl            template sentences 0..n_train and n_prose prose sentences, seen voices
  heldout-seen.jsonl     unseen template sentences, seen voices
  heldout-voice.jsonl    unseen template sentences, a voice never used in training (Festival rab diphone)
  heldout-prose.jsonl    unseen prose sentences, seen voices
Questions with a known answer also carry {"instruction": "Answer the question.", "response": ...}.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from adapters.data.manifest import write_manifest
from adapters.data.prose import ProseError
from adapters.data.prose import sample as prose_sample
from adapters.data.sentences import Sentence, generate
from adapters.data.synth import SynthError, espeak_binary
from adapters.runtime.audio import SAMPLE_RATE, load_audio

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+klatt", "+klatt2"]
MBROLA_VOICES = ["mb-us1", "mb-us2", "mb-us3", "mb-en1"]
FESTIVAL_VOICES = ["kal_diphone", "cmu_us_slt_arctic_hts"]
HELDOUT_VOICE = ("festival", "rab_diphone")
# The Debian packages these voices (and the prose) come from are listed once, in scripts/setup-tts.sh.
SETUP_HINT = "`bash scripts/setup-tts.sh` (run by `make corpus`) installs the Debian voices and fortunes it needs"


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak | mbrola | festival
    name: str
    rate: float = 1.0  # speaking-rate factor
    pitch: int = 50  # espeak pitch 0-99

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


def random_voice(r: random.Random) -> Voice:
    """espeak 40%, MBROLA 35%, Festival 25%: the diphone and HTS voices sound closer to people."""
    rate = r.uniform(0.8, 1.25)
    x = r.random()
    if x < 0.4:
        return Voice("espeak", r.choice(ESPEAK_ACCENTS) + r.choice(ESPEAK_VARIANTS), rate, r.randint(25, 80))
    if x < 0.75:
        return Voice("mbrola", r.choice(MBROLA_VOICES), rate, r.randint(30, 70))
    return Voice("festival", r.choice(FESTIVAL_VOICES), rate)


def speak(text: str, voice: Voice, path: str) -> None:
    if voice.engine in ("espeak", "mbrola"):
        cmd = [espeak_binary(), "-v", voice.name, "-s", str(round(165 * voice.rate)), "-p", str(voice.pitch), "-w", path, "--", text]
    elif voice.engine == "festival":
        if shutil.which("text2wave") is None:
            raise SynthError("festival is not installed; run `make setup`")
        script = f"(voice_{voice.name})(Parameter.set 'Duration_Stretch {1 / voice.rate:.3f})"
        cmd = ["text2wave", "-eval", script, "-o", path]
    else:
        raise SynthError(f"unknown TTS engine {voice.engine!r}")
    proc = subprocess.run(cmd, input=text if voice.engine == "festival" else None, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) < 1000:
        raise SynthError(f"{voice.label} failed on {text!r}: {proc.stderr.strip()[-300:] or proc.returncode}")


def augment(wave: np.ndarray, r: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Random gain (-12..+4 dB) and, half the time, white or brown noise at 10-35 dB SNR."""
    info: dict = {}
    if r.random() < 0.5:
        snr = float(r.uniform(10, 35))
        noise = r.standard_normal(wave.shape[0]).astype(np.float32)
        if r.random() < 0.5:  # brown noise: rumble, like a room or a car, rather than hiss
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
        p_sig = float(np.mean(wave**2)) + 1e-10
        noise *= np.sqrt(p_sig / (float(np.mean(noise**2)) + 1e-10) / 10 ** (snr / 10))
        wave = wave + noise
        info["snr_db"] = round(snr, 1)
    gain = float(r.uniform(-12, 4))
    wave = wave * 10 ** (gain / 20)
    peak = float(np.abs(wave).max())
    if peak > 0.99:
        wave = wave * (0.99 / peak)
    info["gain_db"] = round(gain, 1)
    return wave.astype(np.float32), info


def _render(job: tuple) -> dict:
    index, sentence, voice, out_dir, seed = job
    name = f"clips/{index:06d}.wav"
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        speak(sentence.text, voice, raw)
        wave = load_audio(raw)  # mono, 16 kHz (Festival's HTS voice is 32 kHz)
    wave, info = augment(wave, np.random.default_rng(seed))
    sf.write(os.path.join(out_dir, name), wave, SAMPLE_RATE, subtype="PCM_16")
    row = {"audio": name, "text": sentence.text, "voice": voice.label, "rate": round(voice.rate, 2), "kind": sentence.kind, **info}
    if sentence.response is not None:
        row.update(instruction=sentence.instruction, response=sentence.response)
    return row


SPLITS = ("train", "heldout-seen", "heldout-voice", "heldout-prose")


def build(out: str, n_train: int = 3500, repeat: int = 800, n_heldout: int = 150, n_prose: int = 7000, seed: int = 0,
          workers: int = 2, progress: bool = True, splits: tuple[str, ...] = SPLITS) -> dict[str, str]:
    """Render `splits` into `out`; returns {split: manifest path}. Every split is planned whatever is
    rendered, so the held-out sets alone (for benchmarks) are the clips training was evaluated on."""
    espeak_binary()
    sentences = generate(n_train + 2 * n_heldout, seed=seed)
    train_s, seen_s, voice_s = sentences[:n_train], sentences[n_train : n_train + n_heldout], sentences[n_train + n_heldout :]
    r = random.Random(seed)
    jobs: dict[str, list[tuple]] = {split: [] for split in SPLITS}
    i = 0

    def add(split: str, s: Sentence, v: Voice) -> None:
        nonlocal i
        jobs[split].append((i, s, v, out, seed * 1_000_003 + i))
        i += 1

    for s in train_s:
        add("train", s, random_voice(r))
    for s in r.sample(train_s, min(repeat, len(train_s))):  # some sentences again, in another voice
        add("train", s, random_voice(r))
    for s in seen_s:
        add("heldout-seen", s, random_voice(r))
    for s in voice_s:
        add("heldout-voice", s, Voice(*HELDOUT_VOICE, rate=r.uniform(0.9, 1.1)))
    # Prose comes last so that adding it left every template clip above exactly as it was.
    prose = [Sentence(t, "prose") for t in prose_sample(n_prose + n_heldout, seed)] if n_prose or "heldout-prose" in splits else []
    for s in prose[:n_prose]:
        add("train", s, random_voice(r))
    for s in prose[n_prose : n_prose + n_heldout]:
        add("heldout-prose", s, random_voice(r))

    os.makedirs(os.path.join(out, "clips"), exist_ok=True)
    manifests = {}
    jobs = {k: v for k, v in jobs.items() if k in splits}
    total = sum(len(j) for j in jobs.values())
    with ProcessPoolExecutor(workers) as pool, tqdm(total=total, desc="speaking", unit="clip", disable=not progress) as bar:
        for split, split_jobs in jobs.items():
            rows = []
            for row in pool.map(_render, split_jobs, chunksize=16):
                rows.append(row)
                bar.update(1)
            manifests[split] = os.path.join(out, f"{split}.jsonl")
            write_manifest(manifests[split], rows)
    return manifests


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (clips/ and the manifests)")
    p.add_argument("--train", type=int, default=3500, help="distinct training sentences")
    p.add_argument("--repeat", type=int, default=800, help="training sentences spoken a second time, by another voice")
    p.add_argument("--prose", type=int, default=7000, help="prose training sentences (Debian's fortunes), each spoken once")
    p.add_argument("--heldout", type=int, default=150, help="sentences in each held-out split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", choices=["all", "heldout"], default="all", help="heldout: only the two held-out splits (for benchmarks)")
    a = p.parse_args(argv)
    splits = SPLITS if a.only == "all" else SPLITS[1:]
    try:
        manifests = build(a.out, a.train, a.repeat, a.heldout, a.prose, a.seed, a.workers, splits=splits)
    except (SynthError, ProseError) as e:
        raise SystemExit(f"error: {e}; {SETUP_HINT}") from None
    for split, path in manifests.items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
