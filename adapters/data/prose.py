"""Varied English sentences from the Debian `fortunes` package, to widen the corpus's vocabulary.

The project's templates (adapters.data.sentences) know about 500 words: a student trained only on them
learns to guess a template and its slot words rather than to listen. Fortune-cookie text is
free-form English with about 11,000 distinct words. We keep only sentences a TTS voice reads
cleanly: 4-18 words, letters and plain punctuation, no digits, acronyms, abbreviations or
attributions. (A title such as "Mr." still ends a sentence early; what follows it is a fragment,
but the transcript of a fragment is as correct as any.)
"""

from __future__ import annotations

import glob
import os
import random
import re

FORTUNE_DIR = "/usr/share/games/fortunes"
DEBIAN_PACKAGE = "fortunes"
# Collections left out: pictures, non-prose (code, lyrics, riddles) and the ones whose jokes are
# about groups of people.
SKIP = {"art", "ascii-art", "ethnic", "men-women", "drugs", "sex", "politics", "religion", "debian", "linuxcookie",
        "perl", "startrek", "zippy", "riddles", "songs-poems", "pets"}
_ATTRIBUTION = re.compile(r"\s*(--|\t\t| {2,}--)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CLEAN = re.compile(r"[A-Z][A-Za-z ,.'?!;:-]*[.?!]")
_REJECT = re.compile(r"\b[A-Z]{3,}\b|\b[A-Za-z]\.|--|\.\.|\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|Prof|Gen|Col|Rev)\.")


class ProseError(RuntimeError):
    pass


def _sentences(entry: str) -> list[str]:
    lines = [line for line in entry.split("\n") if not _ATTRIBUTION.match(line)]
    text = re.sub(r"\s+", " ", " ".join(line.strip() for line in lines))
    out = []
    for s in _SENTENCE_END.split(text):
        s = s.strip()
        if 4 <= len(s.split()) <= 18 and _CLEAN.fullmatch(s) and not _REJECT.search(s) and s.count("'") <= 2:
            out.append(s)
    return out


def fortune_sentences(directory: str = FORTUNE_DIR) -> list[str]:
    """Every usable sentence, de-duplicated, in sorted order (so a seed fixes any sample of them)."""
    files = [p for p in sorted(glob.glob(os.path.join(directory, "*")))
             if "." not in os.path.basename(p) and os.path.basename(p) not in SKIP and os.path.isfile(p)]
    if not files:
        raise ProseError(f"no fortune files in {directory}: install the Debian package {DEBIAN_PACKAGE!r}")
    found: set[str] = set()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for entry in f.read().split("\n%\n"):
                found.update(_sentences(entry))
    return sorted(found)


def sample(n: int, seed: int = 0, directory: str = FORTUNE_DIR) -> list[str]:
    """n distinct sentences, in a deterministic order for the seed; a longer n extends a shorter one."""
    pool = fortune_sentences(directory)
    if n > len(pool):
        raise ProseError(f"asked for {n} prose sentences; {directory} has {len(pool)} usable ones")
    return random.Random(seed).sample(pool, len(pool))[:n]
