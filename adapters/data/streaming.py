"""Training data streamed through Hugging Face `datasets` (`aura distill --dataset SPEC`), for corpora
larger than disk or memory. Nothing is loaded up front: rows are read as training goes, shuffled in a
buffer, split between processes, and decoded in DataLoader workers by this project's own audio
decoder (adapters.runtime.audio: soundfile, then PyAV), not by `datasets`' (torchcodec).

    parquet:PATTERN      the Hub's own format (LibriSpeech, Common Voice, ... as parquet): the audio
                         column holds {bytes, path}
    webdataset:PATTERN   tar shards of KEY.flac|wav|mp3|... beside KEY.txt
    json:PATTERN         JSONL rows naming audio files; relative paths are taken from the pattern's folder

PATTERN is a path or glob, local or any fsspec URL. --text-column / --audio-column name the columns
(default: text and audio; for webdataset, txt and the first audio extension present). Optional
`instruction`/`response` columns add an instruction-following example on the same clip, as in a
manifest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from adapters.runtime.audio import decode_audio, load_audio
from adapters.runtime.errors import AudioError, ManifestError

log = logging.getLogger("aura.data")

FORMATS = ("parquet", "webdataset", "json")
AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus", "m4a")


@dataclass
class DatasetSpec:
    format: str
    files: str
    text_column: str | None = None
    audio_column: str | None = None

    @classmethod
    def parse(cls, spec: str, text_column: str | None = None, audio_column: str | None = None) -> DatasetSpec:
        fmt, sep, files = spec.partition(":")
        if not sep or fmt not in FORMATS or not files:
            raise ManifestError(f"--dataset {spec!r}: expected FORMAT:PATTERN with FORMAT one of {', '.join(FORMATS)}")
        return cls(fmt, files, text_column, audio_column)

    def __str__(self) -> str:
        return f"{self.format}:{self.files}"


def open_stream(spec: DatasetSpec, seed: int, rank: int = 0, world: int = 1, buffer_size: int = 1000):
    """The rows of `spec` as a shuffled datasets.IterableDataset, this process's share of it."""
    from datasets import Audio, Features, Value, load_dataset
    from datasets.distributed import split_dataset_by_node

    def load(**kw):
        return load_dataset(spec.format, data_files=spec.files, split="train", streaming=True, **kw)

    try:
        ds = load()
        audio = [name for name, f in (ds.features or {}).items() if isinstance(f, Audio)]
        if audio and spec.format == "webdataset":  # undecoded bytes, or datasets asks for torchcodec
            ds = load(features=Features({k: Value("binary") if k in audio else f for k, f in ds.features.items()}))
        else:
            for name in audio:
                ds = ds.cast_column(name, Audio(decode=False))
    except FileNotFoundError as e:
        raise ManifestError(f"--dataset {spec}: {e}") from None
    if world > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world)
    return ds.shuffle(seed=seed, buffer_size=buffer_size)


def _columns(spec: DatasetSpec, row: dict) -> tuple[str, str]:
    text = spec.text_column or ("txt" if spec.format == "webdataset" else "text")
    audio = spec.audio_column or (next((k for k in AUDIO_EXTENSIONS if k in row), "audio") if spec.format == "webdataset" else "audio")
    missing = [c for c in (audio, text) if c not in row]
    if missing:
        raise ManifestError(f"--dataset {spec}: no column {missing[0]!r} (columns: {', '.join(sorted(row))}); "
                            "name it with --audio-column / --text-column")
    return audio, text


def row_wave(spec: DatasetSpec, value, max_seconds: float, name: str):
    """A row's audio as mono 16 kHz float32: bytes, a {bytes, path} struct, or a file path."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    else:
        data, path = (value, None) if isinstance(value, bytes) else (None, value)
    if data:
        return decode_audio(data, max_seconds=max_seconds, name=path or name)
    if not path:
        raise AudioError(f"{name}: the row has no audio")
    if spec.format == "json" and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(os.path.dirname(spec.files), path)
    return load_audio(path, max_seconds=max_seconds)


class StreamedExamples(torch.utils.data.IterableDataset):
    """(wave, instruction, target, source) per training example, from a stream of rows. Inside DataLoader workers, `datasets` gives each worker
    its own shards, so the decoding runs in parallel. A clip that cannot be decoded, or is too long,
    is skipped with a warning: one bad file in a million should not end a run."""

    def __init__(self, rows, spec: DatasetSpec, instruction: str, max_seconds: float):
        self.rows, self.spec, self.instruction, self.max_seconds = rows, spec, instruction, max_seconds

    def __iter__(self) -> Iterator[tuple]:
        columns = None
        for i, row in enumerate(self.rows):
            columns = columns or _columns(self.spec, row)
            audio, text = columns
            name = row.get("__key__") or f"row {i}"
            try:
                wave = row_wave(self.spec, row[audio], self.max_seconds, str(name))
            except AudioError as e:
                log.warning("skipping a clip of %s: %s", self.spec, e)
                continue
            yield wave, self.instruction, str(row[text]).strip(), str(name)
            if row.get("instruction") and row.get("response"):
                yield wave, row["instruction"], row["response"], str(name)


def streamed_batches(spec: DatasetSpec, instruction: str, max_seconds: float, batch_size: int, seed: int,
                     rank: int = 0, world: int = 1, workers: int = 2) -> Iterator[list]:
    """Batches of (wave, instruction, target, source) for ever: each pass over the stream is an
    epoch, reshuffled."""
    rows = open_stream(spec, seed, rank, world)
    examples = StreamedExamples(rows, spec, instruction, max_seconds)
    loader = torch.utils.data.DataLoader(examples, batch_size=batch_size, collate_fn=list, num_workers=workers,
                                         persistent_workers=False)
    epoch = 0
    while True:
        rows.set_epoch(epoch)
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise ManifestError(f"--dataset {spec}: no usable rows")
        epoch += 1
