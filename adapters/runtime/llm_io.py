"""Loading pieces of a Hugging Face causal LM without loading all of it."""

from __future__ import annotations

import copy
import json
import os

import torch
from safetensors import safe_open

from adapters.runtime.errors import BundleError


def _find_tensor(llm_dir: str, key: str) -> torch.Tensor:
    index = os.path.join(llm_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = [json.load(f)["weight_map"].get(key)]
    else:
        files = [name for name in os.listdir(llm_dir) if name.endswith(".safetensors")]
    for name in files:
        if name is None:
            continue
        with safe_open(os.path.join(llm_dir, name), framework="pt") as f:
            if key in f.keys():
                return f.get_tensor(key)
    raise BundleError(f"{llm_dir}: no tensor {key!r} in the checkpoint's safetensors files")


def load_input_embeddings(llm_dir: str) -> torch.nn.Module:
    """The model's own input-embedding module (with Gemma's scaling), weights from the checkpoint.

    The gateway needs only this module to embed text, so the model is instantiated with a single
    layer, its embedding weights read from safetensors, and the rest dropped.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(llm_dir)
    small = copy.deepcopy(config)
    text_cfg = getattr(small, "text_config", small)
    text_cfg.num_hidden_layers = 1
    if getattr(text_cfg, "layer_types", None):
        text_cfg.layer_types = text_cfg.layer_types[:1]
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_config(small, dtype=dtype)
    module = model.get_input_embeddings()
    name = next(n for n, m in model.named_modules() if m is module)
    weight = _find_tensor(llm_dir, f"{name}.weight")
    with torch.no_grad():
        module.weight.copy_(weight.to(module.weight.dtype))
    module.requires_grad_(False).eval()
    del model
    return module


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.eos_token is None:
        raise BundleError(f"{path}: the tokenizer has no EOS token; AuRA targets end with it")
    return tok
