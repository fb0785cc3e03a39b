"""The lightweight audio embedding layer: log-mel frames → LLM input embeddings.

It is deliberately small (two convolutions and a projection): the point of AuRA is that the LLM's
own layers, taught by layer-wise distillation, do the acoustic modelling. Optionally a few
bidirectional transformer blocks follow the convolutions (`context_layers`): the LLM reads the audio
causally, but the Whisper states it is taught to match depend on the frames that come later, and
this layer runs in the gateway on the whole clip, so it can give each token that future context
without changing how vLLM serves the prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from adapters.runtime.features import pad_frames


@dataclass
class AudioEmbedConfig:
    n_mels: int = 80
    hidden_size: int = 640
    # Mel frames (10 ms each) per audio token. 4 → 25 tokens/s: about two tokens per phoneme, the
    # rate the Whisper encoder's own output pooled ×2, and still cheap (250 tokens for 10 s).
    stride: int = 4
    width: int = 512
    boundaries: bool = True  # learned <audio start>/<audio end> embeddings around the audio tokens
    init_scale: float = 1.0  # RMS of the LLM's input embeddings, so audio tokens start at text scale
    # Bidirectional transformer blocks after the convolutions (0: none, the layer bundles had first).
    # Heads of 64 channels, feed-forward 4× the width, pre-norm: the shape of a Whisper encoder block.
    context_layers: int = 0
    # "conv": this layer, what bundles serve. "encoder-oracle": the teacher's encoder kept behind a
    # projector (adapters/train/oracle.py), a training diagnostic that can be neither exported nor served.
    kind: str = "conv"

    def tokens_per_second(self, frames_per_second: float = 100.0) -> float:
        return frames_per_second / self.stride

    def to_dict(self) -> dict:
        return asdict(self)


class AudioTokens(nn.Module):
    """What every audio front end shares: audio tokens at the LLM's embedding scale, with learned
    <audio start>/<audio end> embeddings around them. Subclasses say how log-mels become tokens."""

    def __init__(self, cfg: AudioEmbedConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.hidden_size, elementwise_affine=False)
        self.scale = nn.Parameter(torch.tensor(float(cfg.init_scale)))
        if cfg.boundaries:
            self.start = nn.Parameter(torch.randn(cfg.hidden_size) * cfg.init_scale)
            self.end = nn.Parameter(torch.randn(cfg.hidden_size) * cfg.init_scale)

    def num_tokens(self, frames: int) -> int:
        """Audio tokens emitted for `frames` mel frames (boundaries not counted)."""
        return frames // self.cfg.stride

    def tokens(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """(n_mels, frames_i) per clip → (num_tokens(frames_i), hidden) per clip."""
        raise NotImplementedError

    def at_text_scale(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h) * self.scale

    def with_boundaries(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, hidden) audio tokens → the sequence inserted in the prompt, boundaries included."""
        if not self.cfg.boundaries:
            return tokens
        return torch.cat([self.start[None].to(tokens.dtype), tokens, self.end[None].to(tokens.dtype)])

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """(n_mels, frames) for one clip → (audio positions, hidden), ready for prompt assembly."""
        return self.embed_batch([mel])[0]

    def embed_batch(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """`embed` of several clips in one padded pass (training batches)."""
        return [self.with_boundaries(t) for t in self.tokens(mels)]


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """(length, channels) fixed positions, the formula of Whisper's encoder: nothing to learn, and
    any clip length works."""
    timescales = torch.exp(-torch.log(torch.tensor(10000.0)) / (channels // 2 - 1) * torch.arange(channels // 2))
    t = torch.arange(length, dtype=torch.float32)[:, None] * timescales[None]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class AudioEmbedding(AudioTokens):
    """The AuRA audio embedding layer: two convolutions, optional bidirectional context blocks and a
    projection; what bundles serve."""

    def __init__(self, cfg: AudioEmbedConfig):
        super().__init__(cfg)
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(cfg.width, cfg.width, kernel_size=cfg.stride, stride=cfg.stride)
        if cfg.context_layers and cfg.width % 64:
            raise ValueError(f"context blocks need a width that is a multiple of 64 (heads of 64), got {cfg.width}")
        self.context = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.width, cfg.width // 64, 4 * cfg.width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.context_layers)
        )
        self.proj = nn.Linear(cfg.width, cfg.hidden_size)

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, n_mels, frames) → (batch, frames // stride, hidden). `tokens`, each clip's own token
        count in a right-padded batch, keeps the context blocks from attending to the padding."""
        if mel.shape[-1] < self.cfg.stride:
            raise ValueError(f"need at least {self.cfg.stride} mel frames, got {mel.shape[-1]}")
        h = nn.functional.gelu(self.conv1(mel))
        h = nn.functional.gelu(self.conv2(h)).transpose(1, 2)
        if self.context:
            h = h + sinusoids(h.shape[1], h.shape[2]).to(h)
            padding = None if tokens is None else torch.arange(h.shape[1], device=h.device) >= tokens[:, None]
            for block in self.context:
                h = block(h, src_key_padding_mask=padding)
        return self.at_text_scale(self.proj(h))

    def tokens(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        # One padded pass: the zeros after a clip are what a convolution's own padding gives it alone,
        # and the context blocks are told where each clip ends.
        counts = [self.num_tokens(m.shape[-1]) for m in mels]
        out = self(pad_frames(mels), torch.tensor(counts, device=mels[0].device) if len(mels) > 1 else None)
        return [out[i, :n] for i, n in enumerate(counts)]
