"""The adapter-side commands of `aura`: distill, evaluate, export, make-tiny, synth.

`service.cli` builds the top-level `aura` parser and adds these; this module never imports the
service (the dependency goes service → adapters only). It imports training, data and weights code
only inside the commands, so `aura serve` loads none of it (tests/test_layout.py).
"""

from __future__ import annotations

import argparse
import sys

from adapters.runtime.config import LoraSettings, LossSettings, parse_layer_map
from adapters.runtime.errors import AudioError, BundleError, ManifestError


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    return [int(t) for t in _csv(text)]


def add_distill(sub) -> None:
    p = sub.add_parser(
        "distill",
        help="train an AuRA adapter (teacher + LLM + manifest -> checkpoint)",
        description="Distil a Whisper encoder (teacher) into a causal LM (student) through a LoRA and an audio "
        "embedding layer. Writes a resumable checkpoint: lora/, audio_embed.safetensors, aura.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = LoraSettings()
    losses = LossSettings()
    p.add_argument("--teacher", required=True, help="Hugging Face Whisper checkpoint directory (the frozen teacher)")
    p.add_argument("--llm", required=True, help="Hugging Face causal LM directory (the student's base)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--manifest", help="training manifest (JSONL: audio, text[, instruction, response]), loaded into memory")
    data.add_argument("--dataset", metavar="FORMAT:PATTERN", help="stream the training data through Hugging Face datasets: "
                      "parquet:PATTERN (e.g. LibriSpeech from the Hub), webdataset:PATTERN (tar shards), json:PATTERN; "
                      "needs --eval-manifest (see README)")
    p.add_argument("--text-column", help="--dataset's transcript column (default: text; txt for webdataset)")
    p.add_argument("--audio-column", help="--dataset's audio column (default: audio; the audio extension for webdataset)")
    p.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers decoding the audio (0: in the main process)")
    p.add_argument("--output", required=True, help="checkpoint directory to write (and resume from)")
    p.add_argument("--eval-manifest", help="dev manifest that picks the best checkpoint; default: hold out --eval-fraction of "
                   "--manifest's sentences (written to OUTPUT/dev.jsonl). Never a test split")
    p.add_argument("--eval-fraction", type=float, default=0.03, help="fraction of distinct sentences held out when no --eval-manifest")
    p.add_argument("--train-sentences", type=int, help="train on the clips of this many distinct sentences (seeded), "
                   "after the dev split: the points of a data-scale curve")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget for this run, loading and teacher states included: "
                   "the cosine schedule follows the clock (or the steps, whichever is further) and the run "
                   "evaluates, saves and stops when it is spent")
    p.add_argument("--batch-size", type=int, default=8, help="examples per micro-batch (per process)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the audio layer and projections")
    p.add_argument("--lora-lr", type=float, help="learning rate of the LoRA (default: --lr / 5)")
    p.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up steps, then cosine decay")
    p.add_argument("--stride", type=int, default=4, help="mel frames per audio token (4 = 25 tokens/s)")
    p.add_argument("--embed-width", type=int, default=512, help="channels of the audio embedding layer")
    p.add_argument("--context-layers", type=int, default=0, help="bidirectional transformer blocks after the audio layer's "
                   "convolutions (they run in the gateway on the whole clip; 0: none)")
    p.add_argument("--no-boundaries", action="store_true", help="no learned audio start/end embeddings")
    p.add_argument("--no-teacher-init", action="store_true", help="random first convolution instead of the teacher's")
    p.add_argument("--oracle", action="store_true", help="diagnostic: keep the teacher's encoder behind a projector instead of the "
                   "audio layer (SLAM-ASR style), task loss only; the ceiling this data allows. Not exportable")
    p.add_argument("--lora-rank", type=int, default=d.rank, help="LoRA rank")
    p.add_argument("--lora-alpha", type=int, default=d.alpha, help="LoRA alpha")
    p.add_argument("--lora-dropout", type=float, default=d.dropout, help="LoRA dropout")
    p.add_argument("--lora-targets", type=_csv, default=d.target_modules, help="comma-separated module names to adapt")
    p.add_argument("--lora-layers", type=_ints, default=None, help="comma-separated layer indices to adapt (default: all)")
    p.add_argument("--layer-map", type=parse_layer_map, default=None,
                   help="STUDENT:TEACHER hidden-state pairs, e.g. 1:2,2:4 (default: early student layers mapped "
                        "monotonically onto the teacher's depth)")
    p.add_argument("--cosine-weight", type=float, default=losses.cosine_weight, help="weight of the cosine distillation loss")
    p.add_argument("--mse-weight", type=float, default=losses.mse_weight, help="weight of the MSE loss on normalised states")
    p.add_argument("--task-weight", type=float, default=losses.task_weight, help="weight of the next-token loss on the target text (0: off)")
    p.add_argument("--standardize-teacher", action="store_true", help="distil towards teacher states standardised per dimension, "
                   "projections without bias, so that predicting the mean teacher state scores nothing")
    p.add_argument("--instruction", default="Transcribe the audio.", help="instruction used for transcription examples")
    p.add_argument("--distill-only-steps", type=int, default=0, help="a first stage of this many steps with the distillation "
                   "loss alone, running only the LLM layers up to one past the deepest mapped one; then the joint stage")
    p.add_argument("--prompt-variety", action="store_true", help="train on every chat layout serving receives (audio first, "
                   "text first, audio alone, with a system prompt), each example in a random one; dev stays audio first")
    p.add_argument("--max-audio-seconds", type=float, default=30.0, help="longest clip accepted (Whisper's limit is 30 s)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out evaluations")
    p.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=10, help="steps between recorded training losses")
    p.add_argument("--cache-dir", help="teacher-state cache (default: OUTPUT/teacher_cache)")
    p.add_argument("--base-dtype", choices=["float32", "bfloat16"], default="float32",
                   help="the frozen base LLM's weights (bfloat16 for large students on GPU; the LoRA and audio layer stay fp32)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute the LLM's activations during backward: less memory, about a third more compute")
    p.add_argument("--log-with", choices=["tensorboard", "none"], default="tensorboard",
                   help="tracker for losses, learning rates, examples/s and dev metrics, under OUTPUT/logs "
                        "(`tensorboard --logdir OUTPUT/logs`); aura.json keeps the history either way")
    p.add_argument("--no-teacher-cache", dest="teacher_cache", action="store_false",
                   help="run the teacher on each training batch instead of caching every clip's states up front "
                        "(for corpora whose states do not fit on disk or in memory; costs a teacher pass per step)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_distill)


def run_distill(a) -> None:
    from adapters.train.distill import DistillSettings, distill

    s = DistillSettings(
        teacher=a.teacher, llm=a.llm, manifest=a.manifest, output=a.output, eval_manifest=a.eval_manifest,
        dataset=a.dataset, text_column=a.text_column, audio_column=a.audio_column, loader_workers=a.loader_workers,
        eval_fraction=a.eval_fraction, train_sentences=a.train_sentences, steps=a.steps, max_minutes=a.max_minutes, batch_size=a.batch_size, grad_accum=a.grad_accum, lr=a.lr,
        lora_lr=a.lora_lr, warmup_steps=a.warmup_steps, stride=a.stride, embed_width=a.embed_width, context_layers=a.context_layers,
        boundaries=not a.no_boundaries, teacher_init=not a.no_teacher_init, oracle=a.oracle, prompt_variety=a.prompt_variety, distill_only_steps=a.distill_only_steps,
        lora=LoraSettings(rank=a.lora_rank, alpha=a.lora_alpha, dropout=a.lora_dropout, target_modules=a.lora_targets, layers=a.lora_layers),
        losses=LossSettings(cosine_weight=a.cosine_weight, mse_weight=a.mse_weight, task_weight=a.task_weight,
                            standardize=a.standardize_teacher),
        layer_map=a.layer_map, transcribe_instruction=a.instruction, max_audio_seconds=a.max_audio_seconds,
        seed=a.seed, eval_every=a.eval_every, save_every=a.save_every, log_every=a.log_every, cache_dir=a.cache_dir,
        teacher_cache=a.teacher_cache, base_dtype=a.base_dtype, gradient_checkpointing=a.gradient_checkpointing, log_with=None if a.log_with == "none" else a.log_with,
        resume=a.resume, progress=not a.no_progress,
    )
    cfg = distill(s)
    print(f"checkpoint written to {a.output} (steps={cfg.training.get('steps')})")


def add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="merge a checkpoint's LoRA and write a servable bundle",
        description="Merge the LoRA of a distillation checkpoint into its base LLM and write a bundle: "
        "aura.json, audio_embed.safetensors, llm/ (what vLLM loads).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint directory written by `aura distill`")
    p.add_argument("output", help="bundle directory to write")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="dtype of the merged weights (auto: the base checkpoint's)")
    p.set_defaults(func=run_export)


