"""The AuRA distillation trainer. Read it top to bottom: settings, data, the step, the loop.

Built on Hugging Face accelerate, so `accelerate launch -m adapters.cli distill ...` runs the same
loop on several GPUs or nodes; on one CPU it is a plain loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from adapters.data.manifest import (
    ManifestEntry,
    entry_rows,
    read_manifest,
    sample_sentences,
    split_by_sentence,
    write_manifest,
)
from adapters.runtime.audio import load_audio
from adapters.runtime.config import AuraConfig, LoraSettings, LossSettings, default_layer_map
from adapters.runtime.embedding import AudioEmbedConfig
from adapters.runtime.errors import AudioError, ManifestError
from adapters.runtime.features import num_frames
from adapters.runtime.text import wer
from adapters.train.losses import (
    LayerProjections,
    TeacherStandardizer,
    distill_loss,
    mean_baseline,
    task_loss,
)
from adapters.train.oracle import KIND as ORACLE
from adapters.train.student import PROMPT_LAYOUTS, Example, Student
from adapters.train.teacher import Teacher, TeacherCache

STATE_FILE = "training_state.pt"
DEV_MANIFEST = "dev.jsonl"  # the dev split a run held out of its manifest (no --eval-manifest)
# The checkpoint with the lowest held-out loss so far. A small corpus is memorised long before a
# fixed step count ends (on the H200 the held-out loss bottomed at step 300 of 1,097 and then rose
# while the training loss kept falling), so this, not the last step, is the one to publish.
BEST_DIR = "best"


@dataclass
class DistillSettings:
    teacher: str
    llm: str
    manifest: str | None  # a JSONL manifest, loaded into memory; or:
    output: str
    dataset: str | None = None  # FORMAT:PATTERN streamed through `datasets` (adapters.data.streaming); needs eval_manifest
    text_column: str | None = None
    audio_column: str | None = None
    loader_workers: int = 2  # DataLoader workers decoding the audio (0: in the main process)
    eval_manifest: str | None = None
    eval_fraction: float = 0.03  # of the distinct sentences, held out as the dev split when no eval_manifest
    train_sentences: int | None = None  # train on the clips of this many distinct sentences (a data-scale curve)
    steps: int = 1000
    max_minutes: float | None = None  # wall-clock budget of the whole run, data preparation included: the schedule
    # then follows the clock and the run saves and ends within it
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    lora_lr: float | None = None  # defaults to lr / 5: the LoRA moves a pretrained model, keep it gentle
    warmup_steps: int = 50
    weight_decay: float = 0.0
    stride: int = 4
    embed_width: int = 512
    boundaries: bool = True
    context_layers: int = 0  # bidirectional transformer blocks in the audio layer (AudioEmbedConfig)
    teacher_init: bool = True  # start the audio layer's first convolution from the teacher's
    oracle: bool = False  # the encoder-kept diagnostic (adapters.train.oracle): task loss only, the teacher stays
    # A first stage of distillation alone: the states of the mapped layers only (the first
    # deepest + 1 decoder layers, no LM head, about a third of the compute for Gemma 3 270M), so the
    # early layers learn to encode audio before any task loss can teach the rest to recite the corpus.
    distill_only_steps: int = 0
    prompt_variety: bool = False  # train on every chat layout serving receives (PROMPT_LAYOUTS), not only audio-first
    lora: LoraSettings = field(default_factory=LoraSettings)
    losses: LossSettings = field(default_factory=LossSettings)
    layer_map: list[tuple[int, int]] | None = None
    transcribe_instruction: str = "Transcribe the audio."
    chat_template: str | None = None
    max_audio_seconds: float = 30.0
    seed: int = 0
    eval_every: int = 100
    eval_samples: int = 3  # held-out clips decoded greedily at each evaluation
    save_every: int = 200
    log_every: int = 10
    cache_dir: str | None = None
    base_dtype: str = "float32"  # the frozen base LLM's weights: bfloat16 for large students on GPU
    gradient_checkpointing: bool = False  # recompute the LLM's activations in backward: memory for compute
    log_with: str | None = "tensorboard"  # an accelerate tracker, writing under OUTPUT/logs; None: aura.json only
    # False: the teacher runs on each training batch (no grad, on the training device) instead of once
    # per clip up front into a disk cache held in memory, which at LibriSpeech scale would not fit.
    teacher_cache: bool = True
    resume: bool = False
    progress: bool = True


def _build_config(s: DistillSettings, teacher: Teacher, student_layers: int) -> AuraConfig:
    kind = ORACLE if s.oracle else "conv"
    return AuraConfig(
        base_llm=os.path.abspath(s.llm),
        teacher=os.path.abspath(s.teacher),
        features=teacher.features,
        audio_embed=AudioEmbedConfig(n_mels=teacher.features.n_mels, stride=s.stride, width=s.embed_width, boundaries=s.boundaries,
                                    context_layers=s.context_layers, kind=kind),
        layer_map=s.layer_map or default_layer_map(student_layers, teacher.num_layers),
        lora=s.lora,
        # The oracle keeps the encoder, so there is nothing to distil: it learns from the task loss alone.
        losses=LossSettings(cosine_weight=0.0, mse_weight=0.0, task_weight=s.losses.task_weight) if s.oracle else s.losses,
        chat_template=s.chat_template,
        transcribe_instruction=s.transcribe_instruction,
        name=os.path.basename(os.path.normpath(s.output)),
    )


def init_from_teacher(audio_embed, teacher: Teacher) -> bool:
    """Copy Whisper's first convolution (mel → d_model, kernel 3) into the audio layer's when the
    shapes agree: its filters already pick out speech, so the LLM starts from useful features
    instead of random projections. Returns whether it was copied."""
    src, dst = teacher.encoder.conv1, audio_embed.conv1
    if src.weight.shape != dst.weight.shape:
        return False
    with torch.no_grad():
        dst.weight.copy_(src.weight.float())
        dst.bias.copy_(src.bias.float())
    return True


class _ManifestAudio(torch.utils.data.Dataset):
    """A manifest's clips, decoded by DataLoader workers. A clip that cannot be read comes back as
    its error, to be raised in the main process with the manifest line it came from."""

    def __init__(self, entries: list[ManifestEntry], max_seconds: float):
        self.entries, self.max_seconds = entries, max_seconds

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        try:
            return load_audio(self.entries[i].audio, max_seconds=self.max_seconds)
        except AudioError as err:
            return err


def load_examples(entries: list[ManifestEntry], instruction: str, max_seconds: float, progress: bool,
                  workers: int = 2) -> list[tuple[Example, ManifestEntry]]:
    """The manifest's training examples, its clips decoded in `workers` parallel processes."""
    loader = torch.utils.data.DataLoader(_ManifestAudio(entries, max_seconds), batch_size=None, num_workers=workers)
    out = []
    for e, wave in zip(entries, tqdm(loader, desc="loading audio", disable=not progress, unit="clip"), strict=True):
        if isinstance(wave, AudioError):
            raise ManifestError(f"{e.where}: {wave}") from None
        out.append((Example(wave, instruction, e.text, e.audio), e))
        if e.instruction is not None:
            out.append((Example(wave, e.instruction, e.response, e.audio), e))
    return out


