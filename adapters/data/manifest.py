"""Training manifests: JSONL, one clip per line.

    {"audio": "clips/0001.wav", "text": "turn on the lights"}
    {"audio": "clips/0002.wav", "text": "what time is it", "instruction": "Answer briefly.", "response": "..."}

`audio` is relative to the manifest's folder. `text` is the transcript; `instruction`/`response`
(optional, together) give an instruction-following example on the same clip.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

from adapters.runtime.errors import ManifestError


@dataclass
class ManifestEntry:
    audio: str  # absolute path
    text: str
    instruction: str | None = None
    response: str | None = None
    line: int = 0
    manifest: str = ""

    @property
    def where(self) -> str:
        return f"{self.manifest}:{self.line}"


def read_manifest(path: str) -> list[ManifestEntry]:
    """Parse and validate every line; errors name the manifest file and line number."""
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: manifest not found")
    base = os.path.dirname(os.path.abspath(path))
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{where}: each line must be a JSON object")
            audio, text = row.get("audio"), row.get("text")
            if not isinstance(audio, str) or not audio:
                raise ManifestError(f"{where}: missing 'audio' (a path)")
            if not isinstance(text, str):
                raise ManifestError(f"{where}: missing 'text' (the transcript)")
            instruction, response = row.get("instruction"), row.get("response")
            if (instruction is None) != (response is None):
                raise ManifestError(f"{where}: 'instruction' and 'response' go together")
            full = audio if os.path.isabs(audio) else os.path.join(base, audio)
            if not os.path.isfile(full):
                raise ManifestError(f"{where}: audio file {full} does not exist")
            entries.append(ManifestEntry(full, text, instruction, response, n, path))
    if not entries:
        raise ManifestError(f"{path}: the manifest has no entries")
    return entries


def write_manifest(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _by_sentence(entries: list[ManifestEntry], how_many, seed: int) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(the rest, the clips of how_many(distinct sentences) sentences drawn with `seed`), every clip
    of a sentence on the same side."""
    from adapters.runtime.text import normalize

    keys = [normalize(e.text) for e in entries]
    sentences = sorted(set(keys))
    chosen = set(random.Random(seed).sample(sentences, min(how_many(len(sentences)), len(sentences))))
    rest = [e for e, key in zip(entries, keys, strict=True) if key not in chosen]
    return rest, [e for e, key in zip(entries, keys, strict=True) if key in chosen]


def split_by_sentence(entries: list[ManifestEntry], fraction: float, seed: int = 0) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(train, dev): `fraction` of the distinct sentences held out with every clip that speaks them,
    so no sentence is on both sides (a split by clip puts a sentence spoken twice on both)."""
    return _by_sentence(entries, lambda n: 0 if fraction <= 0 else min(n - 1, max(1, round(n * fraction))), seed)


def sample_sentences(entries: list[ManifestEntry], n: int, seed: int = 0) -> list[ManifestEntry]:
    """The clips of `n` distinct sentences (a seeded sample, each with all its clips): the x axis of
    a data-scale curve is distinct sentences, not clips."""
    return _by_sentence(entries, lambda _: n, seed)[1]


def entry_rows(entries: list[ManifestEntry]) -> list[dict]:
    """Manifest rows (absolute audio paths) for `entries`, e.g. to record the dev split a run used."""
    rows = []
    for e in entries:
        row = {"audio": e.audio, "text": e.text}
        if e.instruction is not None:
            row |= {"instruction": e.instruction, "response": e.response}
        rows.append(row)
    return rows
