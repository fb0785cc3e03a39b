"""A loaded bundle: everything the gateway needs to turn audio + chat into prompt embeddings.

It holds the tokenizer, the LLM's own input-embedding module and the audio embedding layer, not the
LLM itself (vLLM serves `llm/`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from adapters import SAMPLE_RATE
from adapters.config import AuraConfig
from adapters.embedding import AudioEmbedding
from adapters.errors import BundleError
from adapters.export import LLM_DIR
from adapters.features import log_mel
from adapters.llm_io import load_input_embeddings
from adapters.prompt import PromptEmbeds, assemble_prompt, prompt_token_ids
from adapters.student import load_audio_embed, load_tokenizer


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
