"""The trained adapters committed under adapters/pretrained/, and the bundles built from them.

A committed adapter is a distillation checkpoint without its optimizer state or teacher cache:
lora/, audio_embed.safetensors and aura.json, whose model paths are relative to the adapter's own
folder (they point into artifacts/demo/, which `make demo-models` fills). The first `aura serve`
merges it into a bundle under artifacts/bundles/<name>/; later starts reuse that bundle for as long
as the adapter is the one it was built from (a digest of the adapter's files is kept beside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from adapters.runtime.bundle import (
    AUDIO_EMBED_FILE,
    LLM_DIR,
    LORA_DIR,
    LORA_FILES,
    copy_adapter,
    load_audio_embed,
)
from adapters.runtime.config import CONFIG_NAME, AuraConfig
from adapters.runtime.errors import BundleError
from adapters.train.export import export_bundle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRETRAINED = os.path.join(REPO, "adapters", "pretrained")
BUNDLES = os.path.join(REPO, "artifacts", "bundles")
DEFAULT_MODEL = "aura-gemma3-270m-whisper-base"
DIGEST_FILE = "adapter.sha256"  # in a bundle: the digest of the adapter it was built from
# The merged weights are written in fp32: a bf16 cast after the merge rounds away LoRA deltas
# smaller than the base weight's bf16 step, and this model is small (1.1 GB in fp32); a CPU without
# native bf16 serves fp32 anyway.
EXPORT_DTYPE = "float32"


def adapter_dir(name: str = DEFAULT_MODEL) -> str:
    return os.path.join(PRETRAINED, name)


def bundle_dir(name: str = DEFAULT_MODEL) -> str:
    return os.path.join(BUNDLES, name)


def save_relative(cfg: AuraConfig, directory: str, anchor: str | None = None) -> None:
    """Write cfg's aura.json into `directory` with its model paths relative to `anchor` (default:
    `directory`, the folder's final place), so the folder keeps working when the tree it sits in
    moves (another checkout, a container mounting artifacts/)."""
    for key in ("base_llm", "teacher", "asr_model"):
        path = getattr(cfg, key)
        if path is not None:
            setattr(cfg, key, os.path.relpath(os.path.abspath(path), anchor or directory))
    for key in ("manifest", "exported_from"):  # machine-local paths: keep the file name only
        if key in cfg.training:
            cfg.training[key] = os.path.basename(os.path.normpath(str(cfg.training[key])))
    cfg.save(directory)


def publish(checkpoint: str, name: str = DEFAULT_MODEL, asr_model: str | None = None) -> str:
    """Copy a checkpoint's servable part to adapters/pretrained/<name>, with relative model paths."""
    load_audio_embed(AuraConfig.load(checkpoint), checkpoint)  # refuses what cannot be served (an oracle) before copying
    out = adapter_dir(name)
    copy_adapter(checkpoint, out)
    cfg = AuraConfig.load(checkpoint)
    cfg.name = name
    cfg.asr_model = asr_model or cfg.asr_model
    save_relative(cfg, out)
    # PEFT records the absolute base path it was trained from; it is informational (we always pass
    # the base model in), so point it at the same relative location.
    lora_cfg = os.path.join(out, LORA_DIR, "adapter_config.json")
    with open(lora_cfg) as f:
        d = json.load(f)
    d["base_model_name_or_path"] = cfg.base_llm
    with open(lora_cfg, "w") as f:
        json.dump(d, f, indent=2)
    return out


def adapter_digest(src: str) -> str:
    """sha256 over an adapter's files: a new adapter (a pull, a retrain) gets a new bundle."""
    h = hashlib.sha256(f"export {EXPORT_DTYPE} +lora\n".encode())  # a change of export format rebuilds too
    for rel in (CONFIG_NAME, AUDIO_EMBED_FILE, *(os.path.join(LORA_DIR, f) for f in LORA_FILES)):
        h.update(rel.encode())
        with open(os.path.join(src, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def _built_from(out: str) -> str | None:
    try:
        with open(os.path.join(out, DIGEST_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


def ensure_bundle(name: str = DEFAULT_MODEL) -> str:
    """The bundle of a committed adapter, exported on first use and again whenever the adapter
    changes. Raises BundleError with the fix when the adapter or the base weights it needs are missing."""
    out = bundle_dir(name)
    src = adapter_dir(name)
    if not os.path.isfile(os.path.join(src, CONFIG_NAME)):
        known = sorted(os.listdir(PRETRAINED)) if os.path.isdir(PRETRAINED) else []
        raise BundleError(f"no pretrained adapter {name!r} in {PRETRAINED} (have: {', '.join(known) or 'none'})")
    digest = adapter_digest(src)
    if os.path.isdir(os.path.join(out, LLM_DIR)) and _built_from(out) == digest:
        return out
    cfg = AuraConfig.load(src)
    for what, path in (("base LLM", cfg.base_llm), ("ASR model", cfg.asr_model)):
        if path and not os.path.isdir(path):
            raise BundleError(f"{name}: the {what} is not at {path}; run `make demo-models` first")
    why = "the adapter changed" if os.path.isdir(out) else "first run only"
    print(f"building bundle {out} from {src} ({why}; about a minute)", flush=True)
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    export_bundle(src, tmp, EXPORT_DTYPE)
    save_relative(AuraConfig.load(tmp), tmp, anchor=out)
    with open(os.path.join(tmp, DIGEST_FILE), "w") as f:
        f.write(digest + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # a bundle directory is either complete or absent
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Publish a distillation checkpoint under adapters/pretrained/, or build a bundle from one.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish", help="copy CHECKPOINT's LoRA, audio layer and aura.json to adapters/pretrained/NAME")
    pub.add_argument("checkpoint")
    pub.add_argument("--name", default=DEFAULT_MODEL)
    pub.add_argument("--asr-model", help="CTranslate2 Whisper for the cascade beside it")
    bun = sub.add_parser("bundle", help="export adapters/pretrained/NAME to artifacts/bundles/NAME (if not built yet)")
    bun.add_argument("--name", default=DEFAULT_MODEL)
    a = p.parse_args(argv)
    try:
        print(publish(a.checkpoint, a.name, a.asr_model) if a.cmd == "publish" else ensure_bundle(a.name))
    except BundleError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
