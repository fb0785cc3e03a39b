"""The fidelity diagnostics: dev split by sentence, audio dependence, the mean baseline, standardised
targets, and the encoder-kept oracle (tiny models, real espeak-ng speech)."""

import os

import numpy as np
import pytest
import torch

from adapters.data.manifest import ManifestEntry, read_manifest, split_by_sentence
from adapters.runtime.config import AuraConfig, LossSettings
from adapters.runtime.errors import BundleError
from adapters.train.distill import DEV_MANIFEST, distill
from tests.test_distill import settings


def test_dev_split_holds_out_whole_sentences():
    texts = [f"sentence {i}" for i in range(50)]
    # every sentence spoken twice, once with different punctuation and case
    entries = [ManifestEntry(f"/a/{i}.wav", t) for i, t in enumerate(texts)] + [ManifestEntry(f"/b/{i}.wav", t.upper() + ".") for i, t in enumerate(texts)]
    train, dev = split_by_sentence(entries, 0.1, seed=0)
    assert len(dev) == 10 and len(train) == 90
    norm = lambda e: e.text.lower().strip(".")  # noqa: E731
    assert not {norm(e) for e in dev} & {norm(e) for e in train}
    assert split_by_sentence(entries, 0.1, seed=0) == (train, dev)  # deterministic: resume sees the same split


def test_a_data_scale_point_keeps_whole_sentences():
    from adapters.data.manifest import sample_sentences

    entries = [ManifestEntry(f"/{k}/{i}.wav", f"sentence {i}") for k in "ab" for i in range(30)]
    some = sample_sentences(entries, 7, seed=1)
    assert len(some) == 14 and len({e.text for e in some}) == 7  # both clips of each kept sentence
    assert sample_sentences(entries, 7, seed=1) == some and sample_sentences(entries, 100) == entries


def test_mean_baseline_is_the_loss_of_predicting_the_mean():
    from adapters.train.losses import TeacherStandardizer, mean_baseline

    torch.manual_seed(0)
    layer_map = [(1, 2), (3, 4)]
    offset = torch.randn(8) * 5  # a large shared direction, as Whisper's states have
    teacher = [{2: torch.randn(n, 8) + offset, 4: torch.randn(n, 8) - offset} for n in (200, 300, 100)]
    got = mean_baseline(teacher, layer_map, LossSettings())
    cos = []
    for _, t_layer in layer_map:
        mean = torch.cat([s[t_layer] for s in teacher]).mean(0)
        cos += [1 - torch.nn.functional.cosine_similarity(mean.expand_as(s[t_layer]), s[t_layer], dim=-1).mean() for s in teacher]
    torch.testing.assert_close(got["cosine"], torch.stack(cos).mean().item())
    assert got["cosine"] < 0.2, "un-centred targets: the mean already scores a good cosine (the shortcut)"
    # Standardised with training-set statistics, held-out targets have a mean near zero that
    # predicts nothing: cosine distance about 1.
    held_out = [{2: torch.randn(n, 8) + offset, 4: torch.randn(n, 8) - offset} for n in (40, 60)]
    standardized = mean_baseline(TeacherStandardizer(teacher)(held_out), layer_map, LossSettings())
    assert standardized["cosine"] == pytest.approx(1.0, abs=0.15)


def test_eval_logs_audio_dependence_mean_baseline_and_dev_split(tiny, speech_corpus, tmp_path):
    out = str(tmp_path / "ckpt")
    cfg = distill(settings(tiny, speech_corpus, out, steps=4, eval_every=4, losses=LossSettings(standardize=True), train_sentences=10))
    last = cfg.training["history"]["eval"][-1]
    assert {"task", "task_shuffled", "audio_gap", "distill", "distill_mean_baseline"} <= last.keys()
    assert last["audio_gap"] == pytest.approx(last["task_shuffled"] - last["task"], abs=1e-4)
    assert last["distill_mean_baseline"] > 0
    projections = torch.load(os.path.join(out, "training_state.pt"), weights_only=False)["projections"]
    assert cfg.losses.standardize and projections and not any(k.endswith(".bias") for k in projections)
    dev = read_manifest(os.path.join(out, DEV_MANIFEST))
    train = {e.text for e in read_manifest(speech_corpus)} - {e.text for e in dev}
    assert dev and not {e.text for e in dev} & train
    assert cfg.training["eval_clips"] == len(dev) and cfg.training["train_clips"] == 10


