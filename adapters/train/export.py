"""Export: merge the LoRA into the base weights and write a servable bundle (DESIGN §4).

    bundle/aura.json                 the checkpoint's aura.json plus where the bundle came from
    bundle/audio_embed.safetensors   the audio embedding layer
    bundle/llm/                      merged HF checkpoint + tokenizer: what a dedicated vLLM engine loads
    bundle/lora/                     the LoRA un-merged: one base-LLM engine applies it per request
"""

from __future__ import annotations

import os

import torch

from adapters.runtime.bundle import LLM_DIR, LORA_DIR, copy_adapter, load_audio_embed
from adapters.runtime.config import AuraConfig
from adapters.runtime.llm_io import load_tokenizer
from adapters.train.student import load_causal_lm


def export_bundle(checkpoint: str, output: str, dtype: str = "auto") -> str:
    """Merge `checkpoint`'s LoRA into its base LLM and write the bundle to `output`."""
    from peft import PeftModel

    cfg = AuraConfig.load(checkpoint)
    load_audio_embed(cfg, checkpoint)  # a clear error now, not a bundle that cannot be served
    base = load_causal_lm(cfg.base_llm)  # the base checkpoint's own dtype
    target_dtype = base.dtype if dtype == "auto" else getattr(torch, dtype)
    model = PeftModel.from_pretrained(base.float(), os.path.join(checkpoint, LORA_DIR))
    merged = model.merge_and_unload().to(target_dtype)  # merge in fp32, then cast once
    llm_dir = os.path.join(output, LLM_DIR)
    os.makedirs(llm_dir, exist_ok=True)
    merged.save_pretrained(llm_dir, safe_serialization=True)
    load_tokenizer(cfg.base_llm).save_pretrained(llm_dir)
    copy_adapter(checkpoint, output)
    cfg.training = {**cfg.training, "exported_from": os.path.abspath(checkpoint)}
    cfg.save(output)
    return output