def _teacher_states(student: Student, teacher_cache: TeacherCache, examples: list[Example], progress: bool, desc: str):
    layers = sorted({t for _, t in student.cfg.layer_map})
    waves = [ex.wave for ex in examples]
    tokens = [student.audio_embed.num_tokens(num_frames(w.shape[0], student.cfg.features)) for w in waves]
    return teacher_cache.get_many(waves, layers, tokens, progress=progress, desc=desc)


def _autocast(device: torch.device):
    """bf16 matmuls on a GPU, the weights and optimizer staying fp32. (Evaluation calls the unwrapped
    student, which accelerate's own mixed precision, a wrapper around forward(), would not reach.)"""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _step_loss(student: Student, projections: LayerProjections, examples, teacher_states, with_task: bool):
    """The training loss of a batch and its parts; without teacher_states, the task loss alone."""
    batch = student.batch(examples)
    with _autocast(student.device):
        out = student.llm(
            inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"], output_hidden_states=True, logits_to_keep=1
        )
    loss, parts = torch.zeros((), device=student.device), {}
    if teacher_states is not None:
        loss, parts = distill_loss(out.hidden_states, batch["audio_spans"], teacher_states, projections, student.cfg.losses)
        parts["distill"] = loss.item()
    if with_task:
        t = task_loss(student.output_logits, out.hidden_states[-1], batch["labels"])
        loss = loss + student.cfg.losses.task_weight * t
        parts["task"] = t.item()
    parts["loss"] = loss.item()
    return loss, parts


