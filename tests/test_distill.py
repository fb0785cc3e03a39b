"""Distillation, export and the bundle on tiny models and real (espeak-ng) speech."""

import os

import numpy as np
import pytest
import torch

from adapters.data.manifest import read_manifest
from adapters.runtime.audio import load_audio
from adapters.runtime.bundle import Bundle
from adapters.runtime.config import AuraConfig, LoraSettings, LossSettings
from adapters.runtime.errors import ManifestError
from adapters.train.distill import DistillSettings, distill
from adapters.train.export import export_bundle
from adapters.train.student import Student, load_causal_lm


def settings(tiny, manifest, output, **kw) -> DistillSettings:
    base = dict(teacher=tiny["whisper"], llm=tiny["llm"], manifest=manifest, output=output, steps=40, batch_size=4,
                lr=3e-3, warmup_steps=5, embed_width=64, eval_every=20, save_every=20, log_every=1,
                eval_fraction=0.1, seed=0, progress=False)
    base.update(kw)
    return DistillSettings(**base)


@pytest.fixture(scope="module")
def trained(tiny, speech_corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ckpt"))
    cfg = distill(settings(tiny, speech_corpus, out))
    return out, cfg


def test_distillation_loss_halves(trained):
    _, cfg = trained
    hist = cfg.training["history"]["train"]
    first, last = hist[0]["distill"], hist[-1]["distill"]
    assert last <= 0.5 * first, f"distillation loss {first:.3f} -> {last:.3f} did not fall by half"
    assert cfg.training["history"]["eval"], "held-out evaluation never ran"


def test_checkpoint_records_every_choice(trained):
    out, _ = trained
    cfg = AuraConfig.load(out)
    assert cfg.layer_map and cfg.lora.rank == 16 and cfg.audio_embed.stride == 4
    assert cfg.losses.cosine_weight == 1.0 and cfg.training["steps"] == 40
    assert os.path.isdir(os.path.join(out, "lora")) and os.path.isfile(os.path.join(out, "training_state.pt"))


def test_gradient_checkpointing_changes_memory_not_results(tiny, speech_corpus, tmp_path):
    plain = distill(settings(tiny, speech_corpus, str(tmp_path / "a"), steps=3, eval_every=3, lora=LoraSettings(dropout=0.0)))
    ckpt = distill(settings(tiny, speech_corpus, str(tmp_path / "b"), steps=3, eval_every=3, lora=LoraSettings(dropout=0.0),
                            gradient_checkpointing=True))
    assert (plain.training["gradient_checkpointing"], ckpt.training["gradient_checkpointing"]) == (False, True)
    for x, y in zip(plain.training["history"]["train"], ckpt.training["history"]["train"], strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5), (x, y)


def test_a_bf16_base_keeps_the_trained_weights_fp32(tiny, speech_corpus, tmp_path):
    distill(settings(tiny, speech_corpus, str(tmp_path / "c"), steps=2, eval_every=2, base_dtype="bfloat16"))
    student = Student.create(AuraConfig.load(str(tmp_path / "c")), base_dtype=torch.bfloat16)
    trained = {p.dtype for p in student.llm.parameters() if p.requires_grad} | {p.dtype for p in student.audio_embed.parameters()}
    frozen = {p.dtype for p in student.llm.parameters() if not p.requires_grad}
    assert trained == {torch.float32} and frozen == {torch.bfloat16}


def test_training_is_logged_to_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, cfg = trained
    runs = [root for root, _, files in os.walk(os.path.join(out, "logs")) if any(f.startswith("events.out.tfevents") for f in files)]
    assert runs, "no TensorBoard event file under OUTPUT/logs"
    events = EventAccumulator(runs[0])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/distill", "train/lr_lora", "train/examples_per_s", "dev/loss", "dev/wer_samples"} <= tags, tags
    assert [e.step for e in events.Scalars("train/loss")] == [h["step"] for h in cfg.training["history"]["train"]]
    assert all(e.value > 0 for e in events.Scalars("train/examples_per_s"))


def test_the_lowest_held_out_loss_is_kept_apart(trained):
    out, cfg = trained
    evals = cfg.training["history"]["eval"]
    assert len(evals) >= 2
    best = min(evals, key=lambda e: e["loss"])
    kept = os.path.join(out, "best")
    assert AuraConfig.load(kept).training["steps"] == best["step"]
    same_as_last = best["step"] == cfg.training["steps"]
    a, b = (Student.from_checkpoint(d).audio_embed.state_dict() for d in (kept, out))
    assert all(torch.equal(a[k], b[k]) for k in a) == same_as_last


def test_resume_continues_from_the_saved_step(tiny, speech_corpus, tmp_path):
    out = str(tmp_path / "ckpt")
    distill(settings(tiny, speech_corpus, out, steps=10, save_every=5))
    cfg = distill(settings(tiny, speech_corpus, out, steps=14, save_every=5, resume=True))
    steps = [h["step"] for h in cfg.training["history"]["train"]]
    assert steps == list(range(1, 15)), steps  # 1..10 from the first run, 11..14 from the resumed one


def _trained_weights(output: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    lora = load_file(os.path.join(output, "lora", "adapter_model.safetensors"))
    audio = load_file(os.path.join(output, "audio_embed.safetensors"))
    return {**{f"lora.{k}": v for k, v in lora.items()}, **{f"audio.{k}": v for k, v in audio.items()}}


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tiny, speech_corpus, tmp_path, monkeypatch):
    kw = dict(steps=6, save_every=3, eval_every=3, warmup_steps=2, lora=LoraSettings(dropout=0.1), prompt_variety=True)
    whole = distill(settings(tiny, speech_corpus, str(tmp_path / "whole"), **kw))

    # The other run is killed right after its step-3 checkpoint, then resumed to step 6.
    real_save = torch.save

    def save_then_die(obj, path, *a, **k):
        real_save(obj, path, *a, **k)
        if isinstance(obj, dict) and obj.get("step") == 3:
            raise KeyboardInterrupt

    out = str(tmp_path / "resumed")
    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        distill(settings(tiny, speech_corpus, out, **kw))
    monkeypatch.undo()
    resumed = distill(settings(tiny, speech_corpus, out, resume=True, **kw))

    a, b = whole.training["history"]["train"], resumed.training["history"]["train"]
    assert [h["step"] for h in b] == list(range(1, 7))
    for x, y in zip(a, b, strict=True):  # the same batches, learning rates, dropout masks and layouts
        assert {k: v for k, v in x.items() if k != "time_s"} == {k: v for k, v in y.items() if k != "time_s"}
    wa, wb = _trained_weights(str(tmp_path / "whole")), _trained_weights(out)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_time_budget_stops_training_with_an_evaluation_and_a_checkpoint(tiny, speech_corpus, tmp_path):
    out = str(tmp_path / "ckpt")
    # A budget far shorter than 10,000 steps: the schedule follows the clock and the run ends early.
    cfg = distill(settings(tiny, speech_corpus, out, steps=10_000, max_minutes=0.05, warmup_steps=2, save_every=10_000))
    done = cfg.training["steps"]
    assert 2 < done < 10_000
    assert cfg.training["history"]["eval"][-1]["step"] == done, "the last step was not evaluated"
    assert AuraConfig.load(out).training["steps"] == done, "the last step was not saved"
    assert cfg.training["device"].startswith("cpu")


def test_export_merged_logits_match_peft(trained, tmp_path):
    ckpt, _ = trained
    bundle_dir = str(tmp_path / "bundle")
    export_bundle(ckpt, bundle_dir)
    student = Student.from_checkpoint(ckpt).eval()
    merged = load_causal_lm(os.path.join(bundle_dir, "llm"), dtype=torch.float32).eval()
    wave = torch.randn(16000).numpy() * 0.1
    with torch.no_grad():
        p = student.prompt(wave, "Transcribe the audio.")
        peft_logits = student.llm(inputs_embeds=p.embeds[None]).logits
        merged_logits = merged(inputs_embeds=p.embeds[None]).logits
    # fp32 merge: W + BA computed once vs. applied per call; differences are rounding only.
    torch.testing.assert_close(merged_logits, peft_logits, atol=1e-4, rtol=1e-4)

    # the bundle round-trips: same audio layer, same prompt embeddings as the training code path
    bundle = Bundle.load(bundle_dir)
    with torch.no_grad():
        audio, _ = bundle.embed_audio(wave)
        served = bundle.prompt([{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe the audio."}]}], [audio])
    torch.testing.assert_close(served.embeds, p.embeds)
    assert served.audio_spans == p.audio_spans


def test_manifest_errors_name_file_and_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"audio": "missing.wav", "text": "hi"}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: audio file .*missing\.wav does not exist"):
        read_manifest(str(m))
    m.write_text('\n{"text": "hi"}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: missing 'audio'"):
        read_manifest(str(m))
    m.write_text("{not json\n")
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: not valid JSON"):
        read_manifest(str(m))


def test_unreadable_clip_in_manifest_names_line(tiny, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    (tmp_path / "m.jsonl").write_text('{"audio": "bad.wav", "text": "hi"}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: .*bad\.wav: not a readable audio file"):
        distill(settings(tiny, str(tmp_path / "m.jsonl"), str(tmp_path / "out"), eval_fraction=0))


@pytest.mark.parametrize("arch", ["tiny", "tiny_gemma"])
def test_task_loss_on_target_positions_equals_full_cross_entropy(arch, request):
    """The trainer projects only target positions onto the vocabulary; the loss must not change."""
    from adapters.train.losses import task_loss
    from adapters.train.student import Example

    student = Student.from_checkpoint(request.getfixturevalue(arch)["checkpoint"]).eval()
    rng = np.random.default_rng(0)
    batch = student.batch([Example(rng.standard_normal(32000).astype(np.float32) * 0.1, "Transcribe the audio.", "a b c d"),
                           Example(rng.standard_normal(20000).astype(np.float32) * 0.1, "Transcribe the audio.", "e")])
    with torch.no_grad():
        full = student.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"]).logits
        ref = torch.nn.functional.cross_entropy(full[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)
        out = student.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                          output_hidden_states=True, logits_to_keep=1)
        got = task_loss(student.output_logits, out.hidden_states[-1], batch["labels"])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_batch_holds_exactly_the_prompts_serving_builds(tiny_gemma):
    """Student.batch builds a whole batch at once; each row must still be prompt() + target."""
    from adapters.train.student import Example

    student = Student.from_checkpoint(tiny_gemma["checkpoint"]).eval()
    rng = np.random.default_rng(1)
    examples = [Example(rng.standard_normal(n).astype(np.float32) * 0.1, instr, target, layout=layout) for n, instr, target, layout in
                [(32000, "Transcribe the audio.", "a b c d", "audio-first"), (9123, "Answer the question.", "e", "text-first"),
                 (20001, "Transcribe the audio.", "f g", "audio-only"), (12000, "Transcribe the audio.", "h", "system")]]
    with torch.no_grad():
        batch = student.batch(examples)
        for i, ex in enumerate(examples):
            p = student.prompt(ex.wave, ex.instruction, ex.layout)
            target = student.tokenizer(ex.target + student.tokenizer.eos_token, add_special_tokens=False)["input_ids"]
            n = len(p) + len(target)
            torch.testing.assert_close(batch["inputs_embeds"][i, : len(p)], p.embeds, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batch["inputs_embeds"][i, len(p) : n], student.embed_tokens(torch.tensor(target)))
            assert batch["attention_mask"][i].sum() == n
            assert batch["labels"][i, len(p) : n].tolist() == target and (batch["labels"][i, : len(p)] == -100).all()
            start, count = p.audio_spans[0]
            assert batch["audio_spans"][i] == (start + 1, count - 2)  # boundary embeddings excluded


def test_distill_loss_is_the_mean_over_layers_and_examples():
    """The batched loss equals the plain definition: per layer and example, cosine distance and
    MSE of layer-normed states averaged over the example's audio tokens; then averaged."""
    from adapters.runtime.config import LossSettings
    from adapters.train.losses import LayerProjections, distill_loss

    torch.manual_seed(0)
    layer_map = [(1, 2), (3, 4)]
    proj = LayerProjections(layer_map, 16, 8)
    hidden = tuple(torch.randn(3, 12, 16) for _ in range(5))
    spans = [(2, 5), (1, 9), (4, 3)]
    teacher = [{2: torch.randn(n, 8), 4: torch.randn(n, 8)} for _, n in spans]
    cos_ref, mse_ref = [], []
    for s_layer, t_layer in layer_map:
        for i, (start, n) in enumerate(spans):
            p, t = proj(s_layer, hidden[s_layer][i, start : start + n]), teacher[i][t_layer]
            cos_ref.append(1 - torch.nn.functional.cosine_similarity(p, t, dim=-1).mean())
            mse_ref.append(torch.nn.functional.mse_loss(torch.nn.functional.layer_norm(p, (8,)), torch.nn.functional.layer_norm(t, (8,))))
    loss, parts = distill_loss(hidden, spans, teacher, proj, LossSettings(cosine_weight=1.0, mse_weight=0.5))
    torch.testing.assert_close(parts["cosine"], torch.stack(cos_ref).mean().item())
    torch.testing.assert_close(parts["mse"], torch.stack(mse_ref).mean().item())
    torch.testing.assert_close(loss, torch.stack(cos_ref).mean() + 0.5 * torch.stack(mse_ref).mean())


def test_teacher_runs_unpadded_with_whispers_own_layers(tiny):
    """Teacher._encode is WhisperEncoder without the 30 s padding: on a 30 s input both agree exactly."""
    from adapters.train.teacher import Teacher

    teacher = Teacher(tiny["whisper"])
    mel = torch.randn(1, 80, teacher.max_frames)
    with torch.no_grad():
        ours = teacher._encode(mel)
        hf = teacher.encoder(mel, output_hidden_states=True).hidden_states
    assert len(ours) == len(hf) == teacher.num_layers + 1
    for a, b in zip(ours, hf, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # and a 2 s clip gives 2 s of states, no padding needed
        assert teacher._encode(mel[..., :200])[-1].shape[1] == 100


def test_teacher_batches_clips_of_different_lengths_as_if_alone(tiny):
    """Padded batches (odd and even frame counts) give each clip the states it gets on its own."""
    from adapters.train.teacher import Teacher

    teacher = Teacher(tiny["whisper"])
    rng = np.random.default_rng(2)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 12345, 4801, 20000)]
    layers = list(range(1, teacher.num_layers + 1))
    tokens = [w.shape[0] // 640 for w in waves]
    for w, n, got in zip(waves, tokens, teacher.layer_states_many(waves, layers, tokens), strict=True):
        alone = teacher.layer_states(w, layers, n)
        for layer in layers:
            torch.testing.assert_close(got[layer], alone[layer], atol=1e-5, rtol=1e-4)


def test_teacher_cache_computes_each_clip_once(tiny, tmp_path):
    from adapters.train.teacher import Teacher, TeacherCache

    cache = TeacherCache(Teacher(tiny["whisper"]), str(tmp_path))
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 11000))
    first = cache.get_many([a, b, a], [1, 2], [10, 14, 10])  # the repeated clip: an "answer" example
    assert len(os.listdir(tmp_path)) == 2
    again = cache.get_many([b, a], [1, 2], [14, 10])  # now from disk
    for x, y in ((first[1], again[0]), (first[0], again[1]), (first[2], again[1])):
        assert x.keys() == y.keys() == {1, 2} and all(torch.equal(x[k], y[k]) for k in x)


def test_teacher_on_the_fly_gives_the_cached_states(tiny, speech_corpus, tmp_path):
    from adapters.train.teacher import Teacher, TeacherCache

    teacher = Teacher(tiny["whisper"])
    waves = [load_audio(e.audio) for e in read_manifest(speech_corpus)[:6]]
    tokens = [max(1, w.shape[0] // 640) for w in waves]
    cached = TeacherCache(teacher, str(tmp_path / "cache")).get_many(waves, [1, 2], tokens)
    # on the fly, a training batch at a time (in manifest order, not sorted by length as the cache does)
    fresh = [s for k in (0, 3) for s in TeacherCache(teacher, None).get_many(waves[k : k + 3], [1, 2], tokens[k : k + 3])]
    for x, y in zip(cached, fresh, strict=True):
        assert x.keys() == y.keys() and all(torch.allclose(x[k], y[k], atol=1e-5) for k in x)


def test_training_without_a_teacher_cache_follows_the_cached_run(tiny, speech_corpus, tmp_path):
    cached = distill(settings(tiny, speech_corpus, str(tmp_path / "a"), steps=4, eval_every=4))
    fresh = distill(settings(tiny, speech_corpus, str(tmp_path / "b"), steps=4, eval_every=4, teacher_cache=False))
    assert os.path.isdir(tmp_path / "a" / "teacher_cache") and not os.path.exists(tmp_path / "b" / "teacher_cache")
    for x, y in zip(cached.training["history"]["train"], fresh.training["history"]["train"], strict=True):
        assert y["distill"] == pytest.approx(x["distill"], rel=1e-3), (x, y)
    with pytest.raises(ValueError, match="standardize"):
        distill(settings(tiny, speech_corpus, str(tmp_path / "c"), teacher_cache=False,
                         losses=LossSettings(standardize=True)))


def test_audio_layer_starts_from_the_teachers_first_convolution(tiny):
    from adapters.runtime.embedding import AudioEmbedConfig, AudioEmbedding
    from adapters.train.distill import init_from_teacher
    from adapters.train.teacher import Teacher

    teacher = Teacher(tiny["whisper"])
    layer = AudioEmbedding(AudioEmbedConfig(width=teacher.hidden_size, hidden_size=128))
    assert init_from_teacher(layer, teacher)
    torch.testing.assert_close(layer.conv1.weight, teacher.encoder.conv1.weight)
    assert not init_from_teacher(AudioEmbedding(AudioEmbedConfig(width=teacher.hidden_size * 2, hidden_size=128)), teacher)


def test_context_blocks_see_the_whole_clip_and_a_batch_equals_each_clip_alone(tiny):
    from adapters.runtime.embedding import AudioEmbedConfig, AudioEmbedding
    from adapters.runtime.features import log_mel
    from adapters.train.teacher import Teacher

    features = Teacher(tiny["whisper"]).features
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 9000, 4001)]
    mels = [log_mel(w, features) for w in waves]
    louder_end = waves[0].copy()
    louder_end[-4000:] *= 5  # the last quarter second changes
    torch.manual_seed(0)
    for context_layers in (0, 2):
        layer = AudioEmbedding(AudioEmbedConfig(n_mels=features.n_mels, width=64, hidden_size=32,
                                                context_layers=context_layers)).eval()
        with torch.no_grad():
            for mel, got in zip(mels, layer.embed_batch(mels), strict=True):
                torch.testing.assert_close(got, layer.embed(mel), atol=1e-5, rtol=1e-5)
            first = layer.embed(mels[0])[1]  # the first audio token, after <audio start>
            changed = layer.embed(log_mel(louder_end, features))[1]
        # Without context, the first token is the first 40 ms alone; with it, the whole clip.
        assert torch.equal(first, changed) == (context_layers == 0)


def test_context_blocks_are_trained_exported_and_served(tiny, speech_corpus, tmp_path):
    out = str(tmp_path / "ckpt")
    cfg = distill(settings(tiny, speech_corpus, out, steps=4, eval_every=4, save_every=4, context_layers=1))
    assert cfg.audio_embed.context_layers == 1
    export_bundle(out, str(tmp_path / "bundle"))
    student, bundle = Student.from_checkpoint(out).eval(), Bundle.load(str(tmp_path / "bundle"))
    wave = np.random.default_rng(1).standard_normal(12000).astype(np.float32) * 0.1
    with torch.no_grad():
        trained = student.prompt(wave, "Transcribe the audio.").embeds
        audio, _ = bundle.embed_audio(wave)
        served = bundle.prompt([{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe the audio."}]}], [audio])
    assert any(k.startswith("context.0.") for k in student.audio_embed.state_dict())
    torch.testing.assert_close(served.embeds, trained)
