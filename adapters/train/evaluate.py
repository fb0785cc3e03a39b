"""`aura evaluate`: score a training checkpoint on a labelled manifest, without building a bundle.

Greedy transcripts of the un-merged student (transformers, the checkpoint's own instruction) give
the word error rate; the held-out task loss with each clip's own audio and with another clip's audio
(shuffled across the set) gives the audio dependence (adapters.train.distill.evaluate). Works for AuRA checkpoints
and for the encoder-kept oracle alike, so the two are scored by one procedure.

Which split a figure comes from is the caller's to say: choose recipes and checkpoints on a dev
split (a run's OUTPUT/dev.jsonl), and only report the test splits.
"""

from __future__ import annotations

import random

import torch
from tqdm.auto import tqdm

from adapters.data.manifest import read_manifest
from adapters.runtime.config import AuraConfig
from adapters.runtime.errors import ManifestError
from adapters.runtime.text import wer
from adapters.train.distill import DistillSettings, evaluate, load_examples
from adapters.train.student import Student


def evaluate_checkpoint(checkpoint: str, manifest: str | None = None, limit: int | None = None, batch_size: int = 8,
                        seed: int = 0, progress: bool = True, device: str | None = None) -> dict:
    """Without `manifest`, the dev split the checkpoint was trained against (recorded in aura.json).
    Without `device`, the GPU when there is one."""
    if manifest is None:
        manifest = AuraConfig.load(checkpoint).training.get("eval_manifest")
        if not manifest:
            raise ManifestError(f"{checkpoint}: no dev split recorded in its aura.json; name a manifest")
    entries = read_manifest(manifest)
    if limit is not None and limit < len(entries):  # a seeded sample, not the head (manifests are ordered by voice)
        entries = random.Random(seed).sample(entries, limit)
    student = Student.from_checkpoint(checkpoint)
    student.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    examples = load_examples(entries, student.cfg.transcribe_instruction, DistillSettings.max_audio_seconds, progress)
    transcription = [(ex, e) for ex, e in examples if ex.instruction == student.cfg.transcribe_instruction]
    refs, hyps = [], []
    with torch.no_grad():
        for ex, _ in tqdm(transcription, desc="transcribing", disable=not progress, unit="clip"):
            refs.append(ex.target)
            hyps.append(student.transcribe(ex.wave))
    losses = evaluate(student, None, transcription, None, batch_size, with_task=True)
    return {
        "checkpoint": checkpoint,
        "manifest": manifest,
        "clips": len(transcription),
        "wer": wer(refs, hyps),
        **{k: losses[k] for k in ("task", "task_shuffled", "audio_gap") if k in losses},
        "samples": [{"reference": r, "output": h} for r, h in list(zip(refs, hyps, strict=True))[:8]],
    }