class Objective(torch.nn.Module):
    """The student and the layer projections as one module whose forward() is the training loss, so
    that accelerate's wrapper (DistributedDataParallel on several processes) sees the forward pass and
    averages the gradients across processes."""

    def __init__(self, student: Student, projections: LayerProjections):
        super().__init__()
        self.student = student
        self.projections = projections

    def forward(self, examples, teacher_states, with_task: bool):
        return _step_loss(self.student, self.projections, examples, teacher_states, with_task)


def _batches_in_memory(train: list[Example], train_states, batch_size: int, rank: int, world: int, seed: int, skip: int):
    """Batches (examples, teacher states or None) for ever: each process its own shard of every
    shuffled epoch. Epoch e's order depends on (seed, e) alone, so a resumed run that skips the
    batches it has already trained on goes on with the batches an uninterrupted run would see."""
    order: list[int] = []
    epoch = drawn = 0
    while True:
        if len(order) < batch_size:  # the rest of this epoch opens the next one
            perm = list(range(len(train)))
            random.Random(seed * 1_000_003 + epoch).shuffle(perm)
            order += perm[rank::world]
            epoch += 1
        idx, order = order[:batch_size], order[batch_size:]
        drawn += 1
        if drawn > skip:
            yield [train[i] for i in idx], [train_states[i] for i in idx] if train_states is not None else None


def _batches_streamed(s: DistillSettings, instruction: str, max_seconds: float, rank: int, world: int):
    """Batches (examples, None) from a dataset streamed through `datasets`; the teacher runs per batch."""
    from adapters.data.streaming import DatasetSpec, streamed_batches

    spec = DatasetSpec.parse(s.dataset, s.text_column, s.audio_column)
    seed = s.seed + random.randrange(1 << 30)  # a resumed run draws a new order, not the first epoch again
    for rows in streamed_batches(spec, instruction, max_seconds, s.batch_size, seed, rank, world, s.loader_workers):
        yield [Example(*row) for row in rows], None


def in_random_layout(ex: Example, transcribe_instruction: str) -> Example:
    """`ex` in a random chat layout; the audio alone only stands for a transcription request."""
    layouts = [k for k in PROMPT_LAYOUTS if k != "audio-only" or ex.instruction == transcribe_instruction]
    return dataclasses.replace(ex, layout=random.choice(layouts))


def with_shuffled_audio(examples: list[Example]) -> list[Example]:
    """Each example's text with the audio of the next example that speaks another clip (a clip's
    transcription and its answer example share their audio): the audio-dependence control."""
    out = []
    for i, ex in enumerate(examples):
        others = (examples[(i + k) % len(examples)] for k in range(1, len(examples)))
        other = next((o for o in others if o.wave is not ex.wave), None)
        out.append(dataclasses.replace(ex, wave=other.wave) if other is not None else None)
    return out


@torch.no_grad()
def evaluate(student, projections, examples, teacher_states, batch_size: int, with_task: bool) -> dict[str, float]:
    """Held-out losses, averaged over batches. With the task loss, also `task_shuffled`: the same
    targets given another clip's audio (shuffled across the whole set, batched as the originals),
    and `audio_gap` = task_shuffled - task. A language model of the corpus that ignores the audio
    has a gap near zero however low its task loss."""
    student.eval()
    originals = [e for e, _ in examples]
    shuffled = with_shuffled_audio(originals) if with_task else [None] * len(originals)
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}

    def add(parts: dict[str, float]) -> None:
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1

    for i in range(0, len(originals), batch_size):
        states = teacher_states[i : i + batch_size] if teacher_states is not None else None
        add(_step_loss(student, projections, originals[i : i + batch_size], states, with_task)[1])
        if all(ex is not None for ex in shuffled[i : i + batch_size]):  # None: one clip only, nothing to swap in
            add({"task_shuffled": _step_loss(student, projections, shuffled[i : i + batch_size], None, True)[1]["task"]})
    student.train()
    out = {k: v / counts[k] for k, v in totals.items()}
    if "task_shuffled" in out and counts["task_shuffled"] == counts["task"]:
        out["audio_gap"] = out["task_shuffled"] - out["task"]
    return out


def _samples(student: Student, examples) -> list[dict]:
    """Greedy outputs on a few held-out clips: the loss says how far, these say what it hears."""
    student.eval()
    out = [{"reference": ex.target, "output": student.transcribe(ex.wave, ex.instruction)} for ex, _ in examples]
    student.train()
    return out


