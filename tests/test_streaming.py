"""Training data streamed through Hugging Face datasets (adapters/data/streaming.py)."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.data.manifest import read_manifest
from adapters.data.streaming import DatasetSpec, StreamedExamples, open_stream
from adapters.runtime.audio import load_audio
from adapters.runtime.errors import ManifestError
from adapters.train.distill import DistillSettings, distill


def _clips(manifest: str) -> list[tuple[bytes, str]]:
    out = []
    for e in read_manifest(manifest):
        with open(e.audio, "rb") as f:
            out.append((f.read(), e.text))
    return out


@pytest.fixture(scope="module")
def shards(speech_corpus, tmp_path_factory):
    """The speech corpus as two parquet files, two WebDataset tar shards and a JSONL file."""
    root = tmp_path_factory.mktemp("shards")
    clips = _clips(speech_corpus)
    halves = (clips[::2], clips[1::2])
    for k, part in enumerate(halves):
        pq.write_table(pa.table({"audio": [{"bytes": b, "path": f"{k}-{i}.wav"} for i, (b, _) in enumerate(part)],
                                 "sentence": [t for _, t in part]}), root / f"train-{k}.parquet")
        with tarfile.open(root / f"shard-{k}.tar", "w") as tar:
            for i, (b, t) in enumerate(part):
                for name, data in ((f"{k}-{i:04d}.wav", b), (f"{k}-{i:04d}.txt", t.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    rel = os.path.relpath(os.path.dirname(speech_corpus), root)
    with open(root / "rows.jsonl", "w") as f:
        for e in read_manifest(speech_corpus):
            f.write(json.dumps({"audio": os.path.join(rel, os.path.relpath(e.audio, os.path.dirname(speech_corpus))),
                                "text": e.text}) + "\n")
    return root


@pytest.mark.parametrize("spec,text", [("parquet:train-*.parquet", "sentence"), ("webdataset:shard-*.tar", None),
                                       ("json:rows.jsonl", None)])
def test_every_clip_streams_decoded_as_from_the_manifest(shards, speech_corpus, spec, text):
    spec = DatasetSpec.parse(spec.replace(":", ":" + str(shards) + "/", 1), text_column=text)
    expected = {e.text: load_audio(e.audio) for e in read_manifest(speech_corpus)}
    got = list(StreamedExamples(open_stream(spec, seed=0), spec, "Transcribe.", 30.0))
    assert sorted(t for _, _, t, _ in got) == sorted(expected)
    for wave, _, t, _ in got:
        np.testing.assert_array_equal(wave, expected[t])


def test_processes_read_disjoint_shares(shards):
    spec = DatasetSpec.parse(f"parquet:{shards}/train-*.parquet", text_column="sentence")
    shares = [{t for _, _, t, _ in StreamedExamples(open_stream(spec, 0, rank, 2), spec, "T.", 30.0)} for rank in (0, 1)]
    assert shares[0] and shares[1] and not shares[0] & shares[1]


def test_bad_specs_are_explained(shards):
    with pytest.raises(ManifestError, match="FORMAT:PATTERN"):
        DatasetSpec.parse("librispeech")
    spec = DatasetSpec.parse(f"parquet:{shards}/train-*.parquet")  # its transcript column is "sentence"
    with pytest.raises(ManifestError, match="no column 'text'.*--text-column"):
        next(iter(StreamedExamples(open_stream(spec, 0), spec, "T.", 30.0)))


def test_a_streamed_dataset_trains(tiny, speech_corpus, shards, tmp_path):
    out = str(tmp_path / "ckpt")
    cfg = distill(DistillSettings(
        teacher=tiny["whisper"], llm=tiny["llm"], manifest=None, dataset=f"webdataset:{shards}/shard-*.tar",
        eval_manifest=speech_corpus, output=out, steps=6, batch_size=4, lr=3e-3, warmup_steps=1, embed_width=64,
        eval_every=6, save_every=6, log_every=1, loader_workers=2, teacher_cache=False, progress=False))
    t = cfg.training
    assert t["steps"] == 6 and t["dataset"].startswith("webdataset:") and t["manifest"] is None
    assert len(t["history"]["train"]) == 6 and all(h["distill"] > 0 for h in t["history"]["train"])
    assert t["history"]["eval"][-1]["step"] == 6 and not os.path.exists(os.path.join(out, "teacher_cache"))