def run_export(a) -> None:
    from adapters.train.export import export_bundle

    print(f"bundle written to {export_bundle(a.checkpoint, a.output, a.dtype)}")


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a checkpoint on a labelled manifest: WER and audio dependence",
        description="Greedy transcripts of a training checkpoint (AuRA or --oracle) on a manifest: word error rate, held-out "
        "task loss with each clip's own audio and with another clip's audio (shuffled across the set), and their gap. Prints JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint directory written by `aura distill` (or its best/)")
    p.add_argument("manifest", nargs="?", help="labelled manifest (JSONL); default: the dev split the checkpoint was trained "
                   "against. Choose on a dev split; a test split is only to report")
    p.add_argument("--limit", type=int, help="score a seeded sample of this many clips")
    p.add_argument("--batch-size", type=int, default=8, help="examples per loss batch")
    p.add_argument("--output", help="also write the JSON here")
    p.set_defaults(func=run_evaluate)


def run_evaluate(a) -> None:
    import json

    from adapters.train.evaluate import evaluate_checkpoint

    result = json.dumps(evaluate_checkpoint(a.checkpoint, a.manifest, a.limit, a.batch_size), indent=2)
    if a.output:
        with open(a.output, "w") as f:
            f.write(result + "\n")
    print(result)


def add_make_tiny(sub) -> None:
    p = sub.add_parser(
        "make-tiny",
        help="write tiny random-weight models and a bundle (tests, development; outputs are meaningless)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("output", nargs="?", default="artifacts/tiny", help="directory to write")
    p.add_argument("--arch", default="qwen2", choices=["qwen2", "gemma3"], help="tiny LLM architecture")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=run_make_tiny)