def test_shuffled_audio_never_gives_an_example_its_own_clip():
    from adapters.train.distill import with_shuffled_audio
    from adapters.train.student import Example

    waves = [np.full(10, i, dtype=np.float32) for i in range(3)]
    # clip 0 has a transcription and an answer example next to each other, as load_examples makes them
    batch = [Example(waves[0], "Transcribe.", "t0"), Example(waves[0], "Answer.", "a0"), Example(waves[1], "Transcribe.", "t1"),
             Example(waves[2], "Transcribe.", "t2")]
    rolled = with_shuffled_audio(batch)
    assert [e.target for e in rolled] == ["t0", "a0", "t1", "t2"]
    assert [int(e.wave[0]) for e in rolled] == [1, 1, 2, 0]
    assert with_shuffled_audio(batch[:2]) == [None, None]  # one clip: nothing else to hear


@pytest.fixture(scope="module")
def oracle(tiny, speech_corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("oracle"))
    return out, distill(settings(tiny, speech_corpus, out, steps=6, eval_every=6, oracle=True, prompt_variety=True))


def test_oracle_trains_on_the_task_loss_with_the_encoder_kept(oracle):
    from safetensors.torch import load_file

    out, cfg = oracle
    assert cfg.audio_embed.kind == "encoder-oracle" and not cfg.losses.distills
    hist = cfg.training["history"]
    assert "distill" not in hist["train"][-1] and "task" in hist["train"][-1]
    assert "audio_gap" in hist["eval"][-1]
    saved = load_file(os.path.join(out, "audio_embed.safetensors"))
    assert not any("encoder" in k or "teacher" in k for k in saved), "the frozen encoder must not be saved"
    assert any(k.startswith("proj.") for k in saved)


def test_oracle_cannot_be_exported_or_served(oracle, tmp_path):
    from adapters.runtime.bundle import load_audio_embed
    from adapters.train.export import export_bundle

    out, _ = oracle
    with pytest.raises(BundleError, match="cannot be exported or served"):
        export_bundle(out, str(tmp_path / "bundle"))
    with pytest.raises(BundleError, match="encoder-oracle"):
        load_audio_embed(AuraConfig.load(out), out)


def test_oracle_batch_equals_each_clip_alone(oracle):
    from adapters.runtime.features import log_mel
    from adapters.train.student import Student

    out, _ = oracle
    student = Student.from_checkpoint(out)
    rng = np.random.default_rng(0)
    mels = [log_mel(rng.standard_normal(n).astype(np.float32) * 0.1, student.cfg.features) for n in (16000, 9000, 4001)]
    with torch.no_grad():
        batched = student.audio_embed.embed_batch(mels)
        for mel, got in zip(mels, batched, strict=True):
            torch.testing.assert_close(got, student.audio_embed.embed(mel), atol=1e-4, rtol=1e-4)


def test_evaluate_scores_a_checkpoint(oracle, speech_corpus):
    from adapters.train.evaluate import evaluate_checkpoint

    out, _ = oracle
    result = evaluate_checkpoint(out, speech_corpus, limit=4, progress=False)
    assert evaluate_checkpoint(out, progress=False)["manifest"].endswith("dev.jsonl")  # the recorded dev split
    assert result["clips"] == 4 and result["wer"] > 0  # six random steps of a tiny model do not transcribe
    assert result["task_shuffled"] != result["task"]
    assert len(result["samples"]) == 4


