"""The bundle format (DESIGN §4) and a loaded bundle: everything the gateway needs to turn audio +
chat into prompt embeddings.

    aura.json                 the recipe and the training history (adapters/runtime/config.py)
    audio_embed.safetensors   the audio embedding layer (a training checkpoint has it too)
    llm/                      the merged HF checkpoint + tokenizer: what a dedicated vLLM engine loads
    lora/                     the same LoRA un-merged (PEFT): what one engine of the base LLM applies
                              per request, beside the cascade and text requests (a checkpoint has it too)

A Bundle holds the tokenizer, the LLM's own input-embedding module and the audio embedding layer, not the
LLM itself (vLLM serves `llm/`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from adapters import SAMPLE_RATE
from adapters.runtime.config import AuraConfig
from adapters.runtime.embedding import AudioEmbedding, AudioTokens
from adapters.runtime.errors import BundleError
from adapters.runtime.features import log_mel
from adapters.runtime.llm_io import load_input_embeddings, load_tokenizer
from adapters.runtime.prompt import PromptEmbeds, assemble_prompt, prompt_token_ids

LLM_DIR = "llm"
LORA_DIR = "lora"
LORA_FILES = ("adapter_config.json", "adapter_model.safetensors")
AUDIO_EMBED_FILE = "audio_embed.safetensors"


def save_audio_embed(module: AudioTokens, directory: str) -> None:
    state = {k: v.detach().float().contiguous() for k, v in module.state_dict().items()}
    save_file(state, os.path.join(directory, AUDIO_EMBED_FILE))


def copy_adapter(src: str, dst: str) -> None:
    """What a checkpoint, a published adapter and a bundle share: the audio layer and the un-merged LoRA."""
    import shutil

    os.makedirs(os.path.join(dst, LORA_DIR), exist_ok=True)
    for f in LORA_FILES:
        shutil.copyfile(os.path.join(src, LORA_DIR, f), os.path.join(dst, LORA_DIR, f))
    shutil.copyfile(os.path.join(src, AUDIO_EMBED_FILE), os.path.join(dst, AUDIO_EMBED_FILE))


def audio_embed_weights(directory: str) -> dict[str, torch.Tensor]:
    path = os.path.join(directory, AUDIO_EMBED_FILE)
    if not os.path.isfile(path):
        raise BundleError(f"{directory}: missing {AUDIO_EMBED_FILE}")
    return load_file(path)


def load_audio_embed(cfg: AuraConfig, directory: str) -> AudioEmbedding:
    """The servable audio layer of a bundle or checkpoint (an oracle's is refused)."""
    weights = audio_embed_weights(directory)
    if cfg.audio_embed.kind != "conv":
        raise BundleError(f"{directory}: its audio front end is {cfg.audio_embed.kind!r}, a training diagnostic that keeps the "
                          "teacher's encoder; it cannot be exported or served")
    module = AudioEmbedding(cfg.audio_embed)
    module.load_state_dict(weights)
    return module


@dataclass
class AudioTimings:
    features_ms: float
    embed_ms: float


class Bundle:
    def __init__(self, path: str, cfg: AuraConfig, tokenizer, embed_tokens: torch.nn.Module, audio_embed: AudioEmbedding):
        self.path = path
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.embed_tokens = embed_tokens
        self.audio_embed = audio_embed.eval().requires_grad_(False)

    @classmethod
    def load(cls, path: str) -> Bundle:
        cfg = AuraConfig.load(path)
        llm = os.path.join(path, LLM_DIR)
        if not os.path.isdir(llm):
            raise BundleError(f"{path}: missing {LLM_DIR}/ (the merged checkpoint); run `aura export`")
        return cls(path, cfg, load_tokenizer(llm), load_input_embeddings(llm), load_audio_embed(cfg, path))

    @property
    def llm_dir(self) -> str:
        return os.path.join(self.path, LLM_DIR)

    @property
    def base_llm_dir(self) -> str:
        return self.cfg.base_llm

    @property
    def lora_dir(self) -> str | None:
        """The un-merged LoRA, when the bundle carries it (bundles exported before it did do not)."""
        path = os.path.join(self.path, LORA_DIR)
        return path if all(os.path.isfile(os.path.join(path, f)) for f in LORA_FILES) else None

    @property
    def lora_rank(self) -> int:
        return self.cfg.lora.rank

    def audio_tokens_for(self, seconds: float) -> int:
        frames = int(seconds * SAMPLE_RATE) // self.cfg.features.hop_length
        return self.audio_embed.num_tokens(frames) + (2 if self.cfg.audio_embed.boundaries else 0)

    @torch.inference_mode()
    def embed_audio(self, wave: np.ndarray) -> tuple[torch.Tensor, AudioTimings]:
        t0 = time.perf_counter()
        mel = log_mel(wave, self.cfg.features)
        t1 = time.perf_counter()
        tokens = self.audio_embed.embed(mel)
        t2 = time.perf_counter()
        return tokens, AudioTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3)

    @torch.inference_mode()
    def prompt(self, messages: list[dict], audio: list[torch.Tensor]) -> PromptEmbeds:
        return assemble_prompt(self.tokenizer, self.embed_tokens, messages, audio, chat_template=self.cfg.chat_template)

    def text_prompt_ids(self, messages: list[dict]) -> list[int]:
        return prompt_token_ids(self.tokenizer, messages, self.cfg.chat_template)