def run_make_tiny(a) -> None:
    from adapters.weights.tiny import make_tiny

    for name, path in make_tiny(a.output, a.arch, a.seed).items():
        print(f"{name:12s} {path}")


def add_synth(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="speak a text file with espeak-ng into wavs + a manifest",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("text_file", help="UTF-8 text, one utterance per line")
    p.add_argument("output", help="directory for clips/ and manifest.jsonl")
    p.add_argument("--voices", type=_csv, help="comma-separated espeak-ng voices (default: six English variants)")
    p.add_argument("--rates", type=_ints, help="comma-separated words-per-minute rates (default: 140,170,200)")
    p.add_argument("--pitches", type=_ints, help="comma-separated pitches 0-99 (default: 35,50,65)")
    p.add_argument("--per-line", type=int, default=1, help="clips per line, each in the next voice/rate/pitch")
    p.set_defaults(func=run_synth)


def run_synth(a) -> None:
    from adapters.data.synth import synth_corpus

    print(f"manifest written to {synth_corpus(a.text_file, a.output, a.voices, a.rates, a.pitches, a.per_line)}")


def add_commands(sub) -> None:
    for add in (add_distill, add_evaluate, add_export, add_make_tiny, add_synth):
        add(sub)


USER_ERRORS = (AudioError, ManifestError, BundleError)


def default_bundle() -> str:
    """The default model's bundle for `aura serve` without --bundle: the committed pretrained adapter,
    merged on first use. (The merge is training code; the service itself only ever loads a bundle.)"""
    from adapters.weights.pretrained import ensure_bundle

    return ensure_bundle()


def build_parser(extra_commands=()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aura", description="Train, export and serve AuRA speech-language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in extra_commands:
        add(sub)
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None, extra_commands=()) -> None:
    """The `aura` command. `python -m adapters.cli` (e.g. under `accelerate launch`) has the adapter
    commands only; `service.cli` passes `serve` in as an extra command."""
    from adapters.data.synth import SynthError

    args = build_parser(extra_commands).parse_args(argv)
    try:
        args.func(args)
    except (*USER_ERRORS, SynthError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