def test_prompt_layouts_are_the_chats_serving_receives():
    from adapters.train.distill import in_random_layout
    from adapters.train.student import PROMPT_LAYOUTS, Example, messages_for

    kinds = {layout: [[p["type"] for p in m["content"]] if m["role"] == "user" else m["role"] for m in messages_for("Do it.", layout)]
             for layout in PROMPT_LAYOUTS}
    assert kinds == {"audio-first": [["audio", "text"]], "text-first": [["text", "audio"]], "audio-only": [["audio"]],
                     "system": ["system", ["audio", "text"]]}
    with pytest.raises(ValueError, match="unknown prompt layout"):
        messages_for("x", "sideways")
    answer = Example(np.zeros(10, dtype=np.float32), "Answer the question.", "yes")
    transcribe = Example(np.zeros(10, dtype=np.float32), "Transcribe the audio.", "yes")
    # the audio alone stands for a transcription request, never for another instruction
    assert "audio-only" not in {in_random_layout(answer, "Transcribe the audio.").layout for _ in range(200)}
    assert {in_random_layout(transcribe, "Transcribe the audio.").layout for _ in range(200)} == set(PROMPT_LAYOUTS)


def test_first_layers_give_the_full_models_early_states(tiny_gemma):
    from adapters.train.student import Student

    student = Student.from_checkpoint(tiny_gemma["checkpoint"]).eval()
    embeds = torch.randn(2, 9, student.cfg.audio_embed.hidden_size)
    with torch.no_grad():
        full = student.llm(inputs_embeds=embeds, output_hidden_states=True).hidden_states
        with student.first_layers(1):
            short = student.llm(inputs_embeds=embeds, output_hidden_states=True).hidden_states
        normed = student.llm.get_base_model().model.norm(full[1])
    assert len(short) == 2 and len(full) == 3
    torch.testing.assert_close(short[0], full[0])
    # Layer 1 computes what it computes in the full model, but the last entry is normed: hence the
    # trainer runs one layer past the deepest mapped one.
    torch.testing.assert_close(short[1], normed)
    assert len(student.llm(inputs_embeds=embeds, output_hidden_states=True).hidden_states) == len(full)  # restored


def test_distill_only_stage_then_joint(tiny, speech_corpus, tmp_path):
    from adapters.train.student import Student

    calls = []
    forward = Student.first_layers

    def spy(self, n):
        calls.append(n)
        return forward(self, n)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Student, "first_layers", spy)
        cfg = distill(settings(tiny, speech_corpus, str(tmp_path / "ckpt"), steps=6, eval_every=6, distill_only_steps=3))
    train = cfg.training["history"]["train"]
    assert ["task" in h for h in train] == [False, False, False, True, True, True]
    assert calls == [max(s for s, _ in cfg.layer_map) + 1] * 3  # the first stage ran the short model, the rest the whole
    with pytest.raises(ValueError, match="needs a distillation loss"):
        distill(settings(tiny, speech_corpus, str(tmp_path / "o"), steps=2, oracle=True, distill_only_steps=1))


def test_an_oracle_is_not_published(oracle, monkeypatch, tmp_path):
    from adapters.weights import pretrained

    monkeypatch.setattr(pretrained, "PRETRAINED", str(tmp_path))
    out, _ = oracle
    with pytest.raises(BundleError, match="encoder-oracle"):
        pretrained.publish(out, "oracle")
    assert not os.listdir(tmp_path)


def test_resume_refuses_another_dev_split(tiny, speech_corpus, tmp_path):
    out = str(tmp_path / "ckpt")
    distill(settings(tiny, speech_corpus, out, steps=2, eval_every=2, save_every=2))
    with pytest.raises(ValueError, match="dev split"):
        distill(settings(tiny, speech_corpus, out, steps=4, resume=True, eval_manifest=speech_corpus))
