"""Text normalisation for comparing transcripts (WER, agreement, conversion checks)."""

from __future__ import annotations

import re
import string

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_DIGITS = re.compile(r"\d+")

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int, year: bool = False) -> str:
    """0 ≤ n < 1,000,000 as English words ("one hundred twenty three"); year=True reads 1987 as
    "nineteen eighty seven", as people say years."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number out of range: {n}")
    if year and 1100 <= n <= 2099 and n % 100 != 0 and not 2000 <= n < 2010:
        return f"{number_words(n // 100)} {number_words(n % 100)}"
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return f"{_ONES[n // 100]} hundred" + (f" {number_words(rest)}" if rest else "")
    rest = n % 1000
    return f"{number_words(n // 1000)} thousand" + (f" {number_words(rest)}" if rest else "")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, digits spelled out, whitespace collapsed.

    Digits become words so that an ASR that writes "7" and a model that says "seven" agree.
    """
    text = _PUNCT.sub(" ", text.lower())
    text = _DIGITS.sub(lambda m: f" {number_words(int(m.group()))} " if len(m.group()) < 7 else m.group(), text)
    return " ".join(text.split())


def wer(refs: list[str], hyps: list[str]) -> float:
    """Word error rate of hyps against refs after normalize(); references that normalise to nothing
    are skipped, and an empty hypothesis counts as all deletions."""
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True) if normalize(r)]
    return jiwer.wer([r for r, _ in pairs], [h or "<empty>" for _, h in pairs])
