"""Committed adapters: publishing with relative paths, the bundle built on first use, the default one."""

import json
import os

import pytest

from adapters.runtime.config import AuraConfig
from adapters.runtime.errors import BundleError
from adapters.weights import pretrained


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED", str(tmp_path / "repo" / "adapters" / "pretrained"))
    monkeypatch.setattr(pretrained, "BUNDLES", str(tmp_path / "repo" / "artifacts" / "bundles"))
    return tmp_path


def test_publish_writes_relative_paths_that_resolve(tiny, dirs):
    out = pretrained.publish(tiny["checkpoint"], "demo", asr_model=tiny["whisper-ct2"])
    raw = json.load(open(os.path.join(out, "aura.json")))
    assert raw["name"] == "demo"
    for key in ("base_llm", "teacher", "asr_model"):
        assert raw[key].startswith("../"), raw[key]
    cfg = AuraConfig.load(out)
    assert os.path.samefile(cfg.base_llm, tiny["llm"]) and os.path.samefile(cfg.asr_model, tiny["whisper-ct2"])
    assert sorted(os.listdir(os.path.join(out, "lora"))) == ["adapter_config.json", "adapter_model.safetensors"]
    assert not os.path.exists(os.path.join(out, "training_state.pt"))


def test_bundle_is_built_once_from_the_adapter(tiny, dirs):
    pretrained.publish(tiny["checkpoint"], "demo", asr_model=tiny["whisper-ct2"])
    path = pretrained.ensure_bundle("demo")
    assert os.path.isdir(os.path.join(path, "llm")) and AuraConfig.load(path).name == "demo"
    stamp = os.path.getmtime(os.path.join(path, "aura.json"))
    assert pretrained.ensure_bundle("demo") == path
    assert os.path.getmtime(os.path.join(path, "aura.json")) == stamp



def test_the_bundle_is_merged_in_fp32(tiny, dirs, monkeypatch):
    """A bf16 cast after the merge rounds away LoRA deltas smaller than a weight's bf16 step."""
    dtypes = []
    export = pretrained.export_bundle
    monkeypatch.setattr(pretrained, "export_bundle", lambda src, out, dtype="auto": dtypes.append(dtype) or export(src, out, dtype))
    pretrained.publish(tiny["checkpoint"], "demo", asr_model=tiny["whisper-ct2"])
    pretrained.ensure_bundle("demo")
    assert dtypes == ["float32"]


def test_a_changed_adapter_gets_a_new_bundle(tiny, dirs):
    """After a pull or a retrain the adapter differs from the one the bundle was merged from."""
    from safetensors.torch import load_file, save_file

    src = pretrained.publish(tiny["checkpoint"], "demo", asr_model=tiny["whisper-ct2"])
    path = pretrained.ensure_bundle("demo")
    before = load_file(os.path.join(path, "audio_embed.safetensors"))
    weights = os.path.join(src, "audio_embed.safetensors")
    changed = {k: v + 1 for k, v in load_file(weights).items()}
    save_file(changed, weights)
    assert pretrained.ensure_bundle("demo") == path
    after = load_file(os.path.join(path, "audio_embed.safetensors"))
    assert all((after[k] == changed[k]).all() and not (after[k] == before[k]).all() for k in changed)


def test_missing_weights_say_how_to_get_them(tiny, dirs):
    out = pretrained.publish(tiny["checkpoint"], "demo")
    cfg = json.load(open(os.path.join(out, "aura.json")))
    cfg["base_llm"] = "../../../artifacts/demo/not-downloaded"
    json.dump(cfg, open(os.path.join(out, "aura.json"), "w"))
    with pytest.raises(BundleError, match="make demo-models"):
        pretrained.ensure_bundle("demo")
    with pytest.raises(BundleError, match="no pretrained adapter 'nope'.*have: demo"):
        pretrained.ensure_bundle("nope")


def test_the_default_adapter_is_committed_and_complete():
    src = pretrained.adapter_dir()
    cfg = AuraConfig.load(src)
    assert cfg.name == pretrained.DEFAULT_MODEL
    assert cfg.base_llm.endswith(os.path.join("artifacts", "demo", "gemma-3-270m"))
    assert cfg.asr_model.endswith(os.path.join("artifacts", "demo", "whisper-base-ct2"))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs)
    assert size < 50 * 2**20, f"{size / 2**20:.0f} MB is too big to commit"
    history = cfg.training["history"]
    assert history["train"] and history["eval"] and cfg.training["steps"] >= 1000
    assert history["eval"][-1]["task"] < history["eval"][0]["task"]



def test_bundle_names_its_models_relative_to_itself(tiny, dirs):
    """So artifacts/ can be mounted elsewhere (a container's /models) and the bundle still finds them."""
    pretrained.publish(tiny["checkpoint"], "demo", asr_model=tiny["whisper-ct2"])
    path = pretrained.ensure_bundle("demo")
    raw = json.load(open(os.path.join(path, "aura.json")))
    assert raw["base_llm"] == os.path.relpath(tiny["llm"], path)
    assert os.path.samefile(AuraConfig.load(path).asr_model, tiny["whisper-ct2"])
    assert not os.path.exists(path + ".partial")


def test_serve_without_bundle_uses_the_default_adapter(tiny, dirs):
    import argparse

    from service import state
    from service.cli import settings_from_args

    pretrained.publish(tiny["checkpoint"], pretrained.DEFAULT_MODEL, asr_model=tiny["whisper-ct2"])
    s = state.ServerState(settings_from_args(argparse.Namespace()))
    assert s.bundle_path == pretrained.bundle_dir() and s.model_name == pretrained.DEFAULT_MODEL


def test_the_service_alone_needs_a_bundle():
    from service import state
    from service.settings import Settings

    with pytest.raises(BundleError, match="no bundle"):
        state.ServerState(Settings())