def _flat(settings: dict, prefix: str = "") -> dict:
    """Settings as the flat scalars a tracker's hyperparameters take."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v if isinstance(v, int | float | str | bool) else json.dumps(v, default=str)
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} threads)"


def distill(s: DistillSettings) -> AuraConfig:
    """Train an AuRA adapter; the checkpoint (and its aura.json with metrics) lands in s.output."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    distills = s.losses.distills and not s.oracle
    if s.distill_only_steps and not distills:
        raise ValueError("--distill-only-steps needs a distillation loss (not --oracle, nor zero cosine and MSE weights)")
    if (s.manifest is None) == (s.dataset is None):
        raise ValueError("give either a manifest or a dataset to train on")
    if s.dataset and not s.eval_manifest:
        raise ValueError("a streamed --dataset needs --eval-manifest: a dev split by sentence needs the whole corpus at hand")
    if s.dataset and (s.train_sentences or s.losses.standardize):
        raise ValueError("--train-sentences and --standardize-teacher need the whole corpus at hand: use a --manifest")
    if s.losses.standardize and not s.teacher_cache:
        raise ValueError("--standardize-teacher needs the training set's teacher states up front: drop --no-teacher-cache")
    if not (s.losses.task_weight > 0 or distills):
        raise ValueError("nothing to train: the task loss is off and there is no distillation loss (--oracle needs --task-weight > 0)")
    started = time.time()
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    # Unused parameters are normal here: the projections in an oracle run, the upper layers' LoRA in
    # the distillation-only stage.
    accelerator = Accelerator(gradient_accumulation_steps=s.grad_accum, log_with=s.log_with,
                              project_dir=os.path.join(s.output, "logs"),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
        # Evaluation, greedy samples and checkpoints call the unwrapped student, which needs whole
        # parameters on every process; sharded ones would fail there, or save one shard as the model.
        raise ValueError(f"{accelerator.distributed_type.name} is not supported yet: launch with plain data parallelism "
                         "(--multi_gpu); only the LoRA and the audio layer train, so the base model need not be sharded")
    show = s.progress and accelerator.is_main_process

    train_entries = read_manifest(s.manifest) if s.manifest else []  # a streamed dataset is read as training goes
    eval_manifest = s.eval_manifest and os.path.abspath(s.eval_manifest)
    if eval_manifest:
        eval_entries = read_manifest(eval_manifest)
    else:  # the dev split: whole sentences held out, written so that `aura evaluate` scores the same clips
        train_entries, eval_entries = split_by_sentence(train_entries, s.eval_fraction, s.seed)
        eval_manifest = os.path.abspath(os.path.join(s.output, DEV_MANIFEST)) if eval_entries else None
        if accelerator.is_main_process and eval_manifest:
            os.makedirs(s.output, exist_ok=True)
            write_manifest(eval_manifest, entry_rows(eval_entries))
    if s.train_sentences:  # after the dev split, so every point of a curve is scored on the same dev clips
        train_entries = sample_sentences(train_entries, s.train_sentences, s.seed)

    teacher = Teacher(s.teacher, device=accelerator.device)
    state_path = os.path.join(s.output, STATE_FILE)
    resuming = s.resume and os.path.exists(state_path)
    if resuming:
        student = Student.from_checkpoint(s.output, trainable=True, teacher=teacher, base_dtype=getattr(torch, s.base_dtype))
    else:
        from transformers import AutoConfig

        llm_cfg = AutoConfig.from_pretrained(s.llm).get_text_config()
        student = Student.create(_build_config(s, teacher, llm_cfg.num_hidden_layers), teacher=teacher,
                                 base_dtype=getattr(torch, s.base_dtype))
        if s.teacher_init and not s.oracle:
            init_from_teacher(student.audio_embed, teacher)
    cfg = student.cfg
    recorded = cfg.training.get("eval_manifest", eval_manifest) if resuming else eval_manifest
    if recorded != eval_manifest:
        raise ValueError(f"{s.output} was trained against the dev split {recorded}, not {eval_manifest}: resuming would compare "
                         "losses on different clips (and may score sentences it trained on); use a new --output")
    for layer_s, layer_t in cfg.layer_map:
        if not (1 <= layer_t <= teacher.num_layers):
            raise ValueError(f"layer map {layer_s}:{layer_t}: the teacher has hidden states 1..{teacher.num_layers}")
    if s.gradient_checkpointing:
        student.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    projections = LayerProjections(cfg.layer_map, cfg.audio_embed.hidden_size, teacher.hidden_size, bias=not cfg.losses.standardize)
    student.to(accelerator.device)

    max_seconds = min(s.max_audio_seconds, teacher.max_seconds)
    train = [ex for ex, _ in load_examples(train_entries, cfg.transcribe_instruction, max_seconds, show, s.loader_workers)]
    evals = load_examples(eval_entries, cfg.transcribe_instruction, max_seconds, show, s.loader_workers) if eval_entries else []
    train_states = eval_states = per_batch = None
    mean_baseline_loss: dict[str, float] = {}
    if cfg.losses.distills:
        cache = TeacherCache(teacher, (s.cache_dir or os.path.join(s.output, "teacher_cache")) if s.teacher_cache else None)
        if s.teacher_cache and not s.dataset:
            train_states = _teacher_states(student, cache, train, show, "teacher states (train)")
        else:  # per batch: on the fly, or (a streamed dataset with the cache) from the cache as clips come
            per_batch = cache
        eval_states = _teacher_states(student, cache, [ex for ex, _ in evals], show, "teacher states (eval)")  # computed once
        if cfg.losses.standardize:
            standardize = TeacherStandardizer(train_states)
            train_states, eval_states = standardize(train_states), standardize(eval_states)
        if eval_states:
            mean_baseline_loss = mean_baseline(eval_states, cfg.layer_map, cfg.losses)
    del teacher  # cached from here on, or held by per_batch (an oracle's audio layer holds its own reference)
    with_task = cfg.losses.task_weight > 0
    deepest = max(layer for layer, _ in cfg.layer_map)

    lora_params = [p for n, p in student.llm.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": lora_params, "lr": s.lora_lr or s.lr / 5},
            {"params": list(student.audio_embed.parameters()) + list(projections.parameters()), "lr": s.lr},
        ],
        weight_decay=s.weight_decay,
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]  # before a resumed state brings its scheduled rates
    history: dict = {"train": [], "eval": []}
    step = 0
    if resuming:
        state = torch.load(state_path, map_location="cpu", weights_only=True)  # tensors and plain data only
        projections.load_state_dict(state["projections"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])

    def progress(k: int) -> float:
        """How far through training, 0..1: by steps, or by the clock when there is a time budget."""
        t = (k - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
        if s.max_minutes:
            t = max(t, (time.time() - started) / (60 * s.max_minutes))
        return min(1.0, t)

    def lr_scale(k: int) -> float:  # linear warm-up, cosine decay to 10%
        if k < s.warmup_steps:
            return (k + 1) / s.warmup_steps
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress(k)))

    objective, optimizer = accelerator.prepare(Objective(student, projections), optimizer)
    raw_student: Student = accelerator.unwrap_model(objective).student
    raw_proj: LayerProjections = accelerator.unwrap_model(objective).projections

    def record_training() -> None:
        raw_student.cfg.training = {
            "steps": step,
            "device": _device_name(accelerator.device),
            "train_clips": len(train_entries) if s.manifest else None,
            "eval_clips": len(eval_entries),
            "train_examples": len(train) if s.manifest else None,
            "batch_size": s.batch_size,  # per process
            "grad_accum": s.grad_accum,
            "processes": accelerator.num_processes,
            "gradient_checkpointing": raw_student.llm.get_base_model().is_gradient_checkpointing,  # as the model runs
            "lr": s.lr,
            "seed": s.seed,
            "manifest": os.path.abspath(s.manifest) if s.manifest else None,
            "dataset": s.dataset,
            "eval_manifest": eval_manifest,  # the dev split that chose checkpoints
            "history": history,
        }

    def check_processes_agree() -> None:
        """Every process must hold the same weights; if not, gradients are not being averaged."""
        if accelerator.num_processes == 1:
            return
        trained = [p.detach().double() for p in objective.parameters() if p.requires_grad]
        fingerprint = torch.stack([sum(p.sum() for p in trained), sum(p.square().sum() for p in trained)])
        everyone = accelerator.gather(fingerprint[None].to(accelerator.device)).cpu()
        if not torch.equal(everyone, everyone[:1].expand_as(everyone)):
            raise RuntimeError(f"the {accelerator.num_processes} processes hold different weights at step {step}")

    def save() -> None:
        check_processes_agree()
        if not accelerator.is_main_process:
            return
        record_training()
        raw_student.save_checkpoint(s.output)
        torch.save(
            {
                "projections": raw_proj.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "history": history,
                "python_rng": random.getstate(),
                "torch_rng": torch.get_rng_state(),
                "settings": json.loads(json.dumps(asdict(s), default=str)),
            },
            state_path,
        )

    def save_if_best(eval_loss: float) -> None:
        nonlocal best_loss
        if eval_loss >= best_loss:
            return
        best_loss = eval_loss
        if accelerator.is_main_process:
            record_training()
            raw_student.save_checkpoint(os.path.join(s.output, BEST_DIR))

    best_loss = min((e["loss"] for e in history["eval"]), default=math.inf)  # a resumed run keeps its best
    rank, world = accelerator.process_index, accelerator.num_processes
    batches = (_batches_streamed(s, cfg.transcribe_instruction, max_seconds, rank, world) if s.dataset
               else _batches_in_memory(train, train_states, s.batch_size, rank, world, s.seed, skip=step * s.grad_accum))
    objective.train()
    bar = tqdm(total=s.steps, initial=step, desc="distilling", disable=not show, unit="step")
    t0 = last_log = time.time()
    logged_step = step
    if s.log_with:
        accelerator.init_trackers(os.path.basename(os.path.normpath(s.output)), config=_flat(asdict(s)))

    def finished() -> bool:
        done = step >= s.steps or (s.max_minutes is not None and step > s.warmup_steps and progress(step) >= 1.0)
        if accelerator.num_processes > 1:  # all processes stop at the same step, whatever their own clocks say
            done = accelerator.reduce(torch.tensor(float(done), device=accelerator.device), reduction="max").item() > 0
        return done

    last = finished()
    while not last:
        for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = base * lr_scale(step)
        for _ in range(s.grad_accum):
            batch, states = next(batches)
            with accelerator.accumulate(objective):  # no gradient sync until the last micro-batch
                if per_batch is not None:
                    states = _teacher_states(raw_student, per_batch, batch, False, "")
                if s.prompt_variety:
                    batch = [in_random_layout(ex, cfg.transcribe_instruction) for ex in batch]
                distill_only = step < s.distill_only_steps
                with raw_student.first_layers(deepest + 1) if distill_only else contextlib.nullcontext():
                    loss, parts = objective(batch, states, with_task and not distill_only)
                accelerator.backward(loss)
                if accelerator.sync_gradients:  # once per optimiser step, on the accumulated gradient
                    accelerator.clip_grad_norm_(objective.parameters(), 1.0)
                optimizer.step()  # accelerate's optimizer steps only when the gradients are synced
                optimizer.zero_grad()
        step += 1
        bar.update(1)
        last = finished()
        if step % s.log_every == 0 or step == 1 or last:
            parts = dict(zip(parts, accelerator.reduce(torch.tensor(list(parts.values()), device=accelerator.device), "mean").tolist(),
                             strict=True))  # the mean over processes: the loss of the whole batch
            history["train"].append({"step": step, "time_s": round(time.time() - t0, 1), **{k: round(v, 5) for k, v in parts.items()}})
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
            seen = s.batch_size * s.grad_accum * accelerator.num_processes * (step - logged_step)
            accelerator.log({**{f"train/{k}": v for k, v in parts.items()}, "train/lr_audio": optimizer.param_groups[1]["lr"],
                             "train/lr_lora": optimizer.param_groups[0]["lr"],
                             "train/examples_per_s": seen / max(1e-9, time.time() - last_log)}, step=step)
            last_log, logged_step = time.time(), step
        if evals and (step % s.eval_every == 0 or last):
            metrics = evaluate(raw_student, raw_proj, evals, eval_states, s.batch_size, with_task)
            metrics |= {f"{k}_mean_baseline": v for k, v in mean_baseline_loss.items() if k == "distill"}
            samples = _samples(raw_student, evals[: s.eval_samples])
            history["eval"].append({"step": step, **{k: round(v, 5) for k, v in metrics.items()}, "samples": samples})
            save_if_best(metrics["loss"])
            # WER of the few clips decoded greedily (eval_samples): a glimpse; `aura evaluate` gives the dev WER
            accelerator.log({**{f"dev/{k}": v for k, v in metrics.items()},
                             "dev/wer_samples": wer([x["reference"] for x in samples], [x["output"] for x in samples])}, step=step)
            if show:
                tqdm.write(f"step {step}: eval " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
                for x in samples:
                    tqdm.write(f"  {x['reference']!r} -> {x['output']!r}")
        if step % s.save_every == 0 or last:
            save()
    bar.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return raw_student.cfg
