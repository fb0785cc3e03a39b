"""The encoder-kept oracle: a training diagnostic, not an AuRA model.

The same LLM, LoRA, data and steps as an AuRA run, but the audio reaches the LLM through the
*teacher's own encoder* (frozen, last layer pooled to the audio-token rate) and a small trainable
projector, as in SLAM-ASR. Its word error rate is the ceiling the training data allows: if the oracle
transcribes held-out speech and AuRA does not, the distillation recipe is the limit; if the oracle
memorises too, the data is.

It keeps the encoder, so it can be neither published, exported nor served (adapters.train.student's
load_audio_embed refuses it); `aura evaluate` scores it like any checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from adapters.runtime.embedding import AudioEmbedConfig, AudioTokens
from adapters.train.teacher import Teacher

KIND = "encoder-oracle"


class EncoderOracle(AudioTokens):
    """Log-mels → the teacher's final encoder states at the audio-token rate → projector → LLM-scale
    embeddings."""

    def __init__(self, cfg: AudioEmbedConfig, teacher: Teacher):
        super().__init__(cfg)
        # A plain attribute, not a sub-module: the frozen encoder stays out of the state dict (the
        # checkpoint holds the projector only) and out of the optimiser.
        self.teacher = teacher
        d = teacher.hidden_size
        self.proj = nn.Sequential(nn.Linear(d, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.hidden_size))

    def tokens(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        # The encoder is not a sub-module, so `.to()` does not move it: bring the mels to it and its
        # states back to the projector.
        last, device = self.teacher.num_layers, self.scale.device
        states = self.teacher.states([m.to(self.teacher.device) for m in mels], [last], [self.num_tokens(m.shape[-1]) for m in mels])
        return [self.at_text_scale(self.proj(s[last].to(device))) for s in states]
